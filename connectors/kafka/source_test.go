package kafka

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/internal/testenv"
	"github.com/sluicehq/sluice/sdk/go/connector"
	"github.com/sluicehq/sluice/sdk/go/conntest"
)

func openSource(t *testing.T, ctx context.Context, values map[string]any) *Source {
	t.Helper()
	src, err := NewSource(sourceConfig(t, values), connector.Env{})
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Open(ctx, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = src.Close(context.Background()) })
	return src
}

// TestRecordShapeIntegration checks what a Kafka record becomes: key, value, time and headers
// kept, reserved headers dropped, the metadata headers first; and topic_pattern in a group.
func TestRecordShapeIntegration(t *testing.T) {
	b := sharedBroker(t)
	a, c := b.topic(t, 1, nil), b.topic(t, 1, nil)
	when := time.UnixMilli(1_700_000_000_123)
	ctx := testContext(t, 2*time.Minute)
	for _, topic := range []string{a, c} {
		r := &kgo.Record{Topic: topic, Key: []byte("k"), Value: []byte(`{"v":1}`), Timestamp: when,
			Headers: []kgo.RecordHeader{{Key: "trace", Value: []byte("t1")}, {Key: "Sluice-Malformed", Value: []byte("forged")}, {Key: "trace", Value: []byte("t2")}}}
		if err := b.cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	pattern := regexp.QuoteMeta(a) + "|" + regexp.QuoteMeta(c)
	src := openSource(t, ctx, map[string]any{"brokers": []any{b.addr}, "topic_pattern": pattern, "group": uniqueName(t, "g")})
	got := conntest.ReadN(t, ctx, src, 2)
	seen := map[string]bool{}
	for _, r := range got {
		topic, _ := headerValue(r, HeaderTopic)
		seen[topic] = true
		if string(r.Key) != "k" || string(r.Value) != `{"v":1}` || !r.Time.Equal(when) {
			t.Errorf("record %q/%q at %v; want key k, value {\"v\":1}, time %v", r.Key, r.Value, r.Time, when)
		}
		want := []string{HeaderTopic + "=" + topic, HeaderPartition + "=0", HeaderOffset + "=0", "trace=t1", "trace=t2"}
		var have []string
		for _, h := range r.Headers {
			have = append(have, h.Key+"="+string(h.Value))
		}
		if fmt.Sprint(have) != fmt.Sprint(want) {
			t.Errorf("headers %v; want %v (metadata first, upstream kept in order, sluice- dropped)", have, want)
		}
		if r.Position.Partition != topic+"/0" || r.Position.Offset != 0 {
			t.Errorf("position %v; want %s/0@0", r.Position, topic)
		}
	}
	if !seen[a] || !seen[c] {
		t.Fatalf("read topics %v; want %s and %s through topic_pattern %s", seen, a, c, pattern)
	}
}

func headerValue(r connector.Record, key string) (string, bool) {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value), true
		}
	}
	return "", false
}

// TestStartIntegration checks where a group without committed offsets starts: latest, or the
// first record at or after a time.
func TestStartIntegration(t *testing.T) {
	b := sharedBroker(t)
	topic := b.topic(t, 1, nil)
	ctx := testContext(t, 2*time.Minute)
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	for i := range 10 {
		r := &kgo.Record{Topic: topic, Value: []byte(strconv.Itoa(i)), Timestamp: base.Add(time.Duration(i) * time.Minute)}
		if err := b.cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	at := openSource(t, ctx, map[string]any{"brokers": []any{b.addr}, "topics": []any{topic}, "group": uniqueName(t, "g"),
		"start": base.Add(6*time.Minute + 30*time.Second).UTC().Format(time.RFC3339)})
	if got := conntest.ReadN(t, ctx, at, 1); string(got[0].Value) != "7" {
		t.Fatalf("start at a time: first record %q; want 7 (the first at or after it)", got[0].Value)
	}

	latest := openSource(t, ctx, map[string]any{"brokers": []any{b.addr}, "topics": []any{topic}, "group": uniqueName(t, "g"), "start": "latest"})
	// Produce new records until the source returns one: whenever it settled on the end, the first
	// record it returns must be a new one, never one of the ten before.
	read := make(chan []connector.Record, 1)
	go func() {
		recs, _ := latest.Read(ctx)
		read <- recs
	}()
	for i := 0; ; i++ {
		if err := b.cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("new" + strconv.Itoa(i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-read:
			if len(got) == 0 || !strings.HasPrefix(string(got[0].Value), "new") {
				t.Fatalf("start latest: read %v first; want a record produced after the start", got)
			}
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// TestPositionPastTheEndIsWarnedIntegration: a position to resume from at or past its partition's
// end (a topic deleted and created again under a pipeline's checkpoint or exactly-once sinks) is
// warned of when the source opens, naming the partition, the position and the end; one inside
// the partition is not.
func TestPositionPastTheEndIsWarnedIntegration(t *testing.T) {
	b := sharedBroker(t)
	topic := b.topic(t, 1, nil)
	ctx := testContext(t, 2*time.Minute)
	b.produce(t, topic, 1, 3, seqValue(1)) // offsets 0, 1, 2: the end offset is 3
	part := topic + "/0"
	for _, tc := range []struct {
		name  string
		group string
		at    int64
		warn  bool
	}{
		{"last record, no group", "", 2, false},
		{"at the end, no group", "", 3, true},
		{"far past the end, group", uniqueName(t, "g"), 1_000_000, true},
		{"inside, group", uniqueName(t, "g"), 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs := &testenv.Buffer{}
			h := slog.NewTextHandler(logs, nil)
			values := map[string]any{"brokers": []any{b.addr}, "topics": []any{topic}}
			if tc.group != "" {
				values["group"] = tc.group
			}
			src, err := NewSource(sourceConfig(t, values), connector.Env{Logger: slog.New(h)})
			if err != nil {
				t.Fatal(err)
			}
			if err := src.Open(ctx, []connector.Position{{Partition: part, Offset: tc.at}}); err != nil {
				t.Fatal(err)
			}
			src.Close(context.Background())
			got := logs.String()
			warned := strings.Contains(got, "past the partition's end")
			if warned != tc.warn {
				t.Fatalf("position %d of a partition ending at 3: warned %v, want %v; logs:\n%s", tc.at, warned, tc.warn, got)
			}
			if warned && (!strings.Contains(got, "partition="+part) || !strings.Contains(got, fmt.Sprintf("position=%d", tc.at)) ||
				!strings.Contains(got, "end_offset=3") || !strings.Contains(got, "--reset")) {
				t.Fatalf("the warning does not name the partition, the position, the end and the fix:\n%s", got)
			}
		})
	}
}

// TestMetadataHeadersIntegration: every record's offset header is its offset, across the
// decimal carries (999 → 1000) and across the gap a transaction's commit marker leaves, in reads
// that end mid-fetch (max_poll_records 7).
func TestMetadataHeadersIntegration(t *testing.T) {
	b := sharedBroker(t)
	topic := b.topic(t, 1, nil)
	ctx := testContext(t, 2*time.Minute)
	b.produce(t, topic, 1, 995, seqValue(1)) // offsets 0..994
	tx, err := kgo.NewClient(kgo.SeedBrokers(b.addr), kgo.TransactionalID(uniqueName(t, "tx")), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	if err := tx.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for i := range 10 { // offsets 995..1004; the commit marker takes 1005
		if err := tx.ProduceSync(ctx, &kgo.Record{Value: fmt.Appendf(nil, `{"tx":%d}`, i)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	b.produceRange(t, topic, 1, 995, 1005, seqValue(1)) // offsets 1006..1015
	want := 1015
	src := openSource(t, ctx, map[string]any{"brokers": []any{b.addr}, "topics": []any{topic}, "group": uniqueName(t, "g"), "max_poll_records": 7})
	got := conntest.ReadN(t, ctx, src, want)
	var offsets []int64
	for _, r := range got {
		off, _ := headerValue(r, HeaderOffset)
		if off != strconv.FormatInt(r.Position.Offset, 10) {
			t.Fatalf("record at offset %d has offset header %q", r.Position.Offset, off)
		}
		if p, _ := headerValue(r, HeaderPartition); p != "0" {
			t.Fatalf("record at offset %d has partition header %q", r.Position.Offset, p)
		}
		if tp, _ := headerValue(r, HeaderTopic); tp != topic {
			t.Fatalf("record at offset %d has topic header %q", r.Position.Offset, tp)
		}
		offsets = append(offsets, r.Position.Offset)
	}
	for i, off := range offsets {
		wantOff := int64(i)
		if i >= 1005 {
			wantOff = int64(i) + 1 // past the commit marker
		}
		if off != wantOff {
			t.Fatalf("record %d at offset %d, want %d", i, off, wantOff)
		}
	}
}

// TestOmitMetadataHeadersIntegration: once the runtime says nothing reads headers, records carry
// their upstream headers only, and their positions still say where they came from.
func TestOmitMetadataHeadersIntegration(t *testing.T) {
	b := sharedBroker(t)
	topic := b.topic(t, 1, nil)
	ctx := testContext(t, 2*time.Minute)
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.addr), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for i := range 5 {
		rec := &kgo.Record{Value: fmt.Appendf(nil, `{"n":%d}`, i), Headers: []kgo.RecordHeader{{Key: "trace", Value: []byte("t")}}}
		if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	src, err := NewSource(sourceConfig(t, map[string]any{"brokers": []any{b.addr}, "topics": []any{topic}, "group": uniqueName(t, "g")}), connector.Env{})
	if err != nil {
		t.Fatal(err)
	}
	src.OmitMetadataHeaders()
	if err := src.Open(ctx, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = src.Close(context.Background()) })
	for i, r := range conntest.ReadN(t, ctx, src, 5) {
		if len(r.Headers) != 1 || r.Headers[0].Key != "trace" || r.Position.Partition != topic+"/0" || r.Position.Offset != int64(i) {
			t.Fatalf("record %d: headers %v at %v, want only the upstream header trace, at %s/0 offset %d", i, r.Headers, r.Position, topic, i)
		}
	}
}
