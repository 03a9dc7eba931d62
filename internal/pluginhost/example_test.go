package pluginhost

import (
	"testing"

	"github.com/sluicehq/sluice/examples/plugin-csv/csvconn/csvtest"
	"github.com/sluicehq/sluice/sdk/go/connector"
	"github.com/sluicehq/sluice/sdk/go/conntest"
)

// The example csv plugin (examples/plugin-csv, a module of its own that depends on the SDK
// alone) through the host: the conformance suite its compiled-in test runs, with the same
// harness, against the plugin binary.
func TestConformanceExamplePlugin(t *testing.T) {
	dir := t.TempDir()
	buildExamplePlugin(t, dir)
	h := newHost(t, Options{Pins: []string{fileSum(t, dir+"/sluice-plugin-csv")}})
	p := discoverOne(t, h, dir)
	if len(p.Specs) != 2 {
		t.Fatalf("discovered %+v; want a source and a sink", p.Specs)
	}
	env := connector.Env{Pipeline: "test", Component: "csv", Logger: testLogger(t)}
	t.Run("Source", func(t *testing.T) {
		conntest.TestSource(t, csvtest.SourceHarness(func(cfg connector.Config) (connector.Source, error) {
			return h.NewSource(p, "csv", cfg, env)
		}))
	})
	t.Run("Sink", func(t *testing.T) {
		conntest.TestSink(t, csvtest.SinkHarness(func(cfg connector.Config) (connector.Sink, error) {
			return h.NewSink(p, "csv", cfg, env)
		}))
	})
}
