package schema_test

import (
	"context"
	"fmt"

	"github.com/sluicehq/sluice/internal/schema"
)

// A decode: mapping of format json without a registry passes JSON values through and sends
// anything else to the dead letters.
func ExampleDecoder_Decode() {
	cfg, err := schema.DecodeSpec.Config(map[string]any{"format": "json"})
	if err != nil {
		panic(err)
	}
	d, err := schema.NewDecoder(cfg)
	if err != nil {
		panic(err)
	}
	if err := d.Open(context.Background()); err != nil {
		panic(err)
	}
	out, _, err := d.Decode(context.Background(), []byte(`{"price":12.5}`), nil)
	fmt.Println(string(out), err)
	_, _, err = d.Decode(context.Background(), []byte{0, 0, 0, 0, 7, 2, 'x'}, nil)
	fmt.Println(err)
	// Output:
	// {"price":12.5} <nil>
	// schema: value is not JSON (it starts with the schema registry's magic byte 0: set decode.registry to read the wire format)
}
