package file_test

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/connectors/file"
	"github.com/sluicehq/sluice/sdk/go/connector"
	"github.com/sluicehq/sluice/sdk/go/conntest"
)

func writeLines(t *testing.T, path string, n int) {
	t.Helper()
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, `{"n":%d}`+"\n", i)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestConformanceSource(t *testing.T) {
	for _, follow := range []bool{false, true} {
		t.Run(fmt.Sprintf("follow=%v", follow), func(t *testing.T) {
			conntest.TestSource(t, conntest.SourceHarness{
				Unbounded: follow,
				Setup: func(t *testing.T, n int) conntest.SourceFactory {
					path := filepath.Join(t.TempDir(), "in.jsonl")
					writeLines(t, path, n)
					cfg := conntest.Config(t, file.Components()[0].Spec, map[string]any{"path": path, "follow": follow, "poll_interval": 10 * time.Millisecond, "read_buffer": 4096})
					return func() (connector.Source, error) { return file.NewSource(cfg, connector.Env{}) }
				},
				Broken: func(t *testing.T) (connector.Source, error) {
					return file.NewSource(conntest.Config(t, file.Components()[0].Spec, map[string]any{"path": filepath.Join(t.TempDir(), "missing")}), connector.Env{})
				},
			})
		})
	}
}

func TestConformanceSink(t *testing.T) {
	conntest.TestSink(t, conntest.SinkHarness{
		Setup: func(t *testing.T) (conntest.SinkFactory, func(t *testing.T) []connector.Record) {
			path := filepath.Join(t.TempDir(), "out", "out.jsonl")
			cfg := conntest.Config(t, file.Components()[1].Spec, map[string]any{"path": path})
			return func() (connector.Sink, error) {
					return file.NewSink(cfg, connector.Env{})
				}, func(t *testing.T) []connector.Record {
					f, err := os.Open(path)
					if err != nil {
						t.Fatalf("read back: %v", err)
					}
					defer f.Close()
					var out []connector.Record
					sc := bufio.NewScanner(f)
					for sc.Scan() {
						out = append(out, connector.Record{Value: []byte(sc.Text())})
					}
					return out
				}
		},
		Broken: func(t *testing.T) (connector.Sink, error) {
			// A directory cannot be created under a regular file.
			blocker := filepath.Join(t.TempDir(), "file")
			if err := os.WriteFile(blocker, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			return file.NewSink(conntest.Config(t, file.Components()[1].Spec, map[string]any{"path": filepath.Join(blocker, "sub", "out")}), connector.Env{})
		},
	})
}

func TestConformanceTransactionalSink(t *testing.T) {
	var path string
	conntest.TestTransactionalSink(t, conntest.TransactionalSinkHarness{
		Setup: func(t *testing.T) (conntest.TxSinkFactory, func(t *testing.T) []connector.Record) {
			path = filepath.Join(t.TempDir(), "out.jsonl")
			cfg := conntest.Config(t, file.Components()[1].Spec, map[string]any{"path": path})
			return func(env connector.Env) (connector.TransactionalSink, error) {
					return file.NewSink(cfg, env)
				}, func(t *testing.T) []connector.Record {
					b, err := os.ReadFile(path)
					if err != nil {
						t.Fatalf("read back: %v", err)
					}
					var out []connector.Record
					for _, l := range strings.SplitAfter(string(b), "\n") {
						if l != "" {
							out = append(out, connector.Record{Value: []byte(strings.TrimSuffix(l, "\n"))})
						}
					}
					return out
				}
		},
		// The commit is the rename of PATH.positions.tmp: a directory in its place fails it after the
		// records were appended.
		BreakCommit: func(t *testing.T) func() {
			if err := os.Mkdir(path+".positions.tmp", 0o755); err != nil {
				t.Fatal(err)
			}
			return func() { os.Remove(path + ".positions.tmp") }
		},
	})
}
