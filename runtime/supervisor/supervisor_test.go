package supervisor_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/sluicehq/sluice/runtime/catalog"
	"github.com/sluicehq/sluice/runtime/pipeline"
	"github.com/sluicehq/sluice/runtime/supervisor"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// countSource returns the records "0" … "n-1" in batches of 10, resuming after its position.
type countSource struct {
	n, next int64
}

func (s *countSource) Open(_ context.Context, resume []connector.Position) error {
	for _, p := range resume {
		s.next = p.Offset + 1
	}
	return nil
}

func (s *countSource) Read(ctx context.Context) ([]connector.Record, error) {
	if s.next >= s.n {
		return nil, io.EOF
	}
	var out []connector.Record
	for ; s.next < s.n && len(out) < 10; s.next++ {
		out = append(out, connector.Record{Value: fmt.Appendf(nil, "%d", s.next), Position: connector.Position{Offset: s.next}})
	}
	return out, ctx.Err()
}

func (s *countSource) Ack(context.Context, []connector.Position) error { return nil }
func (s *countSource) Close(context.Context) error                     { return nil }

// listSink keeps what it is given.
type listSink struct {
	mu  sync.Mutex
	got []string
}

func (s *listSink) Open(context.Context) error { return nil }
func (s *listSink) Write(_ context.Context, recs []connector.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range recs {
		s.got = append(s.got, string(r.Value))
	}
	return nil
}
func (s *listSink) Close(context.Context) error { return nil }

// testCatalog holds only the test's own connectors: "count" (source) and "list" (sink), which
// refuses mode "bad" like a connector's own config check.
func testCatalog(t *testing.T, sink *listSink) *catalog.Catalog {
	t.Helper()
	cat, err := catalog.New(
		connector.SourceComponent(connector.Spec{Name: "count", Bounded: true, Fields: []connector.Field{{Name: "n", Type: connector.TypeInt}}},
			func(cfg connector.Config, _ connector.Env) (connector.Source, error) {
				return &countSource{n: cfg.Int("n")}, nil
			}),
		connector.SinkComponent(connector.Spec{Name: "list", Fields: []connector.Field{{Name: "mode", Type: connector.TypeString}}},
			func(cfg connector.Config, _ connector.Env) (connector.Sink, error) {
				if cfg.String("mode") == "bad" {
					return nil, &connector.ConfigError{Field: "mode", Msg: "bad is not a mode"}
				}
				return sink, nil
			}),
	)
	if err != nil {
		t.Fatal(err)
	}
	return cat
}

func countPipeline(name string, n int64) *pipeline.Pipeline {
	return &pipeline.Pipeline{
		Name:   name,
		Source: pipeline.Component{Type: "count", Config: connector.Config{"n": n}},
		Sinks:  []pipeline.Sink{{Name: "out", Component: pipeline.Component{Type: "list", Config: connector.Config{}}}},
	}
}

func TestRunsPipelinesFromTheirConfiguration(t *testing.T) {
	t.Parallel()
	sink := &listSink{}
	sup, err := supervisor.New(supervisor.Options{Catalog: testCatalog(t, sink), DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer sup.Close(context.Background())
	if problems := sup.Add(context.Background(), countPipeline("count", 1000)); len(problems) > 0 {
		t.Fatal(problems)
	}
	if err := sup.Run(context.Background(), supervisor.RunOptions{}); err != nil {
		t.Fatal(err)
	}
	if len(sink.got) != 1000 || sink.got[0] != "0" || sink.got[999] != "999" {
		t.Fatalf("delivered %d records (%v…)", len(sink.got), sink.got[:min(3, len(sink.got))])
	}
	st := sup.Status()
	if len(st) != 1 || st[0].Name != "count" || st[0].State != "finished" {
		t.Fatalf("status = %+v", st)
	}
}

func TestAddReportsEveryProblemWithoutIO(t *testing.T) {
	t.Parallel()
	dataDir := filepath.Join(t.TempDir(), "never-created")
	sup, err := supervisor.New(supervisor.Options{Catalog: testCatalog(t, &listSink{}), DataDir: dataDir})
	if err != nil {
		t.Fatal(err)
	}
	bad := countPipeline("bad", 10)
	bad.Sinks = append(bad.Sinks,
		pipeline.Sink{Name: "refused", Component: pipeline.Component{Type: "list", Config: connector.Config{"mode": "bad"}}},
		pipeline.Sink{Name: "alerts", From: "alerts", Component: pipeline.Component{Type: "list", Config: connector.Config{}}})
	bad.DeadLetter = &pipeline.Component{Type: "nope"}
	problems := sup.Add(context.Background(), bad, countPipeline("good", 10))
	if len(problems) != 1 || problems[0].Setting != "from" || problems[0].Component != "alerts" || !strings.Contains(problems[0].Hint, "main") {
		t.Fatalf("problems = %v; want the port first: construction waits for it", problems)
	}
	bad.Sinks = bad.Sinks[:2]
	problems = sup.Add(context.Background(), bad)
	var ce *connector.ConfigError
	if len(problems) != 2 || problems[0].Component != "refused" || !errors.As(problems[0].Err, &ce) || ce.Field != "mode" ||
		problems[1].Kind != "dead_letter" || !strings.Contains(problems[1].Err.Error(), `unknown sink type "nope"`) {
		t.Fatalf("problems = %v", problems)
	}
	if st := sup.Status(); len(st) != 1 || st[0].Name != "good" || st[0].State != "starting" {
		t.Fatalf("status = %+v; want only the good pipeline, not started", st)
	}
	if err := sup.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dataDir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("building pipelines touched the data directory: %v", err)
	}
}

// Issue 8, defect 4: a stage that fails to build at run named its transform twice
// (`transform "t": transform "t": ...`).
func TestStageErrorNamesTheTransformOnce(t *testing.T) {
	t.Parallel()
	wasm, err := filepath.Abs("../../transforms/validate_price/go/validate_price.wasm")
	if err != nil {
		t.Fatal(err)
	}
	sup, err := supervisor.New(supervisor.Options{Catalog: testCatalog(t, &listSink{}), DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer sup.Close(context.Background())
	p := countPipeline("huge", 10)
	p.Transforms = []pipeline.Transform{{Name: "validate", Module: wasm, Limits: pipeline.Limits{MemoryBytes: 1 << 40}}}
	if problems := sup.Add(context.Background(), p); len(problems) > 0 {
		t.Fatal(problems)
	}
	err = sup.Run(context.Background(), supervisor.RunOptions{})
	if err == nil || strings.Count(err.Error(), `transform "validate"`) != 1 {
		t.Fatalf("err = %v; want the transform named once", err)
	}
}
