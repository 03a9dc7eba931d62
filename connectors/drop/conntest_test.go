package drop_test

import (
	"testing"

	_ "github.com/sluicehq/sluice/connectors/drop"
	"github.com/sluicehq/sluice/runtime/registry"
	"github.com/sluicehq/sluice/sdk/go/connector"
	"github.com/sluicehq/sluice/sdk/go/conntest"
)

// drop keeps nothing, so there is nothing to read back: the suite checks the lifecycle only.
func TestConformance(t *testing.T) {
	c, ok := registry.Lookup(connector.KindSink, "drop")
	if !ok {
		t.Fatal("drop sink not registered")
	}
	conntest.TestSink(t, conntest.SinkHarness{
		Setup: func(t *testing.T) (conntest.SinkFactory, func(t *testing.T) []connector.Record) {
			return func() (connector.Sink, error) { return c.NewSink(nil, connector.Env{}) }, nil
		},
	})
}
