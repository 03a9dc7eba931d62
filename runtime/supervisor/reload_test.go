package supervisor_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/runtime/catalog"
	"github.com/sluicehq/sluice/runtime/pipeline"
	"github.com/sluicehq/sluice/runtime/supervisor"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// tickSource returns "TAG:0", "TAG:1", … without end from its position, in batches of 10.
type tickSource struct {
	tag  string
	next int64
}

func (s *tickSource) Open(_ context.Context, resume []connector.Position) error {
	for _, p := range resume {
		s.next = p.Offset + 1
	}
	return nil
}

func (s *tickSource) Read(ctx context.Context) ([]connector.Record, error) {
	time.Sleep(time.Millisecond) // an endless source should not spin
	out := make([]connector.Record, 0, 10)
	for range 10 {
		out = append(out, connector.Record{Value: fmt.Appendf(nil, "%s:%d", s.tag, s.next), Position: connector.Position{Offset: s.next}})
		s.next++
	}
	return out, ctx.Err()
}

func (s *tickSource) Ack(context.Context, []connector.Position) error { return nil }
func (s *tickSource) Close(context.Context) error                     { return nil }

// sinkSet hands each pipeline name one listSink that outlives its runs.
type sinkSet struct {
	mu    sync.Mutex
	sinks map[string]*listSink
}

func (s *sinkSet) of(name string) *listSink {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sinks[name] == nil {
		s.sinks[name] = &listSink{}
	}
	return s.sinks[name]
}

func reloadCatalog(t *testing.T, sinks *sinkSet) *catalog.Catalog {
	t.Helper()
	cat, err := catalog.New(
		connector.SourceComponent(connector.Spec{Name: "tick", Fields: []connector.Field{{Name: "tag", Type: connector.TypeString}}},
			func(cfg connector.Config, _ connector.Env) (connector.Source, error) {
				return &tickSource{tag: cfg.String("tag")}, nil
			}),
		connector.SinkComponent(connector.Spec{Name: "list", Fields: []connector.Field{{Name: "mode", Type: connector.TypeString}}},
			func(cfg connector.Config, env connector.Env) (connector.Sink, error) {
				if cfg.String("mode") == "bad" {
					return nil, &connector.ConfigError{Field: "mode", Msg: "bad is not a mode"}
				}
				return sinks.of(env.Pipeline), nil
			}),
	)
	if err != nil {
		t.Fatal(err)
	}
	return cat
}

func tickPipeline(name, tag string) *pipeline.Pipeline {
	return &pipeline.Pipeline{
		Name:   name,
		Source: pipeline.Component{Type: "tick", Config: connector.Config{"tag": tag}},
		Sinks:  []pipeline.Sink{{Name: "out", Component: pipeline.Component{Type: "list", Config: connector.Config{}}}},
	}
}

// awaitReload polls cond until it holds, failing the test after a minute.
func awaitReload(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// seqOf parses "TAG:N" values into their tags and numbers.
func seqOf(t *testing.T, values []string) (tags []string, ns []int64) {
	t.Helper()
	for _, v := range values {
		tag, n, ok := strings.Cut(v, ":")
		i, err := strconv.ParseInt(n, 10, 64)
		if !ok || err != nil {
			t.Fatalf("value %q is not TAG:N", v)
		}
		tags, ns = append(tags, tag), append(ns, i)
	}
	return tags, ns
}

// checkExactly fails unless values are TAG:0 … TAG:n-1, each once, in order.
func checkExactly(t *testing.T, name string, values []string) {
	t.Helper()
	_, ns := seqOf(t, values)
	for i, n := range ns {
		if n != int64(i) {
			t.Fatalf("pipeline %s: record %d is number %d: a record lost or repeated", name, i, n)
		}
	}
}

func reloadStatus(sup *supervisor.Supervisor, name string) (supervisor.Status, bool) {
	for _, st := range sup.Status() {
		if st.Name == name {
			return st, true
		}
	}
	return supervisor.Status{}, false
}

// TestReloadTouchesOnlyTheChangedPipelines replaces, adds, removes and fails to replace
// pipelines while Run runs three of them under load: the replaced one restarts from its
// checkpoint with the new configuration (nothing lost), the added one starts, the removed one
// stops and leaves the status, the bad replacement leaves its pipeline running as it was, and
// the untouched one is never restarted and delivers every record exactly once.
func TestReloadTouchesOnlyTheChangedPipelines(t *testing.T) {
	t.Parallel()
	sinks := &sinkSet{sinks: map[string]*listSink{}}
	sup, err := supervisor.New(supervisor.Options{Catalog: reloadCatalog(t, sinks), DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer sup.Close(context.Background())
	ctx := context.Background()
	if problems := sup.Add(ctx, tickPipeline("edited", "v1"), tickPipeline("untouched", "v1"), tickPipeline("removed", "v1")); len(problems) > 0 {
		t.Fatal(problems)
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	ran := make(chan error, 1)
	go func() { ran <- sup.Run(runCtx, supervisor.RunOptions{Reload: true}) }()
	grown := func(name string, n int) func() bool {
		return func() bool { return len(sinks.of(name).snapshot()) >= n }
	}
	for _, name := range []string{"edited", "untouched", "removed"} {
		awaitReload(t, name+" delivering", grown(name, 200))
	}

	// Edit: the new configuration runs from the checkpoint of the old one.
	if problems := sup.Replace(ctx, tickPipeline("edited", "v2")); len(problems) > 0 {
		t.Fatal(problems)
	}
	awaitReload(t, "edited delivering its new configuration", func() bool {
		tags, _ := seqOf(t, sinks.of("edited").snapshot())
		return len(tags) > 0 && tags[len(tags)-1] == "v2"
	})
	tags, ns := seqOf(t, sinks.of("edited").snapshot())
	for i := 1; i < len(ns); i++ {
		if ns[i] > ns[i-1]+1 {
			t.Fatalf("edited: %s:%d follows %s:%d: records lost across the replacement", tags[i], ns[i], tags[i-1], ns[i-1])
		}
		if tags[i] == "v1" && tags[i-1] == "v2" {
			t.Fatalf("edited: the old configuration delivered after the new one started")
		}
	}
	if st, _ := reloadStatus(sup, "edited"); st.Restarts != 1 {
		t.Errorf("edited: restarts = %d, want 1", st.Restarts)
	}

	// Add.
	if problems := sup.Add(ctx, tickPipeline("added", "v1")); len(problems) > 0 {
		t.Fatal(problems)
	}
	awaitReload(t, "added delivering", grown("added", 100))
	if problems := sup.Add(ctx, tickPipeline("added", "v1")); len(problems) != 1 || !strings.Contains(problems[0].Error(), "already added") {
		t.Fatalf("adding a name twice: problems = %v", problems)
	}

	// Remove: after Remove returns, nothing more is written.
	if err := sup.Remove(ctx, "removed"); err != nil {
		t.Fatal(err)
	}
	stoppedAt := len(sinks.of("removed").snapshot())
	if _, ok := reloadStatus(sup, "removed"); ok {
		t.Error("removed: still listed in the status")
	}
	if err := sup.Remove(ctx, "removed"); !errors.Is(err, supervisor.ErrUnknownPipeline) {
		t.Errorf("removing it again: %v, want ErrUnknownPipeline", err)
	}
	checkExactly(t, "removed", sinks.of("removed").snapshot())

	// A bad replacement leaves the pipeline running as it was.
	bad := tickPipeline("edited", "v3")
	bad.Sinks[0].Config = connector.Config{"mode": "bad"}
	problems := sup.Replace(ctx, bad)
	var ce *connector.ConfigError
	if len(problems) != 1 || !errors.As(problems[0].Err, &ce) || ce.Field != "mode" {
		t.Fatalf("bad replacement: problems = %v", problems)
	}
	n := len(sinks.of("edited").snapshot())
	awaitReload(t, "edited going on after the bad replacement", grown("edited", n+200))
	if st, _ := reloadStatus(sup, "edited"); st.Restarts != 1 || st.State != pipeline.StateRunning {
		t.Errorf("edited after a bad replacement: %+v, want running, restarts 1", st)
	}
	if tags, _ := seqOf(t, sinks.of("edited").snapshot()); tags[len(tags)-1] != "v2" {
		t.Errorf("edited after a bad replacement delivers %s records, want v2", tags[len(tags)-1])
	}

	u := len(sinks.of("untouched").snapshot())
	awaitReload(t, "untouched going on", grown("untouched", u+200))
	if got := len(sinks.of("removed").snapshot()); got != stoppedAt {
		t.Errorf("removed: %d records delivered after Remove returned", got-stoppedAt)
	}
	if st, _ := reloadStatus(sup, "untouched"); st.Restarts != 0 || st.Paused || st.State != pipeline.StateRunning {
		t.Errorf("untouched: %+v, want running, never restarted", st)
	}
	stop()
	if err := <-ran; err != nil {
		t.Fatal(err)
	}
	checkExactly(t, "untouched", sinks.of("untouched").snapshot())
	checkExactly(t, "added", sinks.of("added").snapshot())
}

// TestReloadKeepsRunWaitingWithNoPipelines: with Reload, Run goes on after every pipeline was
// removed (a pipeline added then still runs), and returns once ctx is done; without pipelines
// from the start it runs too.
func TestReloadKeepsRunWaitingWithNoPipelines(t *testing.T) {
	t.Parallel()
	sinks := &sinkSet{sinks: map[string]*listSink{}}
	sup, err := supervisor.New(supervisor.Options{Catalog: reloadCatalog(t, sinks), DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer sup.Close(context.Background())
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	ran := make(chan error, 1)
	go func() { ran <- sup.Run(ctx, supervisor.RunOptions{Reload: true}) }()
	// Run may not have started yet: Add before or during it both start the pipeline.
	if problems := sup.Add(ctx, tickPipeline("first", "v1")); len(problems) > 0 {
		t.Fatal(problems)
	}
	awaitReload(t, "first delivering", func() bool { return len(sinks.of("first").snapshot()) >= 50 })
	if err := sup.Remove(ctx, "first"); err != nil {
		t.Fatal(err)
	}
	if problems := sup.Add(ctx, tickPipeline("second", "v1")); len(problems) > 0 {
		t.Fatalf("Add after every pipeline was removed: %v (Run returned?)", problems)
	}
	awaitReload(t, "second delivering", func() bool { return len(sinks.of("second").snapshot()) >= 50 })
	if err := sup.Remove(ctx, "second"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-ran:
		t.Fatalf("Run returned with no pipeline left while reloading: %v", err)
	default:
	}
	stop()
	if err := <-ran; err != nil {
		t.Fatal(err)
	}
	if problems := sup.Add(context.Background(), tickPipeline("late", "v1")); len(problems) != 1 || !errors.Is(problems[0].Err, supervisor.ErrNotRunning) {
		t.Fatalf("Add after Run returned: %v, want ErrNotRunning", problems)
	}
	checkExactly(t, "first", sinks.of("first").snapshot())
}

// TestReplaceWhilePausedAndConcurrently: a paused pipeline stays paused under its new
// configuration; replacements of different pipelines may run at once.
func TestReplaceWhilePausedAndConcurrently(t *testing.T) {
	t.Parallel()
	sinks := &sinkSet{sinks: map[string]*listSink{}}
	sup, err := supervisor.New(supervisor.Options{Catalog: reloadCatalog(t, sinks), DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer sup.Close(context.Background())
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	names := []string{"p0", "p1", "p2", "p3"}
	for _, n := range names {
		if problems := sup.Add(ctx, tickPipeline(n, "v1")); len(problems) > 0 {
			t.Fatal(problems)
		}
	}
	ran := make(chan error, 1)
	go func() { ran <- sup.Run(ctx, supervisor.RunOptions{Reload: true}) }()
	for _, n := range names {
		awaitReload(t, n+" delivering", func() bool { return len(sinks.of(n).snapshot()) >= 20 })
	}
	if err := sup.Pause("p0"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([][]supervisor.Problem, len(names))
	for i, n := range names {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = sup.Replace(ctx, tickPipeline(n, "v2")) }()
	}
	wg.Wait()
	for i, e := range errs {
		if len(e) > 0 {
			t.Fatalf("%s: %v", names[i], e)
		}
	}
	awaitReload(t, "p0 paused under its new configuration", func() bool {
		st, _ := reloadStatus(sup, "p0")
		return st.State == pipeline.StatePaused
	})
	if tags, _ := seqOf(t, sinks.of("p0").snapshot()); tags[len(tags)-1] != "v1" {
		t.Fatal("p0 read under its new configuration while paused")
	}
	if err := sup.Resume("p0"); err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		awaitReload(t, n+" under v2", func() bool {
			tags, _ := seqOf(t, sinks.of(n).snapshot())
			return tags[len(tags)-1] == "v2"
		})
	}
	stop()
	if err := <-ran; err != nil {
		t.Fatal(err)
	}
}
