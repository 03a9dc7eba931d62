package conntest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

// TxSinkFactory builds an unopened transactional sink writing to the destination prepared by
// TransactionalSinkHarness.Setup, as the runtime would build it for the pipeline and component
// env names.
type TxSinkFactory func(env connector.Env) (connector.TransactionalSink, error)

// TransactionalSinkHarness adapts a connector.TransactionalSink to TestTransactionalSink.
type TransactionalSinkHarness struct {
	// Setup prepares an empty destination and returns a factory of sinks writing to it and a
	// function that reads back every record durable there, whoever wrote it. Required. Every
	// check calls it afresh; sinks of several (pipeline, component) pairs write to the same
	// destination in one check. A nil read-back function skips the checks of what arrived.
	Setup func(t *testing.T) (TxSinkFactory, func(t *testing.T) []connector.Record)
	// Record builds record i. Default: Value(i) as the value, "i" as the key.
	Record func(i int) connector.Record
	// Poison builds a record the sink refuses on its own, for the check that positions are stored
	// with the records that were not refused. Nil skips that check.
	Poison func(i int) connector.Record
	// Identity names a record uniquely. Default: string(Value).
	Identity func(r connector.Record) string
	// BreakCommit, when set, makes the next WriteTx of the destination fail after its records
	// were handed over (a dropped connection before the commit, an unwritable positions file)
	// and returns a function that repairs it; the atomicity check then needs that the failed
	// write stored neither records nor positions. Without it, the check uses a cancelled context,
	// which tests atomicity only as far as the sink gets before it notices.
	BreakCommit func(t *testing.T) (repair func())
	// Timeout is the hang guard of every check. Default 60s.
	Timeout time.Duration
	// Shared runs the checks of connector.SharedPositions: several instances of one pipeline's
	// sink writing overlapping ranges of the same partitions, some with a stale view, some at
	// once. Set it for a sink that implements SharedPositions.
	Shared bool
}

func (h *TransactionalSinkHarness) defaults() {
	sh := SinkHarness{Record: h.Record, Identity: h.Identity, Timeout: h.Timeout}
	sh.defaults()
	h.Record, h.Identity, h.Timeout = sh.Record, sh.Identity, sh.Timeout
}

// TestTransactionalSink runs the checks of connector.TransactionalSink as subtests of t: stored
// positions round-trip (partitions, offsets, cursors, the unnamed partition), a write of positions
// only, positions kept per (pipeline, component), an idempotent reopen, a failed write that stores
// neither records nor positions, positions stored beside a partial failure, and with Shared
// several instances of one pipeline's sink writing the same partitions. A transactional
// sink runs TestSink as well: it is a sink.
func TestTransactionalSink(t *testing.T, h TransactionalSinkHarness) {
	t.Helper()
	if h.Setup == nil {
		t.Fatal("conntest: TransactionalSinkHarness.Setup is required")
	}
	h.defaults()
	t.Run("StoredPositionsRoundTrip", func(t *testing.T) { txRoundTrip(t, h) })
	t.Run("PositionsOnly", func(t *testing.T) { txPositionsOnly(t, h) })
	t.Run("KeyedByPipelineAndComponent", func(t *testing.T) { txKeyed(t, h) })
	t.Run("IdempotentReopen", func(t *testing.T) { txReopen(t, h) })
	t.Run("FailedWriteStoresNothing", func(t *testing.T) { txAtomic(t, h) })
	t.Run("PartialFailureStoresPositions", func(t *testing.T) {
		if h.Poison == nil {
			t.Skip("conntest: TransactionalSinkHarness.Poison not set")
		}
		txPartial(t, h)
	})
	if h.Shared {
		t.Run("SharedPositions", func(t *testing.T) { txShared(t, h) })
	}
}

// txPipeline names a pipeline no other check or test run uses: a destination may keep the
// positions of every pipeline in one place (a positions table), which outlives the check.
func txPipeline() string { return fmt.Sprintf("conntest-%d", time.Now().UnixNano()) }

// txEnv is the environment the runtime gives the sink of component in pipeline.
func txEnv(t *testing.T, pipeline, component string) connector.Env {
	return connector.Env{Logger: slog.New(slog.DiscardHandler), Pipeline: pipeline, Component: component,
		DataDir: filepath.Join(t.TempDir(), pipeline, component)}
}

// txSession is one opened sink and what it stored when opened.
type txSession struct {
	t      *testing.T
	h      TransactionalSinkHarness
	sink   connector.TransactionalSink
	stored []connector.Position
	closed bool
}

// openTx builds and opens a sink for env and reads its stored positions, as the runtime does on
// start. The session is closed at the end of the test if not before.
func openTx(t *testing.T, h TransactionalSinkHarness, f TxSinkFactory, env connector.Env) *txSession {
	t.Helper()
	snk, err := f(env)
	if err != nil {
		t.Fatalf("build sink for pipeline %q component %q: %v", env.Pipeline, env.Component, err)
	}
	if err := snk.CheckExactlyOnce(); err != nil {
		t.Fatalf("CheckExactlyOnce of the harness's configuration: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.Timeout)
	defer cancel()
	if err := snk.Open(ctx); err != nil {
		_ = snk.Close(ctx)
		t.Fatalf("Open: %v", err)
	}
	s := &txSession{t: t, h: h, sink: snk}
	t.Cleanup(func() { s.close() })
	if s.stored, err = snk.StoredPositions(ctx); err != nil {
		t.Fatalf("StoredPositions after Open: %v", err)
	}
	return s
}

func (s *txSession) close() {
	s.t.Helper()
	if s.closed {
		return
	}
	s.closed = true
	ctx, cancel := context.WithTimeout(context.Background(), s.h.Timeout)
	defer cancel()
	if err := s.sink.Close(ctx); err != nil {
		s.t.Errorf("Close: %v", err)
	}
}

func (s *txSession) write(recs []connector.Record, pos ...connector.Position) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), s.h.Timeout)
	defer cancel()
	if err := s.sink.WriteTx(ctx, recs, pos); err != nil {
		s.t.Fatalf("WriteTx of %d records with positions %v: %v", len(recs), pos, err)
	}
}

// records returns records from..to-1 in partition part, their positions the index + 1.
func (h TransactionalSinkHarness) records(part string, from, to int) []connector.Record {
	out := make([]connector.Record, 0, to-from)
	for i := from; i < to; i++ {
		r := h.Record(i)
		r.Position = connector.Position{Partition: part, Offset: int64(i + 1)}
		out = append(out, r)
	}
	return out
}

// wantPositions fails unless got holds exactly want (in any order), cursors compared by bytes.
func wantPositions(t *testing.T, what string, got []connector.Position, want ...connector.Position) {
	t.Helper()
	key := func(ps []connector.Position) string {
		var parts []string
		for _, p := range ps {
			parts = append(parts, fmt.Sprintf("%q@%d+%x", p.Partition, p.Offset, p.Cursor))
		}
		slices.Sort(parts)
		return strings.Join(parts, " ")
	}
	if key(got) != key(want) {
		t.Fatalf("%s: StoredPositions = %v, want %v", what, got, want)
	}
}

// wantRecords fails unless the destination holds every record of want exactly once, and nothing
// of unwanted.
func wantRecords(t *testing.T, h TransactionalSinkHarness, readBack func(t *testing.T) []connector.Record, want []connector.Record, unwanted []connector.Record) {
	t.Helper()
	if readBack == nil {
		t.Log("conntest: no read-back function; what arrived is not checked")
		return
	}
	seen := map[string]int{}
	for _, r := range readBack(t) {
		seen[h.Identity(r)]++
	}
	for _, r := range want {
		if n := seen[h.Identity(r)]; n != 1 {
			t.Fatalf("record %q is in the destination %d times, want once", h.Identity(r), n)
		}
	}
	for _, r := range unwanted {
		if n := seen[h.Identity(r)]; n != 0 {
			t.Fatalf("record %q of a failed write is in the destination %d times", h.Identity(r), n)
		}
	}
}

func txRoundTrip(t *testing.T, h TransactionalSinkHarness) {
	f, readBack := h.Setup(t)
	env := txEnv(t, txPipeline(), "out")
	s := openTx(t, h, f, env)
	wantPositions(t, "a new destination", s.stored)
	first := append(h.records("orders/0", 0, 10), h.records("", 10, 15)...)
	a := connector.Position{Partition: "orders/0", Offset: 10, Cursor: []byte{0, 1, 0xff, 'c'}}
	e := connector.Position{Partition: "", Offset: 15}
	b := connector.Position{Partition: "orders/1", Offset: 3} // no records of it: filtered out
	s.write(first, a, e, b)
	s.close()

	s = openTx(t, h, f, env)
	wantPositions(t, "after one transaction and a reopen", s.stored, a, e, b)
	second := h.records("orders/0", 15, 25)
	a2 := connector.Position{Partition: "orders/0", Offset: 25, Cursor: []byte("next")}
	s.write(second, a2)
	s.close()

	s = openTx(t, h, f, env)
	wantPositions(t, "after a transaction naming one partition (the others keep theirs)", s.stored, a2, e, b)
	wantRecords(t, h, readBack, append(first, second...), nil)
}

func txPositionsOnly(t *testing.T, h TransactionalSinkHarness) {
	f, readBack := h.Setup(t)
	env := txEnv(t, txPipeline(), "out")
	s := openTx(t, h, f, env)
	recs := h.records("p", 0, 5)
	s.write(recs, connector.Position{Partition: "p", Offset: 5})
	s.write(nil, connector.Position{Partition: "p", Offset: 500})
	s.write([]connector.Record{}, connector.Position{Partition: "q", Offset: 7})
	s.close()
	s = openTx(t, h, f, env)
	wantPositions(t, "after writes of positions only", s.stored, connector.Position{Partition: "p", Offset: 500}, connector.Position{Partition: "q", Offset: 7})
	wantRecords(t, h, readBack, recs, nil)
}

func txKeyed(t *testing.T, h TransactionalSinkHarness) {
	f, readBack := h.Setup(t)
	pl := txPipeline()
	pairs := [][2]string{{pl, "a"}, {pl, "b"}, {pl + "-other", "a"}}
	var all []connector.Record
	for i, pc := range pairs {
		s := openTx(t, h, f, txEnv(t, pc[0], pc[1]))
		wantPositions(t, fmt.Sprintf("pipeline %q sink %q, before it wrote (others did)", pc[0], pc[1]), s.stored)
		recs := h.records("p", 10*i, 10*i+10)
		all = append(all, recs...)
		s.write(recs, connector.Position{Partition: "p", Offset: int64(100 * (i + 1))})
		s.close()
	}
	for i, pc := range pairs {
		s := openTx(t, h, f, txEnv(t, pc[0], pc[1]))
		wantPositions(t, fmt.Sprintf("pipeline %q sink %q", pc[0], pc[1]), s.stored, connector.Position{Partition: "p", Offset: int64(100 * (i + 1))})
		s.close()
	}
	wantRecords(t, h, readBack, all, nil)
}

func txReopen(t *testing.T, h TransactionalSinkHarness) {
	f, readBack := h.Setup(t)
	env := txEnv(t, txPipeline(), "out")
	s := openTx(t, h, f, env)
	recs := h.records("p", 0, 20)
	pos := connector.Position{Partition: "p", Offset: 20}
	s.write(recs, pos)
	s.close()
	for i := range 3 {
		s = openTx(t, h, f, env)
		wantPositions(t, fmt.Sprintf("reopen %d", i+1), s.stored, pos)
		ctx, cancel := context.WithTimeout(context.Background(), h.Timeout)
		again, err := s.sink.StoredPositions(ctx)
		cancel()
		if err != nil {
			t.Fatalf("second StoredPositions: %v", err)
		}
		wantPositions(t, "a second StoredPositions", again, pos)
		s.close()
		ctx, cancel = context.WithTimeout(context.Background(), h.Timeout)
		err = s.sink.Close(ctx)
		cancel()
		if err != nil {
			t.Fatalf("second Close: %v", err)
		}
	}
	wantRecords(t, h, readBack, recs, nil)
}

func txAtomic(t *testing.T, h TransactionalSinkHarness) {
	f, readBack := h.Setup(t)
	env := txEnv(t, txPipeline(), "out")
	s := openTx(t, h, f, env)
	kept := h.records("p", 0, 10)
	pos := connector.Position{Partition: "p", Offset: 10}
	s.write(kept, pos)
	lost := h.records("p", 10, 20)
	ctx, cancel := context.WithTimeout(context.Background(), h.Timeout)
	defer cancel()
	var err error
	if h.BreakCommit != nil {
		repair := h.BreakCommit(t)
		err = s.sink.WriteTx(ctx, lost, []connector.Position{{Partition: "p", Offset: 20}})
		repair()
		if err == nil {
			t.Fatal("WriteTx succeeded although BreakCommit broke its commit")
		}
	} else {
		cctx, ccancel := context.WithCancel(ctx)
		ccancel()
		err = s.sink.WriteTx(cctx, lost, []connector.Position{{Partition: "p", Offset: 20}})
		if err == nil {
			t.Log("WriteTx with a cancelled context stored its transaction; atomicity is not tested (set BreakCommit)")
			return
		}
	}
	var be *connector.BatchError
	if errors.As(err, &be) {
		t.Fatalf("a failed transaction returned a *BatchError (%v): that says the rest and the positions were stored", err)
	}
	s.close()
	s = openTx(t, h, f, env)
	wantPositions(t, "after a failed WriteTx", s.stored, pos)
	wantRecords(t, h, readBack, kept, lost)
	// The sink works after the failure: the same transaction again.
	s.write(lost, connector.Position{Partition: "p", Offset: 20})
	s.close()
	s = openTx(t, h, f, env)
	wantPositions(t, "after the retried WriteTx", s.stored, connector.Position{Partition: "p", Offset: 20})
	wantRecords(t, h, readBack, append(kept, lost...), nil)
}

func txPartial(t *testing.T, h TransactionalSinkHarness) {
	f, readBack := h.Setup(t)
	env := txEnv(t, txPipeline(), "out")
	s := openTx(t, h, f, env)
	batch := h.records("p", 0, 10)
	poisoned := h.Poison(4)
	poisoned.Position = batch[4].Position
	batch[4] = poisoned
	ctx, cancel := context.WithTimeout(context.Background(), h.Timeout)
	defer cancel()
	err := s.sink.WriteTx(ctx, batch, []connector.Position{{Partition: "p", Offset: 10}})
	var be *connector.BatchError
	if !errors.As(err, &be) || len(be.Failed) != 1 || be.Failed[0].Index != 4 {
		t.Fatalf("WriteTx with record 4 poisoned returned %v; want a *connector.BatchError naming index 4", err)
	}
	s.close()
	s = openTx(t, h, f, env)
	wantPositions(t, "after a partly refused WriteTx", s.stored, connector.Position{Partition: "p", Offset: 10})
	wantRecords(t, h, readBack, slices.Delete(slices.Clone(batch), 4, 5), []connector.Record{poisoned})
}

// txShared: instances of one pipeline's sink, as the processes of a consumer group run them,
// write the same partitions. Whatever each one last read, every record is stored once and no
// position moves back.
func txShared(t *testing.T, h TransactionalSinkHarness) {
	f, readBack := h.Setup(t)
	env := txEnv(t, txPipeline(), "out")
	a := openTx(t, h, f, env)
	if sp, ok := a.sink.(connector.SharedPositions); !ok || !sp.SharesPositions() {
		t.Fatalf("Shared is set but %T does not report SharesPositions", a.sink)
	}
	b := openTx(t, h, f, env) // opened before a writes: its view is stale from the start
	var want []connector.Record
	pos := func(part string, off int) connector.Position {
		return connector.Position{Partition: part, Offset: int64(off)}
	}

	// a writes p up to 10; b, which read nothing, writes p 5..15 and q: only p 10..15 is new.
	a.write(h.records("p", 0, 10), pos("p", 10))
	want = append(want, h.records("p", 0, 10)...)
	b.write(slices.Concat(h.records("p", 5, 15), h.records("q", 1000, 1005)), pos("p", 15), pos("q", 1005))
	want = append(want, h.records("p", 10, 15)...)
	want = append(want, h.records("q", 1000, 1005)...)
	// Positions lower than stored do not move back, and their records are not written again.
	a.write(h.records("p", 2, 8), pos("p", 8))
	b.write(nil, pos("q", 3))
	a.close()
	b.close()
	s := openTx(t, h, f, env)
	wantPositions(t, "after writers with stale views", s.stored, pos("p", 15), pos("q", 1005))
	s.close()

	// Three instances at once: each writes all of p 15..215 in batches of 10 (a partition's records
	// handed over from one process to the next while the first still writes them), and a
	// partition of its own.
	const n = 3
	ss := make([]*txSession, n)
	for i := range ss {
		ss[i] = openTx(t, h, f, env)
	}
	want = append(want, h.records("p", 15, 215)...)
	errs := make(chan error, n)
	for i, s := range ss {
		own := fmt.Sprintf("own/%d", i)
		first := 2000 + 1000*i
		want = append(want, h.records(own, first, first+100)...)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), h.Timeout)
			defer cancel()
			for j := range 20 {
				from := 15 + 10*j
				recs := slices.Concat(h.records("p", from, from+10), h.records(own, first+5*j, first+5*j+5))
				if err := s.sink.WriteTx(ctx, recs, []connector.Position{pos("p", from+10), pos(own, first+5*j+5)}); err != nil {
					errs <- fmt.Errorf("instance %d, batch %d: %w", i, j, err)
					return
				}
			}
			errs <- nil
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range ss {
		s.close()
	}
	s = openTx(t, h, f, env)
	wantPositions(t, "after three instances wrote at once", s.stored, pos("p", 215), pos("q", 1005),
		pos("own/0", 2100), pos("own/1", 3100), pos("own/2", 4100))
	wantRecords(t, h, readBack, want, nil)
}
