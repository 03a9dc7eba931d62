package supervisor_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/connectors/all"
	"github.com/sluicehq/sluice/runtime/catalog"
	"github.com/sluicehq/sluice/runtime/pipeline"
	"github.com/sluicehq/sluice/runtime/supervisor"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// trouble is shared by every instance of the lifecycle test sources, so that it outlives a
// run: a restarted pipeline builds new sources.
type trouble struct {
	mu       sync.Mutex
	failRuns int // runs of "flaky" still to fail once they reach failFrom
	opens    int // Open calls of "unreachable"
}

// seqSource returns "0", "1", … from its position, in batches of 10: n records ("n" > 0),
// or without end. Kind "flaky" fails every read from offset failFrom on while trouble.failRuns
// is positive, and uses up one of those runs when it closes after failing; kind "unreachable"
// never opens; kind "poison" fails permanently at failFrom.
type seqSource struct {
	kind     string
	n        int64
	failFrom int64
	tr       *trouble
	next     int64
	failed   bool
}

var errFlaky = errors.New("upstream answered 503")

func (s *seqSource) Open(_ context.Context, resume []connector.Position) error {
	if s.kind == "unreachable" {
		s.tr.mu.Lock()
		s.tr.opens++
		s.tr.mu.Unlock()
		return errors.New("dial tcp 127.0.0.1:1: connection refused")
	}
	for _, p := range resume {
		s.next = p.Offset + 1
	}
	return nil
}

func (s *seqSource) Read(ctx context.Context) ([]connector.Record, error) {
	if s.n > 0 && s.next >= s.n {
		return nil, io.EOF
	}
	if s.next >= s.failFrom {
		switch s.kind {
		case "poison":
			return nil, fmt.Errorf("record %d cannot be parsed: %w", s.next, connector.ErrPermanent)
		case "flaky":
			s.tr.mu.Lock()
			fail := s.tr.failRuns > 0
			s.tr.mu.Unlock()
			if fail {
				s.failed = true
				return nil, errFlaky
			}
		}
	}
	if s.n <= 0 {
		time.Sleep(time.Millisecond) // an endless source should not spin
	}
	var out []connector.Record
	for ; (s.n <= 0 || s.next < s.n) && len(out) < 10; s.next++ {
		out = append(out, connector.Record{Value: strconv.AppendInt(nil, s.next, 10), Position: connector.Position{Offset: s.next}})
	}
	return out, ctx.Err()
}

func (s *seqSource) Ack(context.Context, []connector.Position) error { return nil }
func (s *seqSource) Close(context.Context) error {
	if s.failed {
		s.tr.mu.Lock()
		s.tr.failRuns--
		s.tr.mu.Unlock()
	}
	return nil
}

// lifecycleCatalog offers the seqSource kinds as sources and "list" sinks, one shared listSink
// per pipeline name in sinks.
func lifecycleCatalog(t *testing.T, tr *trouble, sinks map[string]*listSink) *catalog.Catalog {
	t.Helper()
	var comps []connector.Component
	for _, kind := range []string{"seq", "flaky", "unreachable", "poison"} {
		comps = append(comps, connector.SourceComponent(connector.Spec{Name: kind, Fields: []connector.Field{
			{Name: "n", Type: connector.TypeInt}, {Name: "fail_from", Type: connector.TypeInt}}},
			func(cfg connector.Config, _ connector.Env) (connector.Source, error) {
				return &seqSource{kind: kind, n: cfg.Int("n"), failFrom: cfg.Int("fail_from"), tr: tr}, nil
			}))
	}
	comps = append(comps, connector.SinkComponent(connector.Spec{Name: "list"},
		func(_ connector.Config, env connector.Env) (connector.Sink, error) { return sinks[env.Pipeline], nil }))
	cat, err := catalog.New(comps...)
	if err != nil {
		t.Fatal(err)
	}
	return cat
}

func seqPipeline(name, kind string, n, failFrom int64) *pipeline.Pipeline {
	return &pipeline.Pipeline{
		Name:   name,
		Source: pipeline.Component{Type: kind, Config: connector.Config{"n": n, "fail_from": failFrom}},
		Sinks:  []pipeline.Sink{{Name: "out", Component: pipeline.Component{Type: "list", Config: connector.Config{}}}},
	}
}

func (s *listSink) snapshot() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.got)
}

// checkSequence fails unless got is "0" … "n-1", each once, in order.
func checkSequence(t *testing.T, got []string, n int) {
	t.Helper()
	if len(got) != n {
		t.Fatalf("delivered %d records, want %d", len(got), n)
	}
	for i, v := range got {
		if v != strconv.Itoa(i) {
			t.Fatalf("record %d = %q: a gap or a repeat", i, v)
		}
	}
}

func statusOf(sup *supervisor.Supervisor, name string) supervisor.Status {
	for _, st := range sup.Status() {
		if st.Name == name {
			return st
		}
	}
	return supervisor.Status{}
}

// waitUntil polls cond until it holds or a minute passes.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func newSupervisor(t *testing.T, cat *catalog.Catalog, pol supervisor.RestartPolicy) *supervisor.Supervisor {
	t.Helper()
	sup, err := supervisor.New(supervisor.Options{Catalog: cat, DataDir: t.TempDir(), Restart: pol})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sup.Close(context.Background()) })
	return sup
}

// A pipeline whose source fails transiently is restarted, waiting longer after each failure in
// a row, and delivers everything once the source recovers; the other pipeline never notices.
func TestTransientFailureRestartsWithGrowingBackoff(t *testing.T) {
	t.Parallel()
	tr := &trouble{failRuns: 3}
	sinks := map[string]*listSink{"flaky": {}, "steady": {}}
	sup := newSupervisor(t, lifecycleCatalog(t, tr, sinks), supervisor.RestartPolicy{InitialBackoff: 100 * time.Millisecond, MaxBackoff: 10 * time.Second})
	if problems := sup.Add(context.Background(), seqPipeline("flaky", "flaky", 500, 200), seqPipeline("steady", "seq", 3000, 0)); len(problems) > 0 {
		t.Fatal(problems)
	}
	var mu sync.Mutex
	var backoffs []float64
	done := make(chan error, 1)
	go func() { done <- sup.Run(context.Background(), supervisor.RunOptions{}) }()
	for running := true; running; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			running = false
		case <-time.After(2 * time.Millisecond):
			if st := statusOf(sup, "flaky"); st.State == pipeline.StateDegraded && st.BackoffSeconds > 0 {
				mu.Lock()
				if len(backoffs) == 0 || backoffs[len(backoffs)-1] != st.BackoffSeconds {
					backoffs = append(backoffs, st.BackoffSeconds)
					if !strings.Contains(st.Reason, "503") || !strings.Contains(st.LastError, "503") {
						t.Errorf("degraded status does not say why: %+v", st)
					}
				}
				mu.Unlock()
			}
		}
	}
	if !slices.Equal(backoffs, []float64{0.1, 0.2, 0.4}) {
		t.Errorf("backoffs seen = %v, want 0.1, 0.2, 0.4 s", backoffs)
	}
	checkSequence(t, sinks["flaky"].snapshot(), 500)
	checkSequence(t, sinks["steady"].snapshot(), 3000)
	if st := statusOf(sup, "flaky"); st.State != pipeline.StateFinished || st.Restarts != 3 || !st.Ready {
		t.Fatalf("flaky ended as %+v; want finished after 3 restarts", st)
	}
}

// A pipeline that never opens its components is given StartAttempts runs, then left failed;
// the other pipeline delivers everything and Run returns the failure.
func TestNeverStartedPipelineGivesUp(t *testing.T) {
	t.Parallel()
	tr := &trouble{}
	sinks := map[string]*listSink{"down": {}, "steady": {}}
	sup := newSupervisor(t, lifecycleCatalog(t, tr, sinks), supervisor.RestartPolicy{InitialBackoff: 10 * time.Millisecond, StartAttempts: 2})
	if problems := sup.Add(context.Background(), seqPipeline("down", "unreachable", 10, 0), seqPipeline("steady", "seq", 1000, 0)); len(problems) > 0 {
		t.Fatal(problems)
	}
	err := sup.Run(context.Background(), supervisor.RunOptions{})
	if err == nil || !strings.Contains(err.Error(), "connection refused") || !strings.Contains(err.Error(), "gave up after 2 attempts") {
		t.Fatalf("Run = %v; want the open error and the attempts", err)
	}
	checkSequence(t, sinks["steady"].snapshot(), 1000)
	if st := statusOf(sup, "down"); st.State != pipeline.StateFailed || st.Restarts != 1 || st.Ready {
		t.Fatalf("down = %+v; want failed after one restart", st)
	}
	if st := statusOf(sup, "steady"); st.State != pipeline.StateFinished {
		t.Fatalf("steady = %+v", st)
	}
}

// A permanent error is not retried: the pipeline fails at once, the others go on.
func TestPermanentErrorIsNotRetried(t *testing.T) {
	t.Parallel()
	tr := &trouble{}
	sinks := map[string]*listSink{"bad": {}, "steady": {}}
	sup := newSupervisor(t, lifecycleCatalog(t, tr, sinks), supervisor.RestartPolicy{InitialBackoff: 10 * time.Millisecond})
	if problems := sup.Add(context.Background(), seqPipeline("bad", "poison", 100, 50), seqPipeline("steady", "seq", 1000, 0)); len(problems) > 0 {
		t.Fatal(problems)
	}
	err := sup.Run(context.Background(), supervisor.RunOptions{})
	if !errors.Is(err, connector.ErrPermanent) || !supervisor.Permanent(err) {
		t.Fatalf("Run = %v; want the permanent error", err)
	}
	if got := sinks["bad"].snapshot(); len(got) > 50 {
		t.Fatalf("bad delivered %d records, more than its source gave", len(got))
	} else {
		checkSequence(t, got, len(got))
	}
	checkSequence(t, sinks["steady"].snapshot(), 1000)
	if st := statusOf(sup, "bad"); st.State != pipeline.StateFailed || st.Restarts != 0 || !strings.Contains(st.Reason, "cannot be parsed") {
		t.Fatalf("bad = %+v; want failed without a restart", st)
	}
}

// Pause stops reading with nothing left in flight, Resume reads on, Restart drains and runs
// again from the checkpoint (a paused pipeline stays paused); across all of it no record is lost
// or repeated.
func TestPauseResumeRestart(t *testing.T) {
	t.Parallel()
	sinks := map[string]*listSink{"endless": {}}
	sup := newSupervisor(t, lifecycleCatalog(t, &trouble{}, sinks), supervisor.RestartPolicy{})
	if problems := sup.Add(context.Background(), seqPipeline("endless", "seq", 0, 0)); len(problems) > 0 {
		t.Fatal(problems)
	}
	if err := sup.Pause("endless"); !errors.Is(err, supervisor.ErrNotRunning) {
		t.Fatalf("Pause before Run = %v, want ErrNotRunning", err)
	}
	if err := sup.Pause("nope"); !errors.Is(err, supervisor.ErrUnknownPipeline) {
		t.Fatalf("Pause of an unknown pipeline = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sup.Run(ctx, supervisor.RunOptions{}) }()
	sink := sinks["endless"]
	grows := func(what string) {
		t.Helper()
		n := len(sink.snapshot())
		waitUntil(t, what, func() bool { return len(sink.snapshot()) > n+100 })
	}
	// quiet waits until the paused pipeline has delivered what it read, then checks that nothing
	// more arrives for a while.
	quiet := func() {
		t.Helper()
		waitUntil(t, "state paused", func() bool { return statusOf(sup, "endless").State == pipeline.StatePaused })
		waitUntil(t, "in-flight records delivered", func() bool {
			in, _ := sup.PipelineInfo("endless")
			return in.Out == in.In && int(in.Out) == len(sink.snapshot())
		})
		n := len(sink.snapshot())
		time.Sleep(100 * time.Millisecond)
		if m := len(sink.snapshot()); m != n {
			t.Fatalf("%d records delivered while paused", m-n)
		}
	}
	grows("first records")
	if err := sup.Pause("endless"); err != nil {
		t.Fatal(err)
	}
	quiet()
	if st := statusOf(sup, "endless"); !st.Ready || !st.Paused {
		t.Fatalf("paused status = %+v; want ready and paused", st)
	}
	if err := sup.Resume("endless"); err != nil {
		t.Fatal(err)
	}
	grows("records after resume")
	if err := sup.Restart("endless"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the restart", func() bool {
		st := statusOf(sup, "endless")
		return st.Restarts == 1 && st.State == pipeline.StateRunning
	})
	grows("records after restart")
	if err := sup.Pause("endless"); err != nil {
		t.Fatal(err)
	}
	if err := sup.Restart("endless"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the second restart", func() bool { return statusOf(sup, "endless").Restarts == 2 })
	quiet()
	if err := sup.Resume("endless"); err != nil {
		t.Fatal(err)
	}
	grows("records after the paused restart")
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	got := sink.snapshot()
	checkSequence(t, got, len(got))
	if st := statusOf(sup, "endless"); st.State != pipeline.StateStopped {
		t.Fatalf("after the stop: %+v", st)
	}
	if err := sup.Restart("endless"); !errors.Is(err, supervisor.ErrNotRunning) {
		t.Fatalf("Restart after Run = %v, want ErrNotRunning", err)
	}
}

// Restart runs a finished pipeline again while the supervisor runs others; it resumes from its
// checkpoint, so a bounded source has nothing more to give.
func TestRestartAnEndedPipeline(t *testing.T) {
	t.Parallel()
	sinks := map[string]*listSink{"bounded": {}, "endless": {}}
	sup := newSupervisor(t, lifecycleCatalog(t, &trouble{}, sinks), supervisor.RestartPolicy{})
	if problems := sup.Add(context.Background(), seqPipeline("bounded", "seq", 100, 0), seqPipeline("endless", "seq", 0, 0)); len(problems) > 0 {
		t.Fatal(problems)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sup.Run(ctx, supervisor.RunOptions{}) }()
	waitUntil(t, "bounded finished", func() bool { return statusOf(sup, "bounded").State == pipeline.StateFinished })
	if err := sup.Restart("bounded"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "bounded finished again", func() bool {
		st := statusOf(sup, "bounded")
		return st.State == pipeline.StateFinished && st.Restarts == 1
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	checkSequence(t, sinks["bounded"].snapshot(), 100)
}

func TestDeadLetterFile(t *testing.T) {
	t.Parallel()
	sup := newSupervisor(t, all.Catalog(), supervisor.RestartPolicy{})
	gen := pipeline.Component{Type: "generate", Config: connector.Config{"count": int64(10), "template": "{{seq}}"}}
	drop := []pipeline.Sink{{Name: "out", Component: pipeline.Component{Type: "drop", Config: connector.Config{}}}}
	withFile := &pipeline.Pipeline{Name: "with-file", Source: gen, Sinks: drop,
		DeadLetter: &pipeline.Component{Type: "file", Config: connector.Config{"path": "dlq/letters.jsonl", "fsync": true}}}
	without := &pipeline.Pipeline{Name: "without", Source: gen, Sinks: drop}
	if problems := sup.Add(context.Background(), withFile, without); len(problems) > 0 {
		t.Fatal(problems)
	}
	if path, err := sup.DeadLetterFile("with-file"); err != nil || path != "dlq/letters.jsonl" {
		t.Fatalf("DeadLetterFile(with-file) = %q, %v", path, err)
	}
	if _, err := sup.DeadLetterFile("without"); !errors.Is(err, supervisor.ErrNoDeadLetterFile) {
		t.Fatalf("DeadLetterFile(without) = %v", err)
	}
	if _, err := sup.DeadLetterFile("nope"); !errors.Is(err, supervisor.ErrUnknownPipeline) {
		t.Fatalf("DeadLetterFile(nope) = %v", err)
	}
}
