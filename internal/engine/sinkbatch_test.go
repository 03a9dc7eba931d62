package engine_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/checkpoint"
	"github.com/sluicehq/sluice/internal/engine"
	"github.com/sluicehq/sluice/runtime/pipeline"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// objects hands a test's source or sink instance to the catalog factories of the enginetest-obj
// components, by id.
var objects sync.Map

func objectComponents() []connector.Component {
	spec := func(name string) connector.Spec {
		return connector.Spec{Name: name, Fields: []connector.Field{{Name: "id", Type: connector.TypeString}}}
	}
	load := func(cfg connector.Config) (any, error) {
		o, ok := objects.Load(cfg.String("id"))
		if !ok {
			return nil, fmt.Errorf("no test object %q", cfg.String("id"))
		}
		return o, nil
	}
	return []connector.Component{
		connector.SourceComponent(spec("enginetest-obj"), func(cfg connector.Config, env connector.Env) (connector.Source, error) {
			o, err := load(cfg)
			if err != nil {
				return nil, err
			}
			if f, ok := o.(func(connector.Env) connector.Source); ok {
				return f(env), nil
			}
			return o.(connector.Source), nil
		}),
		connector.SinkComponent(spec("enginetest-obj"), func(cfg connector.Config, env connector.Env) (connector.Sink, error) {
			o, err := load(cfg)
			if err != nil {
				return nil, err
			}
			if f, ok := o.(func(connector.Env) connector.Sink); ok {
				return f(env), nil
			}
			return o.(connector.Sink), nil
		}),
	}
}

// object registers o for the test and returns the component that builds it.
func object(t *testing.T, o any) pipeline.Component {
	id := fmt.Sprintf("%s/%d", t.Name(), time.Now().UnixNano())
	objects.Store(id, o)
	t.Cleanup(func() { objects.Delete(id) })
	return pipeline.Component{Type: "enginetest-obj", Config: connector.Config{"id": id}}
}

// feedSource returns the records fed to it, one Read per feed, and blocks when none is waiting,
// like a stream with nothing new. It resumes after the positions it is opened with and records
// what it was opened with and acked.
type feedSource struct {
	ch chan []connector.Record

	mu     sync.Mutex
	opened []connector.Position
	acked  map[string]connector.Position
}

func newFeedSource() *feedSource { return &feedSource{ch: make(chan []connector.Record, 1024)} }

// feed queues n records with values prefix0..prefix(n-1) in partition part, at offsets from+1 on.
func (s *feedSource) feed(part, prefix string, from int64, n int) {
	recs := make([]connector.Record, n)
	for i := range recs {
		recs[i] = connector.Record{Value: fmt.Appendf(nil, "%s%d", prefix, from+int64(i)+1), Position: connector.Position{Partition: part, Offset: from + int64(i) + 1}}
	}
	s.ch <- recs
}

func (s *feedSource) Open(_ context.Context, resume []connector.Position) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opened = slices.Clone(resume)
	return nil
}

func (s *feedSource) Read(ctx context.Context) ([]connector.Record, error) {
	select {
	case recs := <-s.ch:
		return recs, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (s *feedSource) Ack(_ context.Context, ps []connector.Position) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.acked == nil {
		s.acked = map[string]connector.Position{}
	}
	for _, p := range ps {
		s.acked[p.Partition] = p
	}
	return nil
}

func (s *feedSource) ackedAt(part string) (connector.Position, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.acked[part]
	return p, ok
}

func (s *feedSource) Close(context.Context) error { return nil }

// PositionsComparable is true: offsets grow within a partition.
func (s *feedSource) PositionsComparable() bool { return true }

// writeLog is a sink that keeps every record and the size of every write.
type writeLog struct {
	mu     sync.Mutex
	values []string
	writes []int
}

func (s *writeLog) Open(context.Context) error { return nil }
func (s *writeLog) Write(_ context.Context, recs []connector.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range recs {
		s.values = append(s.values, string(r.Value))
	}
	s.writes = append(s.writes, len(recs))
	return nil
}
func (s *writeLog) Close(context.Context) error { return nil }

func (s *writeLog) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.values)
}

func (s *writeLog) sizes() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.writes)
}

// startPipeline runs p in the background; the returned function stops it gracefully and returns
// Run's result.
func startPipeline(t *testing.T, p *pipeline.Pipeline, store *checkpoint.Store) func() error {
	t.Helper()
	e, err := engine.New(p, engine.Options{Catalog: testCatalog(), Checkpoints: store, DrainTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(30 * time.Second):
			t.Fatal("pipeline did not stop")
			return nil
		}
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

func batchedSink(name string, c pipeline.Component, b pipeline.BatchPolicy) pipeline.Sink {
	s := sink(name, c)
	s.Batch = &b
	return s
}

func TestSinkBatchLingerWritesWithoutNewRecords(t *testing.T) {
	src, lake := newFeedSource(), &writeLog{}
	p := spec("linger", object(t, src), batchedSink("lake", object(t, lake), pipeline.BatchPolicy{MaxRecords: 10_000, Linger: 20 * time.Millisecond}))
	stop := startPipeline(t, p, openStore(t, t.TempDir()))
	src.feed("p", "v", 0, 10)
	// The source has nothing more and stays open: only the sink's linger can write the 10.
	waitFor(t, "the lingering sink batch is written", func() bool { return lake.count() == 10 })
	if w := lake.sizes(); len(w) != 1 || w[0] != 10 {
		t.Fatalf("writes %v, want one of 10", w)
	}
	waitFor(t, "the source is acked", func() bool { p, ok := src.ackedAt("p"); return ok && p.Offset == 10 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

func TestSinkBatchDoesNotHoldUpOtherSinksNorAckEarly(t *testing.T) {
	src, fast, lake := newFeedSource(), &writeLog{}, &writeLog{}
	store := openStore(t, t.TempDir())
	p := spec("holdup", object(t, src), sink("fast", object(t, fast)),
		batchedSink("lake", object(t, lake), pipeline.BatchPolicy{MaxRecords: 10_000, Linger: time.Hour}))
	stop := startPipeline(t, p, store)
	for i := range 6 {
		src.feed("p", "v", int64(i*500), 500)
	}
	waitFor(t, "the sink without a batch gets every record", func() bool { return fast.count() == 3000 })
	if n := lake.count(); n != 0 {
		t.Fatalf("the lake wrote %d records before its batch was full or its linger passed", n)
	}
	// Nothing is durable in the lake yet: no position may be checkpointed or acked.
	if pos, _ := store.Load("holdup"); len(pos) != 0 {
		t.Fatalf("checkpointed %v while the lake still gathers those records", pos)
	}
	if p, ok := src.ackedAt("p"); ok {
		t.Fatalf("acked %v while the lake still gathers those records", p)
	}
	if err := stop(); err != nil { // the drain writes the lake's batch
		t.Fatal(err)
	}
	if w := lake.sizes(); len(w) != 1 || w[0] != 3000 {
		t.Fatalf("lake writes %v, want one of 3000 at the drain", w)
	}
	if pos, _ := store.Load("holdup"); len(pos) != 1 || pos[0].Offset != 3000 {
		t.Fatalf("checkpoint %v after the drain, want p@3000", pos)
	}
}

func TestSinkBatchKeepsToItsLimits(t *testing.T) {
	dir := t.TempDir()
	lake := &memSink{}
	// Every 97th record is refused by the sink: it goes to the dead letters from a gathered write.
	p := spec("limits", genSource(10_000, `{{seq}}{{pick a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a a refuse}}`),
		batchedSink("lake", newMemSink(t, lake), pipeline.BatchPolicy{MaxRecords: 2500, Linger: time.Hour}))
	p.DeadLetter = &pipeline.Component{Type: "file", Config: connector.Config{"path": filepath.Join(dir, "dlq.jsonl")}}
	if err := runPipeline(t, context.Background(), p, openStore(t, filepath.Join(dir, "data")), nil); err != nil {
		t.Fatal(err)
	}
	writes := lake.writes.Load()
	// Items of 1000 records (the generate source's batches): a write takes two, as a third would
	// pass 2500; the last write is the drain's.
	if writes != 5 {
		t.Fatalf("%d writes, want 5 of at most 2500 records", writes)
	}
	got, dlq := len(lake.got()), len(readLines(t, filepath.Join(dir, "dlq.jsonl")))
	if got+dlq != 10_000 || dlq == 0 {
		t.Fatalf("lake %d + dead letters %d, want 10000 with some dead letters", got, dlq)
	}
}

func TestSinkBatchWritesEarlyWhenTheBudgetIsFull(t *testing.T) {
	src, lake := newFeedSource(), &writeLog{}
	// The budget takes two 1500-record batches but not three; the lake's batch could hold more
	// than the budget lets in: it must write once it holds half of the budget and the source waits.
	p := spec("pressure", object(t, src), batchedSink("lake", object(t, lake), pipeline.BatchPolicy{MaxRecords: 4000, Linger: time.Hour}))
	p.Batch = pipeline.BatchPolicy{MaxRecords: 1500, MaxBytes: 4 << 20, Linger: time.Hour}
	p.Buffer = pipeline.BufferPolicy{MaxRecords: 4000, MaxBytes: 64 << 20}
	stop := startPipeline(t, p, openStore(t, t.TempDir()))
	for i := range 20 {
		src.feed("p", "v", int64(i*1500), 1500)
	}
	// The last two batches fit in the budget, so nothing makes the lake write them before its
	// linger or the drain; everything before them must be written while the source stays open.
	waitFor(t, "all but the last two batches written while the source stays open", func() bool { return lake.count() == 27_000 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got, want := fmt.Sprint(lake.sizes()), fmt.Sprint(slices.Repeat([]int{3000}, 10)); got != want {
		t.Fatalf("writes %v, want ten of 3000 (two batches: half the budget or more)", got)
	}
}
