package transform_test

import (
	"bytes"
	"fmt"
	"sync"

	"github.com/sluicehq/sluice/sdk/go/transform"
)

// registerOnce keeps this test binary to the one Register a module may call (go test -count=N
// runs the example N times).
var registerOnce sync.Once

// A validator, run natively through real ABI frames with RunLocal. In a module, the Register call
// goes in an init function of package main, next to an empty func main.
func ExampleValidate() {
	registerOnce.Do(func() {
		transform.Register(transform.Meta{Name: "positive", Version: "1.0.0", Kinds: []transform.Kind{transform.KindValidate}},
			transform.Validate(func(r transform.Record) error {
				if bytes.HasPrefix(r.Value, []byte("-")) {
					return transform.Rejectf(transform.CodeOutOfRange, "negative: %s", r.Value)
				}
				return nil
			}))
	})
	out, err := transform.RunLocal(nil, []transform.LocalRecord{{Value: []byte("5")}, {Value: []byte("-3")}})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, o := range out {
		fmt.Printf("%v %d %q\n", o.Action, o.Code, o.Reason)
	}
	// Output:
	// PASS 0 ""
	// REJECT 3 "negative: -3"
}
