package engine_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/runtime/pipeline"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// pipeSink is a connector.PipelinedSink over a memSink, as the contract describes one: it writes
// the batches handed over in order, one at a time, and writes a batch only if the one handed
// over before it was written. The first batch holding "fail-once" fails as a whole.
type pipeSink struct {
	*memSink
	mu       sync.Mutex
	prev     chan bool // closed-over result of the previous batch: true when written
	inFlight atomic.Int32
	maxIn    atomic.Int32
	async    atomic.Int32
	failed   atomic.Bool
	// gate, when set, holds the first write's wait until the second write is handed over.
	gate chan struct{}
}

func (s *pipeSink) WriteAsync(ctx context.Context, recs []connector.Record) func() error {
	nth := s.async.Add(1)
	if s.gate != nil && nth == 2 {
		close(s.gate)
	}
	if n := s.inFlight.Add(1); n > s.maxIn.Load() {
		s.maxIn.Store(n)
	}
	s.mu.Lock()
	prev, mine := s.prev, make(chan bool, 1)
	s.prev = mine
	s.mu.Unlock()
	done := make(chan error, 1)
	go func() {
		written := true
		if prev != nil {
			written = <-prev
		}
		var err error
		switch {
		case !written:
			err = errors.New("not written: the batch before it failed")
		case !s.failed.Load() && containsValue(recs, "fail-once"):
			s.failed.Store(true)
			err = errors.New("transient: the whole batch failed")
		default:
			err = s.memSink.Write(ctx, recs)
		}
		var be *connector.BatchError
		mine <- err == nil || errors.As(err, &be)
		done <- err
	}()
	return func() error {
		defer s.inFlight.Add(-1)
		if s.gate != nil && nth == 1 {
			select {
			case <-s.gate:
			case <-time.After(time.Minute):
				return fmt.Errorf("the second write was not handed over while the first was awaited: %w", connector.ErrPermanent)
			}
		}
		return <-done
	}
}

// Write is the ordinary write the runtime uses again after a failure; it follows the batches
// handed over before it.
func (s *pipeSink) Write(ctx context.Context, recs []connector.Record) error {
	s.mu.Lock()
	s.prev = nil
	s.mu.Unlock()
	return s.memSink.Write(ctx, recs)
}

func containsValue(recs []connector.Record, v string) bool {
	for _, r := range recs {
		if bytes.Contains(r.Value, []byte(v)) {
			return true
		}
	}
	return false
}

// slowOpenSink stops the run once its Open is under way (stop: the run's cancel) and waits for its
// context, like a sink whose system is slow to answer when SIGTERM arrives.
type slowOpenSink struct {
	memSink
	stop context.CancelFunc
}

func (s *slowOpenSink) Open(ctx context.Context) error {
	s.stop()
	<-ctx.Done()
	return ctx.Err()
}

var stopOnOpen sync.Map // id -> context.CancelFunc

func slowOpenSinkComponent() connector.Component {
	return connector.SinkComponent(connector.Spec{Name: "enginetest-slowopen", Fields: []connector.Field{{Name: "id", Type: connector.TypeString}}},
		func(cfg connector.Config, _ connector.Env) (connector.Sink, error) {
			cancel, ok := stopOnOpen.Load(cfg.String("id"))
			if !ok {
				return nil, fmt.Errorf("no test run %q", cfg.String("id"))
			}
			return &slowOpenSink{stop: cancel.(context.CancelFunc)}, nil
		})
}

// A stop while the components open (SIGTERM right after start) is a graceful stop, not a failure.
func TestStopWhileOpeningIsGraceful(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stopOnOpen.Store(t.Name(), cancel)
	t.Cleanup(func() { stopOnOpen.Delete(t.Name()) })
	p := spec("slowopen", genSource(10, "{{seq}}"), sink("out", pipeline.Component{Type: "enginetest-slowopen", Config: connector.Config{"id": t.Name()}}))
	if err := runPipeline(t, ctx, p, openStore(t, t.TempDir()), nil); err != nil {
		t.Fatalf("run stopped while opening = %v, want nil", err)
	}
}

var pipeSinks sync.Map // id -> *pipeSink

func pipeSinkComponent() connector.Component {
	return connector.SinkComponent(connector.Spec{Name: "enginetest-pipe", Fields: []connector.Field{{Name: "id", Type: connector.TypeString}}},
		func(cfg connector.Config, _ connector.Env) (connector.Sink, error) {
			s, ok := pipeSinks.Load(cfg.String("id"))
			if !ok {
				return nil, fmt.Errorf("no test sink %q", cfg.String("id"))
			}
			return s.(*pipeSink), nil
		})
}

// A pipelined sink gets the batches through WriteAsync, at most a few in flight, and every line
// arrives once and in order; a batch that failed as a whole is written again, and so are the
// ones handed over after it, which the sink did not write.
func TestPipelinedSinkDeliversInOrder(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.txt")
	var b strings.Builder
	var want []string
	for i := range 20_000 {
		v := fmt.Sprintf("v%d", i)
		if i == 9_000 {
			v = "fail-once"
		}
		want = append(want, v)
		b.WriteString(v + "\n")
	}
	if err := os.WriteFile(in, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	ps := &pipeSink{memSink: &memSink{delay: time.Millisecond}}
	id := t.Name()
	pipeSinks.Store(id, ps)
	t.Cleanup(func() { pipeSinks.Delete(id) })
	p := spec("pipelined", pipeline.Component{Type: "file", Config: connector.Config{"path": in}},
		sink("out", pipeline.Component{Type: "enginetest-pipe", Config: connector.Config{"id": id}}))
	p.Batch.MaxRecords = 500
	if err := runPipeline(t, context.Background(), p, openStore(t, filepath.Join(dir, "cp")), nil); err != nil {
		t.Fatal(err)
	}
	got := ps.got()
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("got %d values, want %d in order, each once", len(got), len(want))
	}
	if ps.async.Load() == 0 || !ps.failed.Load() {
		t.Fatalf("WriteAsync calls %d, failure injected %v; want both", ps.async.Load(), ps.failed.Load())
	}
	t.Logf("%d batches handed over, at most %d in flight", ps.async.Load(), ps.maxIn.Load())
	if m := ps.maxIn.Load(); m > connector.MaxWritesInFlight {
		t.Fatalf("%d writes in flight, want at most %d", m, connector.MaxWritesInFlight)
	}
}

// A batch that arrives while the oldest write is awaited is handed over at once: the first
// write's wait ends only once the second write is handed over, and the second record comes only
// after the first was handed over (a paced source, one record a batch).
func TestPipelinedSinkHandsOverWhileAwaiting(t *testing.T) {
	ps := &pipeSink{memSink: &memSink{}, gate: make(chan struct{})}
	id := t.Name()
	pipeSinks.Store(id, ps)
	t.Cleanup(func() { pipeSinks.Delete(id) })
	src := pipeline.Component{Type: "generate", Config: connector.Config{"count": int64(5), "template": "{{seq}}", "batch_size": int64(1), "rate": float64(50), "seed": int64(1)}}
	p := spec("handover", src, sink("out", pipeline.Component{Type: "enginetest-pipe", Config: connector.Config{"id": id}}))
	p.Batch.MaxRecords = 1
	if err := runPipeline(t, context.Background(), p, openStore(t, t.TempDir()), nil); err != nil {
		t.Fatal(err)
	}
	if got := ps.got(); len(got) != 5 {
		t.Fatalf("got %v, want 5 records", got)
	}
}
