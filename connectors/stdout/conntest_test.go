package stdout_test

import (
	"bufio"
	"os"
	"path/filepath"
	"testing"

	"github.com/sluicehq/sluice/connectors/stdout"
	"github.com/sluicehq/sluice/sdk/go/connector"
	"github.com/sluicehq/sluice/sdk/go/conntest"
)

// The stdout component's sink writes to the os.Stdout of its construction; the harness points
// os.Stdout at a file while it builds one, then reads that file back.
func TestConformance(t *testing.T) {
	c := stdout.Component()
	conntest.TestSink(t, conntest.SinkHarness{
		Setup: func(t *testing.T) (conntest.SinkFactory, func(t *testing.T) []connector.Record) {
			path := filepath.Join(t.TempDir(), "stdout")
			f, err := os.Create(path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { f.Close() })
			return func() (connector.Sink, error) {
					saved := os.Stdout
					os.Stdout = f
					defer func() { os.Stdout = saved }()
					return c.NewSink(conntest.Config(t, c.Spec, map[string]any{"format": "value"}), connector.Env{})
				}, func(t *testing.T) []connector.Record {
					r, err := os.Open(path)
					if err != nil {
						t.Fatal(err)
					}
					defer r.Close()
					var out []connector.Record
					sc := bufio.NewScanner(r)
					for sc.Scan() {
						out = append(out, connector.Record{Value: []byte(sc.Text())})
					}
					return out
				}
		},
	})
}
