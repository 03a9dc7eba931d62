package schema_test

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/sluicehq/sluice/internal/schema"
	"github.com/sluicehq/sluice/internal/schema/registrytest"
)

// wire prefixes payload with the registry wire-format header of id.
func wire(id int, payload []byte) []byte {
	return append([]byte{0, byte(id >> 24), byte(id >> 16), byte(id >> 8), byte(id)}, payload...)
}

func newDecoder(t testing.TB, values map[string]any) *schema.Decoder {
	t.Helper()
	cfg, err := schema.DecodeSpec.Config(values)
	if err != nil {
		t.Fatal(err)
	}
	d, err := schema.NewDecoder(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	return d
}

func newEncoder(t testing.TB, values map[string]any) *schema.Encoder {
	t.Helper()
	e, err := newEncoderErr(t, values)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func newEncoderErr(t testing.TB, values map[string]any) (*schema.Encoder, error) {
	t.Helper()
	cfg, err := schema.EncodeSpec.Config(values)
	if err != nil {
		t.Fatal(err)
	}
	e, err := schema.NewEncoder(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e, e.Open(context.Background())
}

func registryCfg(r *registrytest.Registry) map[string]any { return map[string]any{"url": r.URL} }

// sameJSON fails unless a and b hold the same JSON value.
func sameJSON(t testing.TB, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, got)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("want is not JSON: %v", err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("JSON differs\n got: %s\nwant: %s", got, want)
	}
}
