package conntest

import (
	"context"
	"errors"
	"sort"
	"testing"
	"time"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

// SinkHarness adapts a sink to the suite.
type SinkHarness struct {
	// Setup prepares an empty destination and returns a factory of sinks writing to it and a
	// function that reads back every record durable there. Required. Every check calls it
	// afresh. A nil read-back function (a sink that keeps nothing, like drop) skips the checks
	// of what arrived and keeps the others.
	Setup func(t *testing.T) (SinkFactory, func(t *testing.T) []connector.Record)
	// Broken returns a sink whose Open fails. Nil skips the close-after-failed-open check.
	Broken func(t *testing.T) (connector.Sink, error)
	// Record builds record i. Default: Value(i) as the value, "i" as the key.
	Record func(i int) connector.Record
	// Poison builds a record the sink refuses on its own (a value it cannot store), for the
	// partial-failure check. Nil skips that check.
	Poison func(i int) connector.Record
	// Identity names a record uniquely. Default: string(Value).
	Identity func(r connector.Record) string
	// Records is the number of records written. Default 500.
	Records int
	// BatchSize is the size of the batches written. Default 100.
	BatchSize int
	// Timeout is the hang guard of every check. Default 60s.
	Timeout time.Duration
}

func (h *SinkHarness) defaults() {
	if h.Record == nil {
		h.Record = func(i int) connector.Record {
			return connector.Record{Key: []byte(string(Value(i))), Value: Value(i), Position: connector.Position{Offset: int64(i)}}
		}
	}
	if h.Identity == nil {
		h.Identity = func(r connector.Record) string { return string(r.Value) }
	}
	if h.Records <= 0 {
		h.Records = 500
	}
	if h.BatchSize <= 0 {
		h.BatchSize = 100
	}
	if h.Timeout <= 0 {
		h.Timeout = 60 * time.Second
	}
}

// TestSink runs the sink checks as subtests of t.
func TestSink(t *testing.T, h SinkHarness) {
	t.Helper()
	if h.Setup == nil {
		t.Fatal("conntest: SinkHarness.Setup is required")
	}
	h.defaults()
	t.Run("AtLeastOnce", func(t *testing.T) {
		f, readBack := h.Setup(t)
		snk := openSink(t, h, f)
		want := map[string]bool{}
		var batch []connector.Record
		ctx, cancel := context.WithTimeout(context.Background(), h.Timeout)
		defer cancel()
		for i := 0; i < h.Records; i++ {
			r := h.Record(i)
			want[h.Identity(r)] = true
			batch = append(batch, r)
			if len(batch) == h.BatchSize || i == h.Records-1 {
				if err := snk.Write(ctx, batch); err != nil {
					t.Fatalf("Write of %d records: %v", len(batch), err)
				}
				batch = nil
			}
		}
		if err := snk.Close(ctx); err != nil {
			t.Fatalf("Close: %v", err)
		}
		checkReadBack(t, h, readBack, want)
	})
	t.Run("BatchPartialFailure", func(t *testing.T) {
		if h.Poison == nil {
			t.Skip("conntest: SinkHarness.Poison not set")
		}
		f, readBack := h.Setup(t)
		snk := openSink(t, h, f)
		n := 20
		poisoned := map[int]bool{1: true, 7: true, 8: true, 19: true}
		batch := make([]connector.Record, n)
		want := map[string]bool{}
		for i := range batch {
			if poisoned[i] {
				batch[i] = h.Poison(i)
				continue
			}
			batch[i] = h.Record(i)
			want[h.Identity(batch[i])] = true
		}
		ctx, cancel := context.WithTimeout(context.Background(), h.Timeout)
		defer cancel()
		err := snk.Write(ctx, batch)
		var be *connector.BatchError
		if !errors.As(err, &be) {
			t.Fatalf("Write with poisoned records at %v returned %v; want a *connector.BatchError", keys(poisoned), err)
		}
		var got []int
		for _, f := range be.Failed {
			got = append(got, f.Index)
			if f.Err == nil {
				t.Errorf("failed record %d has no reason", f.Index)
			}
		}
		sort.Ints(got)
		if !equalInts(got, keys(poisoned)) {
			t.Fatalf("BatchError names indexes %v; want %v", got, keys(poisoned))
		}
		if err := snk.Close(ctx); err != nil {
			t.Fatalf("Close: %v", err)
		}
		checkReadBack(t, h, readBack, want)
	})
	t.Run("CloseAfterFailedOpen", func(t *testing.T) {
		if h.Broken == nil {
			t.Skip("conntest: SinkHarness.Broken not set")
		}
		snk, err := h.Broken(t)
		if err != nil {
			t.Logf("constructor refused the broken config: %v", err)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), h.Timeout)
		defer cancel()
		if err := snk.Open(ctx); err == nil {
			_ = snk.Close(ctx)
			t.Fatal("Open of the broken sink succeeded; want an error")
		}
		guard(t, h.Timeout, "Close after failed Open", func() { _ = snk.Close(ctx) })
		guard(t, h.Timeout, "second Close after failed Open", func() { _ = snk.Close(ctx) })
	})
	t.Run("WriteReturnsOnCancel", func(t *testing.T) {
		f, _ := h.Setup(t)
		snk := openSink(t, h, f)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		guard(t, h.Timeout, "Write with a cancelled context", func() { _ = snk.Write(ctx, []connector.Record{h.Record(0)}) })
	})
	t.Run("CloseIdempotent", func(t *testing.T) {
		f, _ := h.Setup(t)
		snk := openSink(t, h, f)
		ctx, cancel := context.WithTimeout(context.Background(), h.Timeout)
		defer cancel()
		if err := snk.Close(ctx); err != nil {
			t.Fatalf("first Close: %v", err)
		}
		if err := snk.Close(ctx); err != nil {
			t.Fatalf("second Close: %v", err)
		}
	})
}

func openSink(t *testing.T, h SinkHarness, f SinkFactory) connector.Sink {
	t.Helper()
	snk, err := f()
	if err != nil {
		t.Fatalf("build sink: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.Timeout)
	defer cancel()
	if err := snk.Open(ctx); err != nil {
		_ = snk.Close(ctx)
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), h.Timeout)
		defer cancel()
		_ = snk.Close(ctx)
	})
	return snk
}

func checkReadBack(t *testing.T, h SinkHarness, readBack func(t *testing.T) []connector.Record, want map[string]bool) {
	t.Helper()
	if readBack == nil {
		t.Log("conntest: no read-back function; what arrived is not checked")
		return
	}
	got := readBack(t)
	seen := map[string]bool{}
	for _, r := range got {
		seen[h.Identity(r)] = true
	}
	missing := 0
	for id := range want {
		if !seen[id] {
			if missing < 5 {
				t.Errorf("record %q is not in the destination", id)
			}
			missing++
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d written records are missing from the destination", missing, len(want))
	}
}

func keys(m map[int]bool) []int {
	out := make([]int, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Ints(out)
	return out
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
