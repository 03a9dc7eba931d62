package pulsar

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"

	"github.com/sluicehq/sluice/sdk/go/connector"
	"github.com/sluicehq/sluice/sdk/go/conntest"
)

// firstHalf splits records read in order into what the engine would ack after the first half
// (the last position of each partition among the first n/2 records) and the records after.
func firstHalf(recs []connector.Record) (acked []connector.Position, before, after map[string]bool) {
	cut := len(recs) / 2
	before, after = map[string]bool{}, map[string]bool{}
	for i, r := range recs {
		if i < cut {
			before[string(r.Value)] = true
		} else {
			after[string(r.Value)] = true
		}
	}
	return lastPerPartition(recs[:cut]), before, after
}

// TestSourceAcksOnlyWhatIsAckedIntegration: for every subscription type, a consumer that read
// everything but acked only the first half hands the rest back when it closes; the next consumer
// of the subscription gets the second half, without any checkpoint to help. Pulsar acks a
// producer's batch as a whole, so acked messages of a batch that also holds unacked ones come
// again; no other acked message may.
func TestSourceAcksOnlyWhatIsAckedIntegration(t *testing.T) {
	b := needBroker(t)
	for _, typ := range []string{"exclusive", "failover", "shared", "key_shared"} {
		t.Run(typ, func(t *testing.T) {
			topic := uniqueTopic(t, "acks")
			b.createPartitioned(t, topic, 2)
			n := 200
			b.produce(t, topic, n, numbered)
			cfg := sourceConfig(t, b, map[string]any{"topics": []any{topic}, "subscription": "s", "subscription_type": typ, "receiver_queue_size": 50})
			first := openSource(t, cfg, nil)
			recs := readN(t, first, n)
			acked, before, after := firstHalf(recs)
			if err := first.Ack(context.Background(), acked); err != nil {
				t.Fatalf("Ack: %v", err)
			}
			if err := first.Close(context.Background()); err != nil {
				t.Fatalf("Close: %v", err)
			}
			unackedEntries := map[entry]bool{}
			for _, r := range recs {
				if after[string(r.Value)] {
					unackedEntries[entryOf(t, r)] = true
				}
			}
			second := openSource(t, cfg, nil)
			again := readAll(t, second, after)
			for _, r := range again {
				if before[string(r.Value)] && !unackedEntries[entryOf(t, r)] {
					t.Fatalf("%s was acked, with its whole batch, and delivered again", r.Value)
				}
			}
			got := values(again)
			for v := range after {
				if got[v] == 0 {
					t.Fatalf("%s was not acked, and not delivered again", v)
				}
			}
		})
	}
}

// entry is a broker entry: a message, or a producer's batch of messages.
type entry struct {
	partition     string
	ledger, entry int64
}

func entryOf(t *testing.T, r connector.Record) entry {
	t.Helper()
	k, err := parseCursor(r.Position.Cursor)
	if err != nil {
		t.Fatal(err)
	}
	return entry{r.Position.Partition, k.ledger, k.entry}
}

// TestSourceSkipsCheckpointedIntegration: an exclusive or failover source opened at checkpointed
// positions whose ack never reached the broker acks the messages up to them and delivers only what
// follows; the subscription is then empty once the rest is acked.
func TestSourceSkipsCheckpointedIntegration(t *testing.T) {
	b := needBroker(t)
	topic := uniqueTopic(t, "skip")
	b.createPartitioned(t, topic, 3)
	n := 300
	b.produce(t, topic, n, numbered)
	cfg := sourceConfig(t, b, map[string]any{"topics": []any{topic}, "subscription": "s"})
	first := openSource(t, cfg, nil)
	recs := readN(t, first, n)
	checkpoint, before, after := firstHalf(recs)
	_ = first.Close(context.Background()) // "crash": nothing acked

	second := openSource(t, cfg, checkpoint)
	rest := readAll(t, second, after)
	for _, r := range rest {
		if before[string(r.Value)] {
			t.Fatalf("%s is at or before its partition's checkpoint, and was delivered again", r.Value)
		}
	}
	if err := second.Ack(context.Background(), lastPerPartition(rest)); err != nil {
		t.Fatalf("Ack: %v", err)
	}
	// The skipped messages are acked as Read meets them: keep reading (nothing more comes).
	waitBacklog(t, second, func(total int64) bool {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		if recs, _ := second.Read(ctx); len(recs) > 0 {
			t.Fatalf("%d more records came, starting with %s", len(recs), recs[0].Value)
		}
		return total == 0
	}, "0 after acking everything")
}

// waitBacklog polls the source's backlog until ok accepts the total.
func waitBacklog(t *testing.T, s *Source, ok func(int64) bool, want string) []connector.Backlog {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		bl, err := s.Backlog(context.Background(), nil)
		if err != nil {
			t.Fatalf("Backlog: %v", err)
		}
		var total int64
		for _, x := range bl {
			total += x.Records
		}
		if ok(total) {
			return bl
		}
		if time.Now().After(deadline) {
			t.Fatalf("backlog %v (total %d), want %s", bl, total, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestSourceBacklogIntegration: the backlog is reported per partition and falls as messages are
// acked.
func TestSourceBacklogIntegration(t *testing.T) {
	b := needBroker(t)
	topic := uniqueTopic(t, "backlog")
	b.createPartitioned(t, topic, 2)
	cfg := sourceConfig(t, b, map[string]any{"topics": []any{topic}, "subscription": "s", "subscription_type": "shared"})
	s := openSource(t, cfg, nil)
	// Unbatched, so that the broker's count (entries) is the count of messages.
	p, err := b.client.CreateProducer(pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for i := range 40 {
		if _, err := p.Send(context.Background(), numbered(i)); err != nil {
			t.Fatal(err)
		}
	}
	bl := waitBacklog(t, s, func(total int64) bool { return total == 40 }, "40")
	if len(bl) != 2 {
		t.Fatalf("backlog %v: want 2 partitions", bl)
	}
	for _, x := range bl {
		if !strings.HasPrefix(x.Partition, topic+"-partition-") || x.Bytes <= 0 {
			t.Fatalf("backlog %v: want the partitions of %s with their bytes", bl, topic)
		}
	}
	recs := readN(t, s, 40)
	acked, _, _ := firstHalf(recs)
	if err := s.Ack(context.Background(), acked); err != nil {
		t.Fatal(err)
	}
	waitBacklog(t, s, func(total int64) bool { return total == 20 }, "20 after acking half")
}

// TestSourceRecordIntegration: key, value, properties, times and the metadata headers.
func TestSourceRecordIntegration(t *testing.T) {
	b := needBroker(t)
	topic := uniqueTopic(t, "record")
	event := time.UnixMilli(1_700_000_000_123)
	sentMsgs := b.produce(t, topic, 2, func(i int) *pulsar.ProducerMessage {
		m := &pulsar.ProducerMessage{Payload: []byte(fmt.Sprintf("v%d", i)),
			Properties: map[string]string{"region": "eu", "sluice-malformed": "forged", "Sluice-Other": "x"}}
		if i == 0 {
			m.Key, m.EventTime = "gold", event
		}
		return m
	})
	s := openSource(t, sourceConfig(t, b, map[string]any{"topics": []any{topic}, "subscription": "s"}), nil)
	recs := readN(t, s, 2)
	r := recs[0]
	if string(r.Value) != "v0" || string(r.Key) != "gold" || !r.Time.Equal(event) {
		t.Fatalf("record value %q key %q time %v; want v0, gold, %v", r.Value, r.Key, r.Time, event)
	}
	if v, _ := header(r, "region"); v != "eu" {
		t.Fatalf("property region: got %q, want eu (headers %v)", v, r.Headers)
	}
	for _, h := range r.Headers {
		if connector.IsReservedHeader(h.Key) {
			t.Fatalf("reserved header %q was forwarded", h.Key)
		}
	}
	id := sentMsgs[0].id
	want := map[string]string{
		HeaderTopic:     topic,
		HeaderMessageID: fmt.Sprintf("%d:%d:%d:%d", id.LedgerID(), id.EntryID(), id.PartitionIdx(), id.BatchIdx()),
		HeaderEventTime: "1700000000123",
	}
	for k, v := range want {
		if got, _ := header(r, k); got != v {
			t.Fatalf("header %s: got %q, want %q", k, got, v)
		}
	}
	pub, _ := header(r, HeaderPublishTime)
	if ms, err := strconv.ParseInt(pub, 10, 64); err != nil || time.Since(time.UnixMilli(ms)) > time.Hour {
		t.Fatalf("header %s: %q is not a recent epoch-ms time", HeaderPublishTime, pub)
	}
	if r.Position.Partition != topic || !equalBytes(r.Position.Cursor, id.Serialize()) {
		t.Fatalf("position %v; want partition %s, cursor %x", r.Position, topic, id.Serialize())
	}
	// Without an event time, the record's time is the publish time.
	r = recs[1]
	if _, ok := header(r, HeaderEventTime); ok || len(r.Key) != 0 {
		t.Fatalf("second record: key %q, headers %v: want no key and no event time", r.Key, r.Headers)
	}
	pub, _ = header(r, HeaderPublishTime)
	if fmt.Sprint(r.Time.UnixMilli()) != pub {
		t.Fatalf("second record time %v, publish time %s: want them equal", r.Time, pub)
	}
}

// TestSourcePatternIntegration: topics_pattern reads every matching topic of the namespace, and
// the backlog covers them.
func TestSourcePatternIntegration(t *testing.T) {
	b := needBroker(t)
	prefix := uniqueTopic(t, "pat")
	b.createPartitioned(t, prefix+"-a", 2)
	b.produce(t, prefix+"-a", 10, numbered)
	b.produce(t, prefix+"-b", 10, func(i int) *pulsar.ProducerMessage { return numbered(100 + i) })
	b.produce(t, prefix+"x-c", 10, func(i int) *pulsar.ProducerMessage { return numbered(200 + i) }) // does not match
	s := openSource(t, sourceConfig(t, b, map[string]any{"topics_pattern": prefix + "-.*", "subscription": "s"}), nil)
	got := values(readN(t, s, 20))
	for i := range 20 {
		n := i
		if i >= 10 {
			n = 100 + i - 10
		}
		if got[string(conntest.Value(n))] == 0 {
			t.Fatalf("record %d of the matching topics is missing (got %v)", n, got)
		}
	}
	bl, err := s.Backlog(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var parts []string
	for _, x := range bl {
		parts = append(parts, strings.TrimPrefix(x.Partition, prefix))
	}
	sort.Strings(parts)
	if strings.Join(parts, ",") != "-a-partition-0,-a-partition-1,-b" {
		t.Fatalf("backlog partitions %v; want the two of -a and -b", parts)
	}
}

// TestSourceSharedIntegration: two sources on a shared (and a key_shared) subscription split the
// messages; every message reaches one of them; with key_shared the messages of one key keep their
// order.
func TestSourceSharedIntegration(t *testing.T) {
	b := needBroker(t)
	for _, typ := range []string{"shared", "key_shared"} {
		t.Run(typ, func(t *testing.T) {
			topic := uniqueTopic(t, "shared")
			cfg := sourceConfig(t, b, map[string]any{"topics": []any{topic}, "subscription": "s", "subscription_type": typ, "receiver_queue_size": 10})
			one, two := openSource(t, cfg, nil), openSource(t, cfg, nil)
			n := 400
			// Unbatched: the broker spreads entries, and a batch would go to one consumer whole.
			// With key_shared the broker splits the key hash range between the consumers, so the
			// keys must be many: numbered's 7 keys can all hash into one consumer's range.
			b.produceWith(t, pulsar.ProducerOptions{Topic: topic, DisableBatching: true}, n, func(i int) *pulsar.ProducerMessage {
				m := numbered(i)
				m.Key = fmt.Sprintf("k%d", i%64)
				return m
			})
			got := map[string]int{}
			byKey := map[string][]int{}
			counts := [2]int{}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			for len(got) < n {
				for i, s := range []*Source{one, two} {
					rctx, rcancel := context.WithTimeout(ctx, 50*time.Millisecond)
					recs, err := s.Read(rctx)
					rcancel()
					if err != nil && !errors.Is(err, context.DeadlineExceeded) {
						t.Fatal(err)
					}
					if ctx.Err() != nil {
						t.Fatalf("got %d of %d records", len(got), n)
					}
					counts[i] += len(recs)
					for _, r := range recs {
						got[string(r.Value)]++
						var v int
						fmt.Sscanf(string(r.Value), `{"n":%d}`, &v)
						byKey[string(r.Key)] = append(byKey[string(r.Key)], v)
					}
					if len(recs) > 0 {
						if err := s.Ack(ctx, lastPerPartition(recs)); err != nil {
							t.Fatal(err)
						}
					}
				}
			}
			if counts[0] == 0 || counts[1] == 0 {
				t.Fatalf("one consumer got everything (%v): the subscription did not spread the messages", counts)
			}
			if typ == "key_shared" {
				for k, vs := range byKey {
					if !sort.IntsAreSorted(vs) {
						t.Fatalf("key %s: messages out of order: %v", k, vs)
					}
				}
			}
		})
	}
}

// TestSourceErrorsIntegration: what Open says about an unreachable cluster (retried), a topic
// that does not exist where auto-creation is off, and an exclusive subscription already held.
func TestSourceErrorsIntegration(t *testing.T) {
	b := needBroker(t)
	open := func(t *testing.T, values map[string]any) error {
		s, err := NewSource(sourceConfig(t, b, values), connector.Env{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close(context.Background())
		return s.Open(context.Background(), nil)
	}
	t.Run("unreachable", func(t *testing.T) {
		err := open(t, map[string]any{"url": "pulsar://127.0.0.1:1", "topics": []any{"x"}, "subscription": "s", "operation_timeout": 2 * time.Second})
		if err == nil || errors.Is(err, connector.ErrPermanent) || !strings.Contains(err.Error(), "cannot reach the Pulsar cluster at pulsar://127.0.0.1:1") {
			t.Fatalf("Open: %v; want a transient error saying the cluster cannot be reached", err)
		}
	})
	t.Run("unknown topic", func(t *testing.T) {
		topic := "persistent://" + b.noAutoNamespace(t) + "/missing"
		err := open(t, map[string]any{"topics": []any{topic}, "subscription": "s"})
		if !errors.Is(err, connector.ErrPermanent) || !strings.Contains(err.Error(), "does not exist") || !strings.Contains(err.Error(), topic) {
			t.Fatalf("Open: %v; want a permanent error naming the missing topic", err)
		}
	})
	t.Run("exclusive busy", func(t *testing.T) {
		topic := uniqueTopic(t, "busy")
		values := map[string]any{"topics": []any{topic}, "subscription": "s", "subscription_type": "exclusive"}
		openSource(t, sourceConfig(t, b, values), nil)
		err := open(t, values)
		if err == nil || !strings.Contains(err.Error(), "another consumer holds it") {
			t.Fatalf("Open: %v; want an error saying the exclusive subscription is held", err)
		}
	})
}

// TestSourceInitialPositionIntegration: a new subscription with initial_position latest reads
// only what is produced after it was created; earliest (the default) reads the topic from its
// start. Once the subscription exists, the broker's cursor decides, whatever the setting.
func TestSourceInitialPositionIntegration(t *testing.T) {
	b := needBroker(t)
	topic := uniqueTopic(t, "initial")
	b.produce(t, topic, 10, numbered) // before any subscription
	latest := openSource(t, sourceConfig(t, b, map[string]any{"topics": []any{topic}, "subscription": "late", "initial_position": "latest"}), nil)
	earliest := openSource(t, sourceConfig(t, b, map[string]any{"topics": []any{topic}, "subscription": "early"}), nil)
	b.produce(t, topic, 5, func(i int) *pulsar.ProducerMessage { return numbered(100 + i) })
	got := values(readN(t, latest, 5))
	for i := range 5 {
		if got[string(conntest.Value(100+i))] != 1 {
			t.Fatalf("latest: record %d missing or repeated in %v", 100+i, got)
		}
	}
	if len(got) != 5 {
		t.Fatalf("latest read %d distinct records, want only the 5 produced after it subscribed: %v", len(got), got)
	}
	if got := values(readN(t, earliest, 15)); len(got) != 15 || got[string(conntest.Value(0))] != 1 {
		t.Fatalf("earliest read %v, want the 10 records from before it subscribed and the 5 after", got)
	}
	// Nothing more comes to latest: the 10 older records stay unread.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for {
		recs, err := latest.Read(ctx)
		if len(recs) > 0 {
			t.Fatalf("latest read %d more records after the 5 new ones: %v", len(recs), values(recs))
		}
		if err != nil {
			break // the second is over
		}
	}
}

// TestOmitMetadataHeadersIntegration: once the runtime says nothing reads headers, records carry
// the messages' properties only, and keep their event time.
func TestOmitMetadataHeadersIntegration(t *testing.T) {
	b := needBroker(t)
	topic := uniqueTopic(t, "nometa")
	event := time.UnixMilli(1_700_000_000_123)
	b.produce(t, topic, 3, func(i int) *pulsar.ProducerMessage {
		return &pulsar.ProducerMessage{Payload: []byte(fmt.Sprintf("v%d", i)), Properties: map[string]string{"region": "eu"}, EventTime: event}
	})
	s, err := NewSource(sourceConfig(t, b, map[string]any{"topics": []any{topic}, "subscription": "s"}), connector.Env{})
	if err != nil {
		t.Fatal(err)
	}
	s.OmitMetadataHeaders()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := s.Open(ctx, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	for _, r := range readN(t, s, 3) {
		if len(r.Headers) != 1 || r.Headers[0].Key != "region" || !r.Time.Equal(event) {
			t.Fatalf("record %q: headers %v, time %v; want only the property region, time %v", r.Value, r.Headers, r.Time, event)
		}
	}
}
