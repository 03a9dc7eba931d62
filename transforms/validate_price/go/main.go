// Command validate_price is the Go version of the validate_price transform: it passes JSON objects
// with a valid commodity, price and ts, and rejects everything else with the codes and reasons of
// ../SPEC.md. Build it for WebAssembly with `make wasm-go`.
package main

import "github.com/sluicehq/sluice/sdk/go/transform"

func main() {}

// cfg is set once per instance at init and only read afterwards.
var cfg = defaultLimits()

func init() {
	transform.Register(transform.Meta{
		Name:         "validate_price",
		Version:      "1.0.0",
		Kinds:        []transform.Kind{transform.KindValidate},
		ConfigSchema: `{"type":"object","properties":{"max_price":{"type":"number","exclusiveMinimum":0}},"additionalProperties":false}`,
	}, transform.ProcessFunc(process), transform.OnInit(func() error {
		l, err := parseConfig(transform.ConfigBytes())
		if err != nil {
			return err
		}
		cfg = l
		return nil
	}))
}

func process(b *transform.Batch) error {
	for i := 0; i < b.Len(); i++ {
		if ok, code, reason := check(b.Value(i), &cfg); !ok {
			b.Reject(i, code, reason)
		}
	}
	return nil
}
