package pulsar

import (
	"fmt"
	"testing"
	"time"

	"github.com/sluicehq/sluice/sdk/go/connector"
	"github.com/sluicehq/sluice/sdk/go/conntest"
)

// TestConformanceSourceIntegration runs the conformance suite on exclusive and failover
// subscriptions, on a plain and on a partitioned topic. Every source the factory builds gets a
// subscription of its own, starting at the earliest message, so that each reads the whole topic:
// resuming after a position is then the work of the checkpointed positions alone. (Shared and
// key_shared subscriptions do not resume from checkpoints, only from the subscription: see
// TestSourceSharedIntegration.)
func TestConformanceSourceIntegration(t *testing.T) {
	b := needBroker(t)
	for _, tc := range []struct {
		typ        string
		partitions int
	}{{"exclusive", 0}, {"failover", 3}} {
		t.Run(fmt.Sprintf("%s/partitions=%d", tc.typ, tc.partitions), func(t *testing.T) {
			conntest.TestSource(t, conntest.SourceHarness{
				Unbounded: true,
				Timeout:   2 * time.Minute,
				Setup: func(t *testing.T, n int) conntest.SourceFactory {
					topic := uniqueTopic(t, "conf")
					if tc.partitions > 0 {
						b.createPartitioned(t, topic, tc.partitions)
					}
					b.produce(t, topic, n, numbered)
					subs := 0
					return func() (connector.Source, error) {
						subs++
						cfg := sourceConfig(t, b, map[string]any{"topics": []any{topic}, "subscription": fmt.Sprintf("conf-%d", subs),
							"subscription_type": tc.typ, "receiver_queue_size": 64})
						return NewSource(cfg, connector.Env{})
					}
				},
				Broken: func(t *testing.T) (connector.Source, error) {
					return NewSource(conntest.Config(t, sourceSpec, map[string]any{"url": "pulsar://127.0.0.1:1", "topics": []any{"x"},
						"subscription": "s", "operation_timeout": 2 * time.Second, "connection_timeout": time.Second}), connector.Env{})
				},
			})
		})
	}
}

// TestConformanceSinkIntegration runs the conformance suite on the sink, on a 2-partition topic.
// The poisoned records are larger than the broker's message limit (5 MiB).
func TestConformanceSinkIntegration(t *testing.T) {
	b := needBroker(t)
	conntest.TestSink(t, conntest.SinkHarness{
		Timeout: 2 * time.Minute,
		Setup: func(t *testing.T) (conntest.SinkFactory, func(t *testing.T) []connector.Record) {
			topic := uniqueTopic(t, "sinkconf")
			b.createPartitioned(t, topic, 2)
			cfg := sinkConfig(t, b, map[string]any{"topic": topic})
			return func() (connector.Sink, error) { return NewSink(cfg, connector.Env{}) },
				func(t *testing.T) []connector.Record { return b.readTopic(t, topic) }
		},
		Poison: func(i int) connector.Record {
			return connector.Record{Value: make([]byte, 6<<20), Key: []byte("poison")}
		},
		Broken: func(t *testing.T) (connector.Sink, error) {
			return NewSink(conntest.Config(t, sinkSpec, map[string]any{"url": "pulsar://127.0.0.1:1", "topic": "x",
				"operation_timeout": 2 * time.Second, "connection_timeout": time.Second}), connector.Env{})
		},
	})
}
