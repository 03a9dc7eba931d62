package kafka

import (
	"testing"
	"time"

	"github.com/sluicehq/sluice/sdk/go/connector"
	"github.com/sluicehq/sluice/sdk/go/conntest"
)

func TestConformanceSource(t *testing.T) {
	b := sharedBroker(t)
	for _, mode := range []string{"direct", "group"} {
		t.Run(mode, func(t *testing.T) {
			conntest.TestSource(t, conntest.SourceHarness{
				Unbounded: true,
				Setup: func(t *testing.T, n int) conntest.SourceFactory {
					topic := b.topic(t, 3, nil)
					b.produce(t, topic, 3, n, seqValue(3))
					return func() (connector.Source, error) {
						values := map[string]any{"brokers": []any{b.addr}, "topics": []any{topic}, "max_poll_records": 64}
						if mode == "group" {
							// A group of its own per source: the resume check hands positions
							// to Open, which a group uses only where it has no committed offset.
							values["group"] = uniqueName(t, "g")
							values["session_timeout"] = 6 * time.Second
							values["heartbeat_interval"] = time.Second
						}
						return NewSource(sourceConfig(t, values), connector.Env{})
					}
				},
				Broken: func(t *testing.T) (connector.Source, error) {
					return NewSource(sourceConfig(t, map[string]any{"brokers": []any{b.addr}, "topics": []any{uniqueName(t, "missing")}}), connector.Env{})
				},
			})
		})
	}
}
