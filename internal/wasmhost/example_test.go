package wasmhost_test

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/sluicehq/sluice/internal/wasmhost"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// A host loads a module once and builds stages from it; a stage runs batches.
func Example() {
	ctx := context.Background()
	h, err := wasmhost.New(ctx, wasmhost.Options{Logger: slog.New(slog.DiscardHandler)}) // CacheDir: DATA_DIR/wasm-cache
	if err != nil {
		panic(err)
	}
	defer h.Close(ctx)
	m, err := h.Load(ctx, "testdata/hostile.wasm", "") // pass the manifest's sha256 pin, if any
	if err != nil {
		panic(err)
	}
	fmt.Println(m.Meta().Name, m.Meta().Ports)
	stage, err := h.NewStage(ctx, m, wasmhost.StageConfig{Name: "validate", Config: []byte(`{}`)})
	if err != nil {
		panic(err)
	}
	res, err := stage.Process(ctx, []connector.Record{
		{Value: []byte("fine")}, {Value: []byte("reject me")}, {Value: []byte("trap")}, {Value: []byte("emit")},
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(res.Actions)
	for _, r := range res.Rejected {
		fmt.Printf("record %d rejected: code %#x: %s\n", r.Input, r.Code, r.Reason)
	}
	for _, e := range res.Emitted {
		fmt.Printf("record %d emitted %q on port %s\n", e.Input, e.Record.Value, e.Port)
	}
	// Output:
	// hostile [main alerts]
	// [PASS REJECT REJECT EMIT]
	// record 1 rejected: code 0x3: value: out of range
	// record 2 rejected: code 0xff01: wasm trap: out of bounds memory access
	// record 3 emitted "emit#0" on port main
	// record 3 emitted "emit#1" on port alerts
}
