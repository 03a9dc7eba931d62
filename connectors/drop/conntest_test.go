package drop_test

import (
	"testing"

	"github.com/sluicehq/sluice/connectors/drop"
	"github.com/sluicehq/sluice/sdk/go/connector"
	"github.com/sluicehq/sluice/sdk/go/conntest"
)

// drop keeps nothing, so there is nothing to read back: the suite checks the lifecycle only.
func TestConformance(t *testing.T) {
	c := drop.Component()
	conntest.TestSink(t, conntest.SinkHarness{
		Setup: func(t *testing.T) (conntest.SinkFactory, func(t *testing.T) []connector.Record) {
			return func() (connector.Sink, error) { return c.NewSink(nil, connector.Env{}) }, nil
		},
	})
}
