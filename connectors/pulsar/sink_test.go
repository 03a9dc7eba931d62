package pulsar

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

// TestSinkMessageIntegration: what a record becomes (key and properties from templates, headers
// as properties without the source's metadata, event time), compressed, and persisted when Write
// returns, before any Close.
func TestSinkMessageIntegration(t *testing.T) {
	b := needBroker(t)
	for _, compression := range []string{"none", "zstd", "lz4"} {
		t.Run(compression, func(t *testing.T) {
			topic := uniqueTopic(t, "msg")
			s := openSink(t, sinkConfig(t, b, map[string]any{"topic": topic, "key": "{{commodity}}", "compression": compression,
				"properties": map[string]any{"unit": "usd", "region": "{{header.region}}", "origin": "x"}}))
			at := time.UnixMilli(1_700_000_000_456)
			recs := make([]connector.Record, 300)
			for i := range recs {
				recs[i] = connector.Record{
					Key:   []byte("ignored"),
					Value: fmt.Appendf(nil, `{"commodity":"c%d","n":%d}`, i%3, i),
					Time:  at,
					Headers: []connector.Header{{Key: "region", Value: []byte("eu")}, {Key: "origin", Value: []byte("overridden")},
						{Key: "trace", Value: []byte(fmt.Sprint(i))}, {Key: HeaderTopic, Value: []byte("old")}, {Key: HeaderMessageID, Value: []byte("1:2:3:4")}},
				}
			}
			if err := s.Write(context.Background(), recs); err != nil {
				t.Fatalf("Write: %v", err)
			}
			got := b.readTopic(t, topic) // the sink is still open: Write alone made them durable
			if len(got) != len(recs) {
				t.Fatalf("read %d messages, wrote %d", len(got), len(recs))
			}
			sort.Slice(got, func(i, j int) bool { return string(got[i].Value) < string(got[j].Value) })
			for _, r := range got {
				var c, n int
				fmt.Sscanf(string(r.Value), `{"commodity":"c%d","n":%d}`, &c, &n)
				props := map[string]string{}
				for _, h := range r.Headers {
					props[h.Key] = string(h.Value)
				}
				want := map[string]string{"unit": "usd", "region": "eu", "origin": "x", "trace": fmt.Sprint(n)}
				if fmt.Sprint(props) != fmt.Sprint(want) || string(r.Key) != fmt.Sprintf("c%d", c) || !r.Time.Equal(at) {
					t.Fatalf("message %s: key %q, time %v, properties %v; want key c%d, time %v, properties %v", r.Value, r.Key, r.Time, props, c, at, want)
				}
			}
		})
	}
}

// TestSinkTopicPerRecordIntegration: the topic comes from each record; producers are bounded;
// records whose topic cannot be rendered, is not a topic name, or does not exist where topics are
// not created go to the dead letters and the others are written.
func TestSinkTopicPerRecordIntegration(t *testing.T) {
	b := needBroker(t)
	prefix := uniqueTopic(t, "route")
	noauto := b.noAutoNamespace(t)
	s := openSink(t, sinkConfig(t, b, map[string]any{"topic": "{{ns}}" + strings.TrimPrefix(prefix, "persistent://public/default") + "-{{commodity}}", "max_producers": 2}))
	var recs []connector.Record
	want := map[string][]string{}
	add := func(ns, commodity string) {
		v := fmt.Sprintf(`{"ns":%q,"commodity":%q,"i":%d}`, ns, commodity, len(recs))
		if commodity == "" {
			v = fmt.Sprintf(`{"ns":%q,"i":%d}`, ns, len(recs))
		}
		recs = append(recs, connector.Record{Value: []byte(v)})
		if ns == "public/default" && commodity != "" && !strings.Contains(commodity, "/") {
			want[commodity] = append(want[commodity], v)
		}
	}
	for i := range 30 {
		add("public/default", []string{"gold", "silver", "copper"}[i%3])
	}
	add("public/default", "")     // 30: no commodity
	add("public/default", "a/b")  // 31: not a topic name
	add(noauto, "missing")        // 32: topic does not exist, may not be created
	add("public/default", "gold") // 33
	err := s.Write(context.Background(), recs)
	var be *connector.BatchError
	if !errors.As(err, &be) {
		t.Fatalf("Write: %v; want a BatchError", err)
	}
	var failed []string
	for _, f := range be.Failed {
		failed = append(failed, fmt.Sprintf("%d: %v", f.Index, f.Err))
	}
	if len(be.Failed) != 3 || be.Failed[0].Index != 30 || be.Failed[1].Index != 31 || be.Failed[2].Index != 32 ||
		!strings.Contains(be.Failed[0].Err.Error(), "commodity") || !strings.Contains(be.Failed[2].Err.Error(), "does not exist") {
		t.Fatalf("failed records:\n%s\nwant 30 (no commodity), 31 (not a topic name), 32 (does not exist)", strings.Join(failed, "\n"))
	}
	if n := len(s.producers); n > 2 {
		t.Fatalf("%d producers open after the write; max_producers is 2", n)
	}
	for commodity, vs := range want {
		var got []string
		for _, r := range b.readTopic(t, prefix+"-"+commodity) {
			got = append(got, string(r.Value))
		}
		if strings.Join(got, "\n") != strings.Join(vs, "\n") {
			t.Fatalf("topic -%s holds\n%s\nwant\n%s", commodity, strings.Join(got, "\n"), strings.Join(vs, "\n"))
		}
	}
}

// TestSinkErrorsIntegration: what Open says about a fixed topic that does not exist (permanent)
// and an unreachable cluster (retried).
func TestSinkErrorsIntegration(t *testing.T) {
	b := needBroker(t)
	open := func(t *testing.T, values map[string]any) error {
		s, err := NewSink(sinkConfig(t, b, values), connector.Env{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close(context.Background())
		return s.Open(context.Background())
	}
	topic := "persistent://" + b.noAutoNamespace(t) + "/missing"
	if err := open(t, map[string]any{"topic": topic}); !errors.Is(err, connector.ErrPermanent) || !strings.Contains(err.Error(), "does not exist") || !strings.Contains(err.Error(), topic) {
		t.Fatalf("Open: %v; want a permanent error naming the missing topic", err)
	}
	err := open(t, map[string]any{"url": "pulsar://127.0.0.1:1", "topic": "x", "operation_timeout": 2 * time.Second})
	if err == nil || errors.Is(err, connector.ErrPermanent) || !strings.Contains(err.Error(), "cannot reach the Pulsar cluster") {
		t.Fatalf("Open: %v; want a transient error saying the cluster cannot be reached", err)
	}
}

func TestSinkConfigErrors(t *testing.T) {
	base := map[string]any{"url": "pulsar://localhost:6650", "topic": "events"}
	for _, tc := range []struct {
		change map[string]any
		field  string
	}{
		{map[string]any{"topic": "{{x"}, "topic"},
		{map[string]any{"topic": "a/b"}, "topic"},
		{map[string]any{"key": "{{"}, "key"},
		{map[string]any{"properties": map[string]any{"p": "{{x"}}, "properties.p"},
		{map[string]any{"max_producers": 0}, "max_producers"},
		{map[string]any{"batching_max_messages": 0}, "batching_max_messages"},
		{map[string]any{"send_timeout": "0s"}, "send_timeout"},
		{map[string]any{"compression": "gzip"}, "compression"},
	} {
		t.Run(fmt.Sprint(tc.change), func(t *testing.T) {
			v := map[string]any{}
			for k, x := range base {
				v[k] = x
			}
			for k, x := range tc.change {
				v[k] = x
			}
			cfg, err := sinkSpec.Config(v)
			if err == nil {
				_, err = NewSink(cfg, connector.Env{})
			}
			var ce *connector.ConfigError
			if !errors.As(err, &ce) || ce.Field != tc.field {
				t.Fatalf("got %v; want a ConfigError on %s", err, tc.field)
			}
		})
	}
}

// TestSinkWritesInFlightIntegration hands the sink several writes before waiting for any, as the
// engine does with a connector.PipelinedSink: each wait reports its own write's refused records
// (by index into that write), the message slices of completed writes are reused, and the topic
// holds every other record once, in the order handed over.
func TestSinkWritesInFlightIntegration(t *testing.T) {
	b := needBroker(t)
	topic := uniqueTopic(t, "inflight")
	s := openSink(t, sinkConfig(t, b, map[string]any{"topic": topic, "properties": map[string]any{"c": "{{commodity}}"}}))
	ctx := context.Background()
	var want []string
	const writes, per = 12, 500
	var waits []func() error
	for w := range writes {
		recs := make([]connector.Record, per)
		for i := range recs {
			v := fmt.Sprintf(`{"commodity":"gold","w":%d,"i":%d}`, w, i)
			if i == w { // one record per write whose property template cannot render
				v = fmt.Sprintf(`{"w":%d,"i":%d}`, w, i)
			} else {
				want = append(want, v)
			}
			recs[i] = connector.Record{Value: []byte(v)}
		}
		waits = append(waits, s.WriteAsync(ctx, recs))
		if len(waits) == 3 { // three in flight, as the engine keeps at most
			checkRefused(t, waits[0](), w-2)
			waits = waits[1:]
		}
	}
	for i, wait := range waits {
		checkRefused(t, wait(), writes-len(waits)+i)
	}
	var got []string
	for _, r := range b.readTopic(t, topic) {
		got = append(got, string(r.Value))
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("the topic holds %d messages, want the %d written in order", len(got), len(want))
	}
	if len(s.free) == 0 {
		t.Error("no message slice kept for reuse after the writes completed")
	}
}

// checkRefused checks that write w's error names exactly its record w as refused.
func checkRefused(t *testing.T, err error, w int) {
	t.Helper()
	var be *connector.BatchError
	if !errors.As(err, &be) || len(be.Failed) != 1 || be.Failed[0].Index != w || !strings.Contains(be.Failed[0].Err.Error(), "commodity") {
		t.Fatalf("write %d: %v; want its record %d refused for the missing commodity", w, err, w)
	}
}
