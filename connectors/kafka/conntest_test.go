package kafka

import (
	"bytes"
	"strings"
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

func TestConformanceSink(t *testing.T) {
	b := sharedBroker(t)
	// The broker refuses a produce batch over 2000 bytes on this topic: the poison records are
	// larger, and the records batched with them must still arrive.
	maxBytes := "2000"
	conntest.TestSink(t, conntest.SinkHarness{
		Setup: func(t *testing.T) (conntest.SinkFactory, func(t *testing.T) []connector.Record) {
			topic := b.topic(t, 3, map[string]*string{"max.message.bytes": &maxBytes})
			cfg := sinkConfig(t, map[string]any{"brokers": []any{b.addr}, "topic": topic})
			return func() (connector.Sink, error) { return NewSink(cfg, connector.Env{}) },
				func(t *testing.T) []connector.Record {
					var out []connector.Record
					for _, r := range b.readAll(t, topic) {
						out = append(out, connector.Record{Key: r.Key, Value: r.Value})
					}
					return out
				}
		},
		Poison: func(i int) connector.Record {
			return connector.Record{Key: []byte("poison"), Value: bytes.Repeat([]byte("x"), 3000)}
		},
		Identity: func(r connector.Record) string {
			if strings.HasPrefix(string(r.Value), "xxx") {
				return "poison"
			}
			return string(r.Value)
		},
		Broken: func(t *testing.T) (connector.Sink, error) {
			return NewSink(sinkConfig(t, map[string]any{"brokers": []any{b.addr}, "topic": uniqueName(t, "missing")}), connector.Env{})
		},
	})
}
