package engine_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/engine"
	"github.com/sluicehq/sluice/runtime/pipeline"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// A stop whose drain outlasts DrainTimeout ends the run with an error that says so, and the
// checkpoint holds no position past what the sink made durable: what was in flight is read again
// by the next run, nothing is lost.
func TestDrainTimeoutEndsTheRunWithoutLosingRecords(t *testing.T) {
	store := openStore(t, t.TempDir())
	slow := &slowCounter{delay: 300 * time.Millisecond}
	sinks.Store("drain-slow", slow)
	defer sinks.Delete("drain-slow")
	p := spec("drain", genSource(0, "{{seq}}"),
		sink("slow", pipeline.Component{Type: "enginetest-count", Config: connector.Config{"id": "drain-slow"}}))
	e, err := engine.New(p, engine.Options{Catalog: testCatalog(), Checkpoints: store, DrainTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for slow.n.Load() == 0 { // stop while the sink is slow to write what follows
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	err = e.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "drain did not finish within 50ms") {
		t.Fatalf("Run = %v; want the drain timeout's error", err)
	}
	pos, err := store.Load("drain")
	if err != nil {
		t.Fatal(err)
	}
	delivered := slow.n.Load()
	if len(pos) > 1 || (len(pos) == 1 && pos[0].Offset > delivered) {
		t.Fatalf("checkpoint %v is past the %d records the sink holds", pos, delivered)
	}
	if st := e.Status(); st.State != pipeline.StateFailed {
		t.Fatalf("status after the drain timeout = %+v; want failed", st)
	}
}
