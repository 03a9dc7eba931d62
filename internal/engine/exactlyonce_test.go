package engine_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/engine"
	"github.com/sluicehq/sluice/runtime/pipeline"
	"github.com/sluicehq/sluice/runtime/transform"
	"github.com/sluicehq/sluice/sdk/go/connector"
	"github.com/sluicehq/sluice/sdk/go/conntest"
)

// txDB is an in-memory database of transactional sinks: rows and positions per (pipeline, sink),
// changed together by WriteTx, surviving the sinks that wrote them (a reopened sink sees them).
type txDB struct {
	mu      sync.Mutex
	rows    map[string][]string
	pos     map[string]map[string]connector.Position
	txs     map[string]int // WriteTx calls that stored something
	posOnly map[string]int // of which, calls without records
	// crashAt makes the n-th WriteTx of a sink fail permanently, storing nothing, as if the
	// process died there.
	crashAt map[string]int
	// broken makes every WriteTx fail, storing nothing, as a lost connection would.
	broken bool
}

func newTxDB() *txDB {
	return &txDB{rows: map[string][]string{}, pos: map[string]map[string]connector.Position{}, txs: map[string]int{}, posOnly: map[string]int{}, crashAt: map[string]int{}}
}

func txKey(pipelineName, sinkName string) string { return pipelineName + "/" + sinkName }

// txSink is one sink of a txDB. Values containing "refuse" are refused (a *BatchError), the rest
// stored; Write outside exactly_once mode stores without positions.
type txSink struct {
	db  *txDB
	key string
}

func (db *txDB) sink(env connector.Env) connector.Sink {
	return &txSink{db: db, key: txKey(env.Pipeline, env.Component)}
}

func (s *txSink) Open(context.Context) error  { return nil }
func (s *txSink) Close(context.Context) error { return nil }
func (s *txSink) CheckExactlyOnce() error     { return nil }

func (s *txSink) StoredPositions(context.Context) ([]connector.Position, error) {
	s.db.mu.Lock()
	defer s.db.mu.Unlock()
	var out []connector.Position
	for _, p := range s.db.pos[s.key] {
		out = append(out, p)
	}
	return out, nil
}

func (s *txSink) Write(ctx context.Context, recs []connector.Record) error {
	return s.WriteTx(ctx, recs, nil)
}

func (s *txSink) WriteTx(_ context.Context, recs []connector.Record, pos []connector.Position) error {
	s.db.mu.Lock()
	defer s.db.mu.Unlock()
	if s.db.broken {
		return errors.New("connection lost before the commit")
	}
	if n := s.db.crashAt[s.key]; n > 0 && s.db.txs[s.key]+1 >= n {
		return fmt.Errorf("crash before transaction %d: %w", n, connector.ErrPermanent)
	}
	var be connector.BatchError
	for i, r := range recs {
		if bytes.Contains(r.Value, []byte("refuse")) {
			be.Failed = append(be.Failed, connector.RecordError{Index: i, Err: errors.New("refused by the test database")})
			continue
		}
		s.db.rows[s.key] = append(s.db.rows[s.key], string(r.Value))
	}
	if s.db.pos[s.key] == nil {
		s.db.pos[s.key] = map[string]connector.Position{}
	}
	for _, p := range pos {
		if old, ok := s.db.pos[s.key][p.Partition]; ok && p.Offset <= old.Offset {
			return fmt.Errorf("positions moved back in %q: %d after %d: %w", p.Partition, p.Offset, old.Offset, connector.ErrPermanent)
		}
		s.db.pos[s.key][p.Partition] = p
	}
	s.db.txs[s.key]++
	if len(recs) == 0 {
		s.db.posOnly[s.key]++
	}
	if len(be.Failed) > 0 {
		return &be
	}
	return nil
}

func (db *txDB) values(key string) []string {
	db.mu.Lock()
	defer db.mu.Unlock()
	return slices.Clone(db.rows[key])
}

func (db *txDB) positions(key string) map[string]connector.Position {
	db.mu.Lock()
	defer db.mu.Unlock()
	out := map[string]connector.Position{}
	for k, v := range db.pos[key] {
		out[k] = v
	}
	return out
}

// txComponent registers db's sinks for the test.
func txComponent(t *testing.T, db *txDB) pipeline.Component {
	return object(t, db.sink)
}

// wantSequence fails unless got holds prefix+from..prefix+to, each once, in order.
func wantSequence(t *testing.T, what string, got []string, from, to int) {
	t.Helper()
	if len(got) != to-from+1 {
		t.Fatalf("%s: %d records, want %d (%d..%d)", what, len(got), to-from+1, from, to)
	}
	for i, v := range got {
		if v != fmt.Sprint(from+i) {
			t.Fatalf("%s: record %d is %q, want %d", what, i, v, from+i)
		}
	}
}

func exactlyOnce(p *pipeline.Pipeline) *pipeline.Pipeline {
	p.Delivery = pipeline.ExactlyOnce
	return p
}

func TestExactlyOnceSinksStoppedAtDifferentPointsResume(t *testing.T) {
	db := newTxDB()
	store := openStore(t, t.TempDir())
	build := func(count int64) *pipeline.Pipeline {
		p := exactlyOnce(spec("eo", genSource(count, "{{seq}}"),
			batchedSink("a", txComponent(t, db), pipeline.BatchPolicy{MaxRecords: 1000, Linger: time.Hour}),
			batchedSink("b", txComponent(t, db), pipeline.BatchPolicy{MaxRecords: 3500, Linger: time.Hour})))
		p.Batch.MaxRecords = 1000 // the generate source's batches
		return p
	}
	// First run: a stores every batch of 1000, b every three; a crashes at its 8th transaction,
	// so a stops at 7000 and b at a multiple of 3000 (0 when the crash stops it before its first
	// write). b may run ahead of a by the pipeline's in-flight budget, so the first run's source
	// ends at 12,000, below what the second run goes to: b can never hold more than that.
	db.crashAt[txKey("eo", "a")] = 8
	if err := runPipeline(t, context.Background(), build(12_000), store, nil); err == nil || !strings.Contains(err.Error(), "crash before transaction 8") {
		t.Fatalf("first run: %v, want the crash", err)
	}
	a, b := db.positions(txKey("eo", "a"))["generate"], db.positions(txKey("eo", "b"))["generate"]
	local, _ := store.Load("eo")
	t.Logf("stopped at: a %v, b %v, local checkpoint %v", a, b, local)
	if a.Offset != 7000 || b.Offset%3000 != 0 {
		t.Fatalf("a stored %v, b %v: want a at 7000 and b at a multiple of 3000", a, b)
	}
	delete(db.crashAt, txKey("eo", "a"))
	if err := runPipeline(t, context.Background(), build(20_000), store, nil); err != nil {
		t.Fatal(err)
	}
	wantSequence(t, "sink a", db.values(txKey("eo", "a")), 1, 20_000)
	wantSequence(t, "sink b", db.values(txKey("eo", "b")), 1, 20_000)
	for _, k := range []string{"a", "b"} {
		if p := db.positions(txKey("eo", k))["generate"]; p.Offset != 20_000 {
			t.Fatalf("sink %s stored %v at the end, want generate@20000", k, p)
		}
	}
}

func TestExactlyOnceResumesEachSinkAfterWhatItStored(t *testing.T) {
	db := newTxDB()
	store := openStore(t, t.TempDir())
	// a holds 1..300, b 1..700; c is new: it holds nothing, and the local checkpoint says every
	// sink the pipeline had got everything up to 200.
	for k, n := range map[string]int{"a": 300, "b": 700} {
		for i := 1; i <= n; i++ {
			db.rows[txKey("eo", k)] = append(db.rows[txKey("eo", k)], fmt.Sprint(i))
		}
		db.pos[txKey("eo", k)] = map[string]connector.Position{"generate": {Partition: "generate", Offset: int64(n)}}
	}
	if err := store.Save("eo", []connector.Position{{Partition: "generate", Offset: 200}}); err != nil {
		t.Fatal(err)
	}
	p := exactlyOnce(spec("eo", genSource(1000, "{{seq}}"), sink("a", txComponent(t, db)), sink("b", txComponent(t, db)), sink("c", txComponent(t, db))))
	if err := runPipeline(t, context.Background(), p, store, nil); err != nil {
		t.Fatal(err)
	}
	wantSequence(t, "sink a", db.values(txKey("eo", "a")), 1, 1000)
	wantSequence(t, "sink b", db.values(txKey("eo", "b")), 1, 1000)
	wantSequence(t, "new sink c", db.values(txKey("eo", "c")), 201, 1000)

	// Without the local checkpoint (--reset), a sink that stored nothing gets everything from the
	// source's beginning, and the others still nothing twice.
	d := newTxDB()
	for k, n := range map[string]int{"a": 300} {
		for i := 1; i <= n; i++ {
			d.rows[txKey("eo2", k)] = append(d.rows[txKey("eo2", k)], fmt.Sprint(i))
		}
		d.pos[txKey("eo2", k)] = map[string]connector.Position{"generate": {Partition: "generate", Offset: int64(n)}}
	}
	p = exactlyOnce(spec("eo2", genSource(1000, "{{seq}}"), sink("a", txComponent(t, d)), sink("c", txComponent(t, d))))
	if err := runPipeline(t, context.Background(), p, openStore(t, t.TempDir()), nil); err != nil {
		t.Fatal(err)
	}
	wantSequence(t, "sink a", d.values(txKey("eo2", "a")), 1, 1000)
	wantSequence(t, "new sink c without a checkpoint", d.values(txKey("eo2", "c")), 1, 1000)
}

// routeStage sends records whose value starts with "x" to port "other", rejects "bad" ones and
// passes the rest.
type routeStage struct{}

func (routeStage) Name() string                { return "route" }
func (routeStage) Close(context.Context) error { return nil }
func (routeStage) Process(_ context.Context, in []connector.Record) (transform.Result, error) {
	res := transform.Result{Actions: make([]transform.Action, len(in))}
	for i, r := range in {
		switch {
		case bytes.HasPrefix(r.Value, []byte("x")):
			res.Actions[i] = transform.Emit
			res.Emitted = append(res.Emitted, transform.Emitted{Input: i, Port: "other", Record: r})
		case bytes.HasPrefix(r.Value, []byte("bad")):
			res.Actions[i] = transform.Reject
			res.Rejected = append(res.Rejected, transform.Rejected{Input: i, Code: 1, Reason: "bad"})
		}
	}
	return res, nil
}

func TestExactlyOncePositionsMoveForSinksThatGetNoRecords(t *testing.T) {
	dir := t.TempDir()
	db := newTxDB()
	src := newFeedSource()
	p := exactlyOnce(spec("moves", object(t, src), sink("main", txComponent(t, db)),
		pipeline.Sink{Name: "other", From: "other", Component: txComponent(t, db)}))
	p.Transforms = []pipeline.Transform{{Name: "route"}}
	p.DeadLetter = &pipeline.Component{Type: "file", Config: connector.Config{"path": filepath.Join(dir, "dlq.jsonl")}}
	e, err := engine.New(p, engine.Options{Catalog: testCatalog(), Checkpoints: openStore(t, filepath.Join(dir, "data")), DrainTimeout: 10 * time.Second,
		NewStage: func(context.Context, string, pipeline.Transform, *slog.Logger) (transform.Stage, error) {
			return routeStage{}, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	// 200 batches for main only, then 50 that go to the dead letters: "other" gets nothing and
	// main nothing at the end, yet both store how far the source went.
	for i := range 200 {
		src.feed("p", "v", int64(i*10), 10)
	}
	for i := range 50 {
		src.feed("p", "bad", int64(2000+i*10), 10)
	}
	waitFor(t, "main stores its records", func() bool { return len(db.values(txKey("moves", "main"))) == 2000 })
	waitFor(t, "the dead letters reach the checkpoint", func() bool { p, ok := src.ackedAt("p"); return ok && p.Offset == 2500 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"main", "other"} {
		if p := db.positions(txKey("moves", k))["p"]; p.Offset != 2500 {
			t.Fatalf("sink %s stored %v, want p@2500", k, p)
		}
	}
	db.mu.Lock()
	posOnly, txs := db.posOnly[txKey("moves", "other")], db.txs[txKey("moves", "other")]
	db.mu.Unlock()
	// One positions-only write a second at most, and one at the drain: far fewer than the 250
	// batches (a bound that holds unless the 250 batches took a minute).
	if posOnly != txs || posOnly == 0 || posOnly > 60 {
		t.Fatalf("sink other: %d transactions, %d of positions only; want a few of positions only", txs, posOnly)
	}
	if n := len(readLines(t, filepath.Join(dir, "dlq.jsonl"))); n != 500 {
		t.Fatalf("%d dead letters, want 500", n)
	}
}

// tenthStage rejects the records whose value is a number ending in 9 and marks those ending in 0
// for refusal by txSink ("Nrefuse"); the generate source's records are the same after a restart.
type tenthStage struct{}

func (tenthStage) Name() string                { return "tenth" }
func (tenthStage) Close(context.Context) error { return nil }
func (tenthStage) Process(_ context.Context, in []connector.Record) (transform.Result, error) {
	res := transform.Result{Actions: make([]transform.Action, len(in))}
	for i, r := range in {
		switch r.Value[len(r.Value)-1] {
		case '9':
			res.Actions[i] = transform.Reject
			res.Rejected = append(res.Rejected, transform.Rejected{Input: i, Code: 9, Reason: "ends in 9"})
		case '0':
			res.Actions[i] = transform.Emit
			res.Emitted = append(res.Emitted, transform.Emitted{Input: i, Record: connector.Record{Value: append(slices.Clone(r.Value), "refuse"...)}})
		}
	}
	return res, nil
}

// TestExactlyOnceDeadLetters crashes a pipeline whose transform rejects records and whose sink
// refuses some, then runs it to the end: the sink stores every other record once; every rejected
// record is in the dead letters at least once (the tail after the local checkpoint is read and
// rejected again); a refused record is never stored, and is in the dead letters unless the crash
// came between the sink's transaction and the dead-letter write (see RATIONALE).
func TestExactlyOnceDeadLetters(t *testing.T) {
	dir := t.TempDir()
	db := newTxDB()
	store := openStore(t, filepath.Join(dir, "data"))
	build := func() *pipeline.Pipeline {
		p := exactlyOnce(spec("letters", genSource(5000, "{{seq}}"),
			batchedSink("a", txComponent(t, db), pipeline.BatchPolicy{MaxRecords: 1000, Linger: time.Hour})))
		p.Batch.MaxRecords = 1000
		p.Transforms = []pipeline.Transform{{Name: "reject"}}
		p.DeadLetter = &pipeline.Component{Type: "file", Config: connector.Config{"path": filepath.Join(dir, "dlq.jsonl")}}
		return p
	}
	stages := func(context.Context, string, pipeline.Transform, *slog.Logger) (transform.Stage, error) {
		return tenthStage{}, nil
	}
	db.crashAt[txKey("letters", "a")] = 3
	if err := runPipeline(t, context.Background(), build(), store, stages); err == nil {
		t.Fatal("first run did not crash")
	}
	delete(db.crashAt, txKey("letters", "a"))
	if err := runPipeline(t, context.Background(), build(), store, stages); err != nil {
		t.Fatal(err)
	}
	stored := map[int]int{}
	for _, v := range db.values(txKey("letters", "a")) {
		n, _ := strconv.Atoi(v)
		stored[n]++
	}
	rejected, refused := map[int]int{}, map[int]int{}
	for _, l := range readLines(t, filepath.Join(dir, "dlq.jsonl")) {
		var e engine.Envelope
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatal(err)
		}
		if e.Kind == "rejected" {
			rejected[int(e.Offset)]++
		} else {
			refused[int(e.Offset)]++
		}
	}
	var nOK, nRejected, nRefused int
	for i := 1; i <= 5000; i++ {
		switch {
		case stored[i] == 1 && rejected[i] == 0 && refused[i] == 0:
			nOK++
		case stored[i] == 0 && rejected[i] >= 1 && refused[i] == 0:
			nRejected++
		case stored[i] == 0 && rejected[i] == 0:
			nRefused++
		default:
			t.Fatalf("record %d: stored %d times, rejected %d, refused %d", i, stored[i], rejected[i], refused[i])
		}
	}
	if nRejected == 0 || nRefused == 0 || nOK == 0 {
		t.Fatalf("%d stored, %d rejected, %d refused: want some of each", nOK, nRejected, nRefused)
	}
	if p := db.positions(txKey("letters", "a"))["generate"]; p.Offset != 5000 {
		t.Fatalf("stored %v, want generate@5000", p)
	}
}

func TestExactlyOnceIsRefusedWhereSourceOrSinksCannotHonourIt(t *testing.T) {
	// The generate source orders its positions; the drop sink stores none.
	p := exactlyOnce(spec("eo", genSource(10, "x"), sink("out", pipeline.Component{Type: "drop"}), sink("ok", txComponent(t, newTxDB()))))
	_, err := engine.New(p, engine.Options{Catalog: testCatalog(), Checkpoints: openStore(t, t.TempDir())})
	var ce *engine.ComponentError
	if !errors.As(err, &ce) || ce.Component != "out" || !strings.Contains(ce.Err.Error(), "does not store source positions") || !strings.Contains(ce.Hint, "at_least_once") {
		t.Fatalf("err = %v, want the drop sink refused with a hint", err)
	}
	if strings.Contains(err.Error(), `"ok"`) || strings.Contains(err.Error(), "source:") {
		t.Fatalf("err = %v names a component that can deliver exactly once", err)
	}

	// A file source following its file cannot order positions after a truncation.
	p = exactlyOnce(spec("eo", pipeline.Component{Type: "file", Config: connector.Config{"path": "/tmp/x", "follow": true}}, sink("ok", txComponent(t, newTxDB()))))
	_, err = engine.New(p, engine.Options{Catalog: testCatalog(), Checkpoints: openStore(t, t.TempDir())})
	if !errors.As(err, &ce) || ce.Component != "source" || !strings.Contains(ce.Err.Error(), "ordered after a restart") {
		t.Fatalf("err = %v, want the following file source refused", err)
	}

	// A sink that cannot as configured says why, naming its field.
	p = exactlyOnce(spec("eo", genSource(10, "x"), sink("cfg", object(t, &notNow{}))))
	_, err = engine.New(p, engine.Options{Catalog: testCatalog(), Checkpoints: openStore(t, t.TempDir())})
	var cfgErr *connector.ConfigError
	if !errors.As(err, &ce) || ce.Component != "cfg" || !errors.As(err, &cfgErr) || cfgErr.Field != "mode" {
		t.Fatalf("err = %v, want the sink's ConfigError for mode", err)
	}
}

// notNow is a transactional sink that cannot be written exactly once as configured.
type notNow struct{ txSink }

func (*notNow) CheckExactlyOnce() error {
	return &connector.ConfigError{Field: "mode", Msg: "publish delivers to whoever listens and stores nothing", Hint: "use mode: stream"}
}

// TestTxSinkConformance runs the transactional sink checks on the test database the engine's
// exactly-once tests rely on.
func TestTxSinkConformance(t *testing.T) {
	var db *txDB
	conntest.TestTransactionalSink(t, conntest.TransactionalSinkHarness{
		Setup: func(t *testing.T) (conntest.TxSinkFactory, func(t *testing.T) []connector.Record) {
			db = newTxDB()
			return func(env connector.Env) (connector.TransactionalSink, error) {
					return db.sink(env).(*txSink), nil
				}, func(t *testing.T) []connector.Record {
					db.mu.Lock()
					defer db.mu.Unlock()
					var out []connector.Record
					for _, rows := range db.rows {
						for _, v := range rows {
							out = append(out, connector.Record{Value: []byte(v)})
						}
					}
					return out
				}
		},
		Poison: func(i int) connector.Record { return connector.Record{Value: fmt.Appendf(nil, "refuse %d", i)} },
		BreakCommit: func(t *testing.T) func() {
			db.mu.Lock()
			db.broken = true
			db.mu.Unlock()
			return func() {
				db.mu.Lock()
				db.broken = false
				db.mu.Unlock()
			}
		},
	})
}

// groupedSource is a source that shares its partitions with other processes, as a Kafka source
// in a consumer group does.
type groupedSource struct{ *feedSource }

func (groupedSource) Grouped() bool             { return true }
func (groupedSource) PositionsComparable() bool { return true }

// sharedTxSink is a transactional sink several processes of one pipeline may write.
type sharedTxSink struct{ txSink }

func (*sharedTxSink) SharesPositions() bool { return true }

func TestExactlyOnceInAGroupWarnsOfSinksThatDoNotSharePositions(t *testing.T) {
	src := groupedSource{&feedSource{ch: make(chan []connector.Record)}}
	var logs bytes.Buffer
	p := exactlyOnce(spec("eo", object(t, src), sink("one", txComponent(t, newTxDB())), sink("shared", object(t, &sharedTxSink{}))))
	if _, err := engine.New(p, engine.Options{Catalog: testCatalog(), Checkpoints: openStore(t, t.TempDir()), Logger: slog.New(slog.NewTextHandler(&logs, nil))}); err != nil {
		t.Fatalf("one process of a grouped pipeline may use a sink that keeps positions for one process: %v", err)
	}
	out := logs.String()
	if !strings.Contains(out, "run one process of this pipeline") || !strings.Contains(out, "sink=one") || strings.Contains(out, "sink=shared") {
		t.Fatalf("logs %q: want a warning naming sink one only", out)
	}
}
