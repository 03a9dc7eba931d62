package kafka

import (
	"errors"
	"testing"
	"time"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

func TestSourceConfigErrorsNameTheField(t *testing.T) {
	base := func() map[string]any {
		return map[string]any{"brokers": []any{"localhost:9092"}, "topics": []any{"prices"}}
	}
	for _, tc := range []struct {
		name  string
		edit  func(m map[string]any)
		field string
	}{
		{"no topics", func(m map[string]any) { delete(m, "topics") }, "topics"},
		{"topics and pattern", func(m map[string]any) { m["topic_pattern"] = "p.*" }, "topic_pattern"},
		{"bad pattern", func(m map[string]any) { delete(m, "topics"); m["topic_pattern"] = "(" }, "topic_pattern"},
		{"bad topic name", func(m map[string]any) { m["topics"] = []any{"prices", "a b"} }, "topics[1]"},
		{"bad broker", func(m map[string]any) { m["brokers"] = []any{"localhost"} }, "brokers[0]"},
		{"bad start", func(m map[string]any) { m["start"] = "yesterday" }, "start"},
		{"heartbeat too long", func(m map[string]any) { m["group"] = "g"; m["heartbeat_interval"] = 20 * time.Second }, "heartbeat_interval"},
		{"revoke over rebalance", func(m map[string]any) { m["group"] = "g"; m["revoke_timeout"] = 2 * time.Minute }, "revoke_timeout"},
		{"instance id without group", func(m map[string]any) { m["instance_id"] = "a" }, "instance_id"},
		{"sasl without user", func(m map[string]any) { m["sasl"] = map[string]any{"mechanism": "PLAIN"} }, "sasl.username"},
		{"user without mechanism", func(m map[string]any) { m["sasl"] = map[string]any{"username": "u"} }, "sasl.mechanism"},
		{"cert without key", func(m map[string]any) { m["tls"] = map[string]any{"cert_file": "c.pem"} }, "tls.key_file"},
		{"zero poll", func(m map[string]any) { m["max_poll_records"] = 0 }, "max_poll_records"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := base()
			tc.edit(m)
			_, err := NewSource(sourceConfig(t, m), connector.Env{})
			var ce *connector.ConfigError
			if !errors.As(err, &ce) || ce.Field != tc.field {
				t.Fatalf("NewSource: %v; want a *connector.ConfigError on %s", err, tc.field)
			}
		})
	}
	if _, err := NewSource(sourceConfig(t, map[string]any{"brokers": []any{"localhost:9092"}, "topic_pattern": `prices\..*`,
		"start": "2024-05-01T00:00:00Z", "group": "g"}), connector.Env{}); err != nil {
		t.Fatalf("valid config refused: %v", err)
	}
}

func TestSinkConfigErrorsNameTheField(t *testing.T) {
	base := func() map[string]any { return map[string]any{"brokers": []any{"localhost:9092"}, "topic": "out"} }
	for _, tc := range []struct {
		name  string
		edit  func(m map[string]any)
		field string
	}{
		{"bad template", func(m map[string]any) { m["key"] = "{{commodity" }, "key"},
		{"bad topic", func(m map[string]any) { m["topic"] = "a b" }, "topic"},
		{"bad topic template", func(m map[string]any) { m["topic"] = "x-{{" }, "topic"},
		{"bad partition", func(m map[string]any) { m["partition"] = "one" }, "partition"},
		{"acks without idempotence off", func(m map[string]any) { m["acks"] = "leader" }, "acks"},
		{"negative linger", func(m map[string]any) { m["linger"] = -time.Second }, "linger"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := base()
			tc.edit(m)
			_, err := NewSink(sinkConfig(t, m), connector.Env{})
			var ce *connector.ConfigError
			if !errors.As(err, &ce) || ce.Field != tc.field {
				t.Fatalf("NewSink: %v; want a *connector.ConfigError on %s", err, tc.field)
			}
		})
	}
	if _, err := NewSink(sinkConfig(t, map[string]any{"brokers": []any{"localhost:9092"}, "topic": "prices.{{commodity}}",
		"key": "{{key}}", "partition": "{{header.p}}", "acks": "leader", "idempotent": false, "compression": "zstd"}), connector.Env{}); err != nil {
		t.Fatalf("valid config refused: %v", err)
	}
}
