package csvconn_test

import (
	"testing"

	"github.com/sluicehq/sluice/examples/plugin-csv/csvconn"
	"github.com/sluicehq/sluice/examples/plugin-csv/csvconn/csvtest"
	"github.com/sluicehq/sluice/sdk/go/connector"
	"github.com/sluicehq/sluice/sdk/go/conntest"
)

// The connector compiled in: the same harness as the plugin test, calling the factories directly.
func TestConformanceCompiledIn(t *testing.T) {
	env := connector.Env{Pipeline: "test", Component: "csv"}
	t.Run("Source", func(t *testing.T) {
		conntest.TestSource(t, csvtest.SourceHarness(func(cfg connector.Config) (connector.Source, error) {
			return csvconn.NewSource(cfg, env)
		}))
	})
	t.Run("Sink", func(t *testing.T) {
		conntest.TestSink(t, csvtest.SinkHarness(func(cfg connector.Config) (connector.Sink, error) {
			return csvconn.NewSink(cfg, env)
		}))
	})
}
