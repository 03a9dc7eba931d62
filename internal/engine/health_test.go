package engine_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/sluicehq/sluice/internal/engine"
	"github.com/sluicehq/sluice/internal/metrics"
	"github.com/sluicehq/sluice/runtime/pipeline"
	"github.com/sluicehq/sluice/runtime/transform"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// fakeClock is the engine's clock in these tests: time moves only when the test says so.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// value reads a gauge or counter.
func value(c prometheus.Metric) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	if m.Gauge != nil {
		return m.Gauge.GetValue()
	}
	return m.Counter.GetValue()
}

// waitFor polls cond until it holds; it fails the test when it never does.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("never happened: %s", what)
		}
	}
}

// gateSink blocks every write until open is closed, and fails writes while failing is set.
type gateSink struct {
	open    chan struct{}
	failing atomic.Bool
	writes  atomic.Int64
	n       atomic.Int64
}

func newGateSink() *gateSink { return &gateSink{open: make(chan struct{})} }

func (s *gateSink) Open(context.Context) error { return nil }
func (s *gateSink) Write(ctx context.Context, recs []connector.Record) error {
	s.writes.Add(1)
	if s.failing.Load() {
		return errors.New("disk on fire")
	}
	select {
	case <-s.open:
	case <-ctx.Done():
		return ctx.Err()
	}
	s.n.Add(int64(len(recs)))
	return nil
}
func (s *gateSink) Close(context.Context) error { return nil }

// harness runs one pipeline in the background with a fake clock and its own metrics.
type harness struct {
	e     *engine.Pipeline
	m     *metrics.Metrics
	clock *fakeClock
	done  chan error
}

func startHarness(t *testing.T, p *pipeline.Pipeline, cat func() connector.Component, stages engine.StageFactory) *harness {
	t.Helper()
	c := testCatalog()
	if cat != nil {
		if err := c.Add(cat()); err != nil {
			t.Fatal(err)
		}
	}
	h := &harness{m: metrics.New(), clock: newFakeClock(), done: make(chan error, 1)}
	e, err := engine.New(p, engine.Options{Catalog: c, Checkpoints: openStore(t, t.TempDir()), Metrics: h.m, NewStage: stages,
		Clock: h.clock.Now, MonitorInterval: time.Millisecond, DrainTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	h.e = e
	go func() { h.done <- e.Run(context.Background()) }()
	return h
}

func (h *harness) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-h.done:
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("pipeline did not end")
		return nil
	}
}

func gateComponent(s *gateSink) func() connector.Component {
	return func() connector.Component {
		return connector.SinkComponent(connector.Spec{Name: "gate"}, func(connector.Config, connector.Env) (connector.Sink, error) { return s, nil })
	}
}

// Defect 8: the lag users alert on is the backlog behind the source's end and the age of the
// oldest record in flight; neither existed, and the checkpoint age grew while idle.
func TestLagMetricsReportBacklogAndOldestRecordInFlight(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.txt")
	data := strings.Repeat("0123456789\n", 500)
	if err := os.WriteFile(in, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	gate := newGateSink()
	p := spec("lag", pipeline.Component{Type: "file", Config: connector.Config{"path": in}}, sink("out", pipeline.Component{Type: "gate"}))
	h := startHarness(t, p, gateComponent(gate), nil)
	backlog := func() float64 { return value(h.m.BacklogBytes.WithLabelValues("lag", in)) }
	oldest := func() float64 { return value(h.m.OldestInFlight.WithLabelValues("lag")) }

	// Nothing is delivered while the sink holds its first write: the whole file is behind.
	waitFor(t, "a write reaches the sink", func() bool { return gate.writes.Load() > 0 })
	waitFor(t, "backlog = file size", func() bool { return backlog() == float64(len(data)) })
	h.clock.Advance(90 * time.Second)
	waitFor(t, "oldest record in flight is 90s old", func() bool { return oldest() == 90 })

	close(gate.open)
	if err := h.wait(t); err != nil {
		t.Fatal(err)
	}
	if backlog() != 0 || oldest() != 0 {
		t.Fatalf("after delivering everything: backlog %v bytes, oldest in flight %vs; want 0, 0", backlog(), oldest())
	}
	if gate.n.Load() != 500 {
		t.Fatalf("delivered %d records, want 500", gate.n.Load())
	}
}

// Defect 8: /readyz stayed true while a sink failed for hours.
func TestNotReadyWhileASinkKeepsFailing(t *testing.T) {
	gate := newGateSink()
	gate.failing.Store(true)
	p := spec("failing", genSource(10, "x"), sink("out", pipeline.Component{Type: "gate"}))
	p.StuckAfter = time.Minute
	h := startHarness(t, p, gateComponent(gate), nil)

	waitFor(t, "the sink failed and is retried", func() bool { return gate.writes.Load() >= 2 })
	if st := h.e.Status(); !st.Ready {
		t.Fatalf("not ready before StuckAfter passed: %+v", st)
	}
	h.clock.Advance(2 * time.Minute)
	st := h.e.Status()
	if st.Ready || h.e.Ready() || !strings.Contains(st.Reason, `"out" has been failing`) || !strings.Contains(st.Reason, "disk on fire") {
		t.Fatalf("status = %+v; want not ready, naming the sink and its error", st)
	}
	waitFor(t, "the ready gauge drops", func() bool { return value(h.m.PipelineReady.WithLabelValues("failing")) == 0 })

	gate.failing.Store(false)
	close(gate.open)
	waitFor(t, "ready again once the sink recovers", func() bool { return h.e.Ready() || h.e.Status().State == pipeline.StateFinished })
	if err := h.wait(t); err != nil {
		t.Fatal(err)
	}
}

// blockingStage holds every batch until release is closed.
type blockingStage struct {
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

func (s *blockingStage) Name() string { return "slow" }
func (s *blockingStage) Process(ctx context.Context, in []connector.Record) (transform.Result, error) {
	s.once.Do(func() { close(s.entered) })
	select {
	case <-s.release:
	case <-ctx.Done():
		return transform.Result{}, ctx.Err()
	}
	return transform.Result{Actions: make([]transform.Action, len(in))}, nil
}
func (s *blockingStage) Close(context.Context) error { return nil }

// Defect 8: a stage stuck on one batch left the pipeline ready.
func TestNotReadyWhileAStageHoldsABatchTooLong(t *testing.T) {
	st := &blockingStage{entered: make(chan struct{}), release: make(chan struct{})}
	p := spec("stuck", genSource(10, "x"), sink("out", pipeline.Component{Type: "drop"}))
	p.Transforms = []pipeline.Transform{{Name: "slow"}}
	p.StuckAfter = time.Minute
	h := startHarness(t, p, nil, func(context.Context, string, pipeline.Transform, *slog.Logger) (transform.Stage, error) {
		return st, nil
	})

	<-st.entered
	if !h.e.Ready() {
		t.Fatalf("not ready before StuckAfter passed: %+v", h.e.Status())
	}
	h.clock.Advance(61 * time.Second)
	if s := h.e.Status(); s.Ready || !strings.Contains(s.Reason, `"slow" has held one batch`) {
		t.Fatalf("status = %+v; want not ready, naming the stage", s)
	}
	close(st.release)
	if err := h.wait(t); err != nil {
		t.Fatal(err)
	}
	if s := h.e.Status(); s.State != pipeline.StateFinished {
		t.Fatalf("status after the end = %+v", s)
	}
}

// brokenStage fails every call the way a broken module does.
type brokenStage struct{}

func (brokenStage) Name() string { return "validate" }
func (brokenStage) Process(context.Context, []connector.Record) (transform.Result, error) {
	return transform.Result{}, fmt.Errorf("every call timed out, and so did both halves: %w", transform.ErrBroken)
}
func (brokenStage) Close(context.Context) error { return nil }

// Defect 3 (engine side): a transform reporting itself broken stops the pipeline with an error
// naming it, readiness false with the reason, and a metric.
func TestBrokenTransformStopsThePipelineAndSaysWhy(t *testing.T) {
	p := spec("broken", genSource(10, "x"), sink("out", pipeline.Component{Type: "drop"}))
	p.Transforms = []pipeline.Transform{{Name: "validate"}}
	h := startHarness(t, p, nil, func(context.Context, string, pipeline.Transform, *slog.Logger) (transform.Stage, error) {
		return brokenStage{}, nil
	})
	err := h.wait(t)
	if !errors.Is(err, transform.ErrBroken) || !strings.Contains(err.Error(), `transform "validate" is broken`) {
		t.Fatalf("err = %v; want ErrBroken naming the transform", err)
	}
	st := h.e.Status()
	if st.Ready || st.State != pipeline.StateFailed || !strings.Contains(st.Reason, `transform "validate" is broken`) {
		t.Fatalf("status = %+v; want failed with the reason", st)
	}
	if n := value(h.m.StagesBroken.WithLabelValues("broken", "validate")); n != 1 {
		t.Fatalf("sluice_transform_broken_total = %v, want 1", n)
	}
}
