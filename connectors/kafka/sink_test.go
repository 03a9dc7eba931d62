package kafka

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/checkpoint"
	"github.com/sluicehq/sluice/internal/engine"
	"github.com/sluicehq/sluice/runtime/pipeline"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

func TestSinkTemplatesRouteAndRefuseIntegration(t *testing.T) {
	b := sharedBroker(t)
	topic := b.topic(t, 2, nil)
	ctx := testContext(t, 2*time.Minute)
	snk := openSink(t, ctx, sinkConfig(t, map[string]any{"brokers": []any{b.addr}, "topic": "{{header.dest}}", "key": "{{commodity}}", "partition": "{{header.part}}"}), connector.Env{})
	rec := func(dest, part, value string) connector.Record {
		return connector.Record{Value: []byte(value), Time: time.UnixMilli(1700000000000),
			Headers: []connector.Header{{Key: "dest", Value: []byte(dest)}, {Key: "part", Value: []byte(part)}, {Key: "trace", Value: []byte("t1")}}}
	}
	batch := []connector.Record{
		rec(topic, "1", `{"commodity":"gold","price":1}`),
		rec(topic, "1", `{"price":2}`),                                      // no commodity: the key cannot be rendered
		rec(uniqueName(t, "missing"), "0", `{"commodity":"tin","price":3}`), // a topic that does not exist
		rec("not a topic!", "0", `{"commodity":"tin","price":4}`),           // not a topic name
		rec(topic, "7", `{"commodity":"tin","price":5}`),                    // no partition 7
		rec(topic, "0", `{"commodity":"silver","price":6}`),
	}
	err := snk.Write(ctx, batch)
	var be *connector.BatchError
	if !errors.As(err, &be) {
		t.Fatalf("Write: %v; want a *connector.BatchError", err)
	}
	var idx []int
	for _, f := range be.Failed {
		idx = append(idx, f.Index)
		t.Logf("refused %d: %v", f.Index, f.Err)
	}
	if !slices.Equal(idx, []int{1, 2, 3, 4}) {
		t.Fatalf("refused records %v, want [1 2 3 4]", idx)
	}
	got := b.readAll(t, topic)
	if len(got) != 2 {
		t.Fatalf("%d records in %s, want 2", len(got), topic)
	}
	for _, r := range got {
		want := map[string]int32{"gold": 1, "silver": 0}
		p, ok := want[string(r.Key)]
		if !ok || r.Partition != p {
			t.Errorf("record key %q in partition %d; want gold in 1, silver in 0", r.Key, r.Partition)
		}
		if len(r.Headers) != 3 || r.Headers[2].Key != "trace" || string(r.Headers[2].Value) != "t1" {
			t.Errorf("headers %v, want dest, part and trace kept", r.Headers)
		}
		if r.Timestamp.UnixMilli() != 1700000000000 {
			t.Errorf("timestamp %v, want the record's time", r.Timestamp)
		}
	}
}

func TestSinkMissingTopicIsPermanentIntegration(t *testing.T) {
	b := sharedBroker(t)
	snk, err := NewSink(sinkConfig(t, map[string]any{"brokers": []any{b.addr}, "topic": uniqueName(t, "missing")}), connector.Env{})
	if err != nil {
		t.Fatal(err)
	}
	err = snk.Open(testContext(t, time.Minute))
	defer snk.Close(context.Background())
	if !errors.Is(err, connector.ErrPermanent) {
		t.Fatalf("Open: %v; want a permanent error", err)
	}
	t.Log(err)
}

// TestSinkAsDeadLetterIntegration runs file → Kafka with a key template that some records cannot
// fill: those go to the dead letters, which are a Kafka topic as well.
func TestSinkAsDeadLetterIntegration(t *testing.T) {
	b := sharedBroker(t)
	out, dlq := b.topic(t, 3, nil), b.topic(t, 1, nil)
	dir := t.TempDir()
	in := filepath.Join(dir, "in.jsonl")
	var lines []string
	for i := range 1000 {
		if i%100 == 7 {
			lines = append(lines, fmt.Sprintf(`{"n":%d}`, i)) // no commodity
			continue
		}
		lines = append(lines, fmt.Sprintf(`{"n":%d,"commodity":"c%d"}`, i, i%5))
	}
	if err := os.WriteFile(in, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &pipeline.Pipeline{
		Name:       "file-kafka",
		Source:     pipeline.Component{Type: "file", Config: connector.Config{"path": in}},
		Sinks:      []pipeline.Sink{{Name: "out", Component: pipeline.Component{Type: "kafka", Config: connector.Config{"brokers": []any{b.addr}, "topic": out, "key": "{{commodity}}"}}}},
		DeadLetter: &pipeline.Component{Type: "kafka", Config: connector.Config{"brokers": []any{b.addr}, "topic": dlq}},
	}
	store, err := checkpoint.Open(filepath.Join(dir, "data"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	e, err := engine.New(p, engine.Options{Catalog: testCatalog(t), Checkpoints: store})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Run(testContext(t, 2*time.Minute)); err != nil {
		t.Fatalf("run: %v", err)
	}
	if got := b.readAll(t, out); len(got) != 990 {
		t.Fatalf("%d records in the output topic, want 990", len(got))
	}
	letters := b.readAll(t, dlq)
	if len(letters) != 10 {
		t.Fatalf("%d dead letters, want 10", len(letters))
	}
	for _, l := range letters {
		var env struct {
			Stage, Kind, Reason, Value string
		}
		if err := json.Unmarshal(l.Value, &env); err != nil {
			t.Fatalf("dead letter %q: %v", l.Value, err)
		}
		if env.Stage != "out" || env.Kind != "sink_failed" || !strings.Contains(env.Reason, "commodity") || strings.Contains(env.Value, "commodity") {
			t.Errorf("dead letter %+v: want stage out, kind sink_failed, a reason naming commodity and the original value", env)
		}
	}
}

// TestSinkWritesInFlightIntegration: three writes handed over before the first is awaited all
// land, each key's records in the order they were handed over, and a write's wait returns only
// once its records are stored (they can be read back right after it).
func TestSinkWritesInFlightIntegration(t *testing.T) {
	b := sharedBroker(t)
	topic := b.topic(t, 3, nil)
	ctx := testContext(t, 2*time.Minute)
	snk := openSink(t, ctx, sinkConfig(t, map[string]any{"brokers": []any{b.addr}, "topic": topic, "key": "{{k}}"}), connector.Env{})
	const writes, per, keys = 3, 5000, 7
	var waits []func() error
	n := 0
	for range writes {
		recs := make([]connector.Record, per)
		for i := range recs {
			recs[i] = connector.Record{Value: fmt.Appendf(nil, `{"k":"k%d","n":%d}`, n%keys, n)}
			n++
		}
		waits = append(waits, snk.WriteAsync(ctx, recs))
	}
	for i, wait := range waits {
		if err := wait(); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	got := b.readAll(t, topic)
	if len(got) != writes*per {
		t.Fatalf("%d records in %s, want %d", len(got), topic, writes*per)
	}
	last := map[string]int{}
	seen := map[int]bool{}
	for _, r := range got {
		var v struct {
			K string `json:"k"`
			N int    `json:"n"`
		}
		if err := json.Unmarshal(r.Value, &v); err != nil {
			t.Fatal(err)
		}
		if string(r.Key) != v.K {
			t.Fatalf("record %d has key %q, want %q", v.N, r.Key, v.K)
		}
		if p, ok := last[v.K]; ok && v.N <= p {
			t.Fatalf("key %s: record %d after %d", v.K, v.N, p)
		}
		last[v.K] = v.N
		if seen[v.N] {
			t.Fatalf("record %d stored twice", v.N)
		}
		seen[v.N] = true
	}
}
