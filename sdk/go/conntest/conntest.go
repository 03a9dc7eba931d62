// Package conntest is the conformance suite every Sluice connector passes, built in or plugin,
// first-party or third-party. Call TestSource or TestSink from a test of the connector's package
// with a harness that knows how to prepare data for it and read back what it wrote:
//
//	func TestConformance(t *testing.T) {
//		conntest.TestSource(t, conntest.SourceHarness{
//			Setup: func(t *testing.T, n int) conntest.SourceFactory { ... write n records ... },
//		})
//	}
//
// The suite checks at-least-once delivery, resume strictly after a position, Close after a failed
// Open, prompt return of Read on cancellation, idempotent Close and, for sinks, that a
// *connector.BatchError names exactly the records that failed. TestTransactionalSink checks a
// connector.TransactionalSink's stored positions and transactions. Every check runs as a subtest, so
// -run selects them. The suite never asserts timings: hang guards fail a check that does not
// return at all within Timeout.
package conntest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

// SourceFactory builds an unopened source. It is called several times per check and every call
// must give a source over the same prepared data.
type SourceFactory func() (connector.Source, error)

// SinkFactory builds an unopened sink writing to the destination prepared by SinkHarness.Setup.
type SinkFactory func() (connector.Sink, error)

// SourceHarness adapts a source to the suite.
type SourceHarness struct {
	// Setup prepares exactly n records in the external system (a file, a topic) and returns a
	// factory of sources that read them. Required. Every check calls it afresh.
	Setup func(t *testing.T, n int) SourceFactory
	// Broken returns a source whose Open fails (a missing file, an unreachable address). Nil
	// skips the close-after-failed-open check.
	Broken func(t *testing.T) (connector.Source, error)
	// Identity names a record uniquely among the n prepared. Default: string(Value).
	Identity func(r connector.Record) string
	// Records is n. Default 500. An unbounded source must return at least n distinct records,
	// a bounded one exactly n.
	Records int
	// Unbounded is set for sources that never return io.EOF; the suite then stops reading once
	// it has seen what it expects.
	Unbounded bool
	// Timeout is the hang guard of every check. Default 60s.
	Timeout time.Duration
}

func (h *SourceHarness) defaults() {
	if h.Identity == nil {
		h.Identity = func(r connector.Record) string { return string(r.Value) }
	}
	if h.Records <= 0 {
		h.Records = 500
	}
	if h.Timeout <= 0 {
		h.Timeout = 60 * time.Second
	}
}

// TestSource runs the source checks as subtests of t.
func TestSource(t *testing.T, h SourceHarness) {
	t.Helper()
	if h.Setup == nil {
		t.Fatal("conntest: SourceHarness.Setup is required")
	}
	h.defaults()
	t.Run("AtLeastOnce", func(t *testing.T) { sourceAtLeastOnce(t, h) })
	t.Run("ResumeAfterPosition", func(t *testing.T) { sourceResume(t, h) })
	t.Run("CloseAfterFailedOpen", func(t *testing.T) {
		if h.Broken == nil {
			t.Skip("conntest: SourceHarness.Broken not set")
		}
		src, err := h.Broken(t)
		if err != nil {
			t.Logf("constructor refused the broken config: %v", err)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), h.Timeout)
		defer cancel()
		if err := src.Open(ctx, nil); err == nil {
			_ = src.Close(ctx)
			t.Fatal("Open of the broken source succeeded; want an error")
		}
		guard(t, h.Timeout, "Close after failed Open", func() { _ = src.Close(ctx) })
		guard(t, h.Timeout, "second Close after failed Open", func() { _ = src.Close(ctx) })
	})
	t.Run("ReadReturnsOnCancel", func(t *testing.T) { sourceCancel(t, h) })
	t.Run("CloseIdempotent", func(t *testing.T) {
		src := openSource(t, h, h.Setup(t, h.Records), nil)
		ctx, cancel := context.WithTimeout(context.Background(), h.Timeout)
		defer cancel()
		if err := src.Close(ctx); err != nil {
			t.Fatalf("first Close: %v", err)
		}
		if err := src.Close(ctx); err != nil {
			t.Fatalf("second Close: %v", err)
		}
	})
}

func openSource(t *testing.T, h SourceHarness, f SourceFactory, resume []connector.Position) connector.Source {
	t.Helper()
	src, err := f()
	if err != nil {
		t.Fatalf("build source: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.Timeout)
	defer cancel()
	if err := src.Open(ctx, resume); err != nil {
		_ = src.Close(ctx)
		t.Fatalf("Open(%v): %v", resume, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), h.Timeout)
		defer cancel()
		_ = src.Close(ctx)
	})
	return src
}

// drain reads until EOF (bounded) or until stop says so (unbounded), acking every batch.
func drain(t *testing.T, h SourceHarness, src connector.Source, stop func(seen map[string]int) bool) ([]connector.Record, map[string]int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), h.Timeout)
	defer cancel()
	var all []connector.Record
	seen := map[string]int{}
	for {
		if h.Unbounded && stop(seen) {
			return all, seen
		}
		recs, err := src.Read(ctx)
		for _, r := range recs {
			all = append(all, r)
			seen[h.Identity(r)]++
		}
		if errors.Is(err, io.EOF) {
			if h.Unbounded {
				t.Fatal("Read returned io.EOF from a source declared unbounded")
			}
			return all, seen
		}
		if err != nil {
			t.Fatalf("Read after %d records: %v", len(all), err)
		}
		if len(recs) == 0 {
			t.Fatal("Read returned no records and no error; it must block until a record arrives")
		}
		if err := src.Ack(ctx, lastPositions(recs)); err != nil {
			t.Fatalf("Ack: %v", err)
		}
	}
}

func lastPositions(recs []connector.Record) []connector.Position {
	idx := map[string]int{}
	var out []connector.Position
	for _, r := range recs {
		if i, ok := idx[r.Position.Partition]; ok {
			out[i] = r.Position
			continue
		}
		idx[r.Position.Partition] = len(out)
		out = append(out, r.Position)
	}
	return out
}

func sourceAtLeastOnce(t *testing.T, h SourceHarness) {
	src := openSource(t, h, h.Setup(t, h.Records), nil)
	_, seen := drain(t, h, src, func(seen map[string]int) bool { return len(seen) >= h.Records })
	// An unbounded source may have more than the prepared records (a generator); a bounded one
	// has exactly those.
	if len(seen) < h.Records || (!h.Unbounded && len(seen) != h.Records) {
		t.Fatalf("saw %d distinct records, prepared %d", len(seen), h.Records)
	}
}

func sourceResume(t *testing.T, h SourceHarness) {
	f := h.Setup(t, h.Records)
	first := openSource(t, h, f, nil)
	all, _ := drain(t, h, first, func(seen map[string]int) bool { return len(seen) >= h.Records })
	// Cut every partition in the middle of what it returned.
	byPart := map[string][]connector.Record{}
	var parts []string
	for _, r := range all {
		if _, ok := byPart[r.Position.Partition]; !ok {
			parts = append(parts, r.Position.Partition)
		}
		byPart[r.Position.Partition] = append(byPart[r.Position.Partition], r)
	}
	var resume []connector.Position
	before, after := map[string]bool{}, map[string]bool{}
	for _, p := range parts {
		rs := byPart[p]
		cut := len(rs) / 2
		if cut == 0 {
			cut = 1
		}
		resume = append(resume, rs[cut-1].Position)
		for i, r := range rs {
			if i < cut {
				before[h.Identity(r)] = true
			} else {
				after[h.Identity(r)] = true
			}
		}
	}
	second := openSource(t, h, f, resume)
	_, seen := drain(t, h, second, func(seen map[string]int) bool {
		for id := range after {
			if seen[id] == 0 {
				return false
			}
		}
		return true
	})
	for id := range seen {
		if before[id] {
			t.Fatalf("after Open(%v) the source returned %q again, which is at or before a resume position", resume, id)
		}
	}
	missing := 0
	for id := range after {
		if seen[id] == 0 {
			missing++
		}
	}
	if missing > 0 {
		t.Fatalf("after Open(%v) %d of %d records past the resume positions never came", resume, missing, len(after))
	}
}

func sourceCancel(t *testing.T, h SourceHarness) {
	src := openSource(t, h, h.Setup(t, h.Records), nil)
	// A Read with a context already cancelled must return.
	done, cancel := context.WithCancel(context.Background())
	cancel()
	guard(t, h.Timeout, "Read with a cancelled context", func() { _, _ = src.Read(done) })
	// Drain, then a Read that has to wait must return once its context is cancelled.
	if !h.Unbounded {
		drain(t, h, src, nil)
	}
	ctx, cancel2 := context.WithCancel(context.Background())
	result := make(chan error, 1)
	go func() {
		var err error
		for err == nil {
			_, err = src.Read(ctx)
		}
		result <- err
	}()
	time.Sleep(50 * time.Millisecond) // let Read block; the check below holds however long this is
	cancel2()
	select {
	case err := <-result:
		if !errors.Is(err, context.Canceled) && !errors.Is(err, io.EOF) {
			t.Fatalf("Read after cancel returned %v; want context.Canceled (or io.EOF for a drained bounded source)", err)
		}
	case <-time.After(h.Timeout):
		t.Fatalf("Read did not return within %v of its context being cancelled", h.Timeout)
	}
}

// guard fails the test when f does not return within d.
func guard(t *testing.T, d time.Duration, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s did not return within %v", what, d)
	}
}

// Value is the default payload of record i in the sink checks.
func Value(i int) []byte { return fmt.Appendf(nil, `{"n":%d}`, i) }

// ReadN reads from src until at least n records came and returns them, failing the test on a read
// error (the context's end included, so give ctx a deadline).
func ReadN(t testing.TB, ctx context.Context, src connector.Source, n int) []connector.Record {
	t.Helper()
	var out []connector.Record
	for len(out) < n {
		recs, err := src.Read(ctx)
		if err != nil {
			t.Fatalf("Read after %d of %d records: %v", len(out), n, err)
		}
		out = append(out, recs...)
	}
	return out
}
