package redis

import (
	"testing"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

// The sink ignores headers unless one of its templates reads one.
func TestIgnoresHeaders(t *testing.T) {
	for _, tc := range []struct {
		values map[string]any
		want   bool
	}{
		{map[string]any{"mode": "hash", "key": "price:{{commodity}}"}, true},
		{map[string]any{"mode": "stream", "stream": "events"}, true},
		{map[string]any{"mode": "hash", "key": "price:{{header.region}}"}, false},
		{map[string]any{"mode": "zset", "key": "z", "score": "price", "member": "{{header.kafka_offset}}"}, false},
		{map[string]any{"mode": "zset", "key": "z", "score": "{{header.rank}}"}, false},
		{map[string]any{"mode": "publish", "channel": "c-{{header.topic}}"}, false},
	} {
		tc.values["addr"] = "127.0.0.1:1"
		var s connector.HeaderBlindSink = newSink(t, tc.values, connector.Env{})
		if got := s.IgnoresHeaders(); got != tc.want {
			t.Errorf("%v: IgnoresHeaders = %v, want %v", tc.values, got, tc.want)
		}
	}
}
