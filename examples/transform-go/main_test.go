package main

import (
	"reflect"
	"testing"

	"github.com/sluicehq/sluice/sdk/go/transform"
)

// The SDK's local runner executes the transform natively, through the same ABI frames the host
// uses, so the logic can be unit-tested without building WebAssembly.
func TestPriceFloor(t *testing.T) {
	in := []transform.LocalRecord{
		{Value: []byte(`{"commodity":"gold","price":1900}`)},
		{Value: []byte(`{"commodity":"gold","price":4.5}`)},
		{Value: []byte(`{"commodity":"gold"}`)},
		{Value: []byte(`not json`)},
	}
	got, err := transform.RunLocal([]byte(`{"min_price":10}`), in)
	if err != nil {
		t.Fatal(err)
	}
	want := []transform.LocalOutcome{
		{Action: transform.ActionPass},
		{Action: transform.ActionReject, Code: transform.CodeOutOfRange, Reason: "price: 4.5 is below the floor 10"},
		{Action: transform.ActionReject, Code: transform.CodeSchema, Reason: "price: missing or not a number"},
		{Action: transform.ActionReject, Code: transform.CodeSchema, Reason: "price: missing or not a number"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
	if _, err := transform.RunLocal([]byte(`{"min_prise":10}`), in); err == nil {
		t.Fatal("a config with an unknown field was accepted")
	}
}
