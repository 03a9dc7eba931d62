package kafka

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicehq/sluice/internal/testenv"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// broker is a Kafka cluster the tests use: the shared one of `make services`, or a private one.
type broker struct {
	addr string
	adm  *kadm.Client
	cl   *kgo.Client
}

// sharedBroker returns the broker of `make services`.
func sharedBroker(t testing.TB) *broker {
	t.Helper()
	return connectBroker(t, testenv.Require(t, "KAFKA_BOOTSTRAP"))
}

func connectBroker(t testing.TB, addr string, opts ...kgo.Opt) *broker {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr), kgo.MetadataMinAge(100 * time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatalf("kafka client: %v", err)
	}
	t.Cleanup(cl.Close)
	return &broker{addr: addr, adm: kadm.NewClient(cl), cl: cl}
}

// uniqueName is a topic or group name no other run of the test has used.
func uniqueName(t testing.TB, prefix string) string {
	clean := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, strings.ToLower(t.Name()))
	if len(clean) > 80 {
		clean = clean[len(clean)-80:]
	}
	return fmt.Sprintf("%s_%s_%d", prefix, clean, time.Now().UnixNano())
}

func testContext(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// topic creates a topic of the given partitions (and configs), deleted when the test ends.
func (b *broker) topic(t testing.TB, partitions int32, configs map[string]*string) string {
	t.Helper()
	name := uniqueName(t, "t")
	ctx := testContext(t, 60*time.Second)
	resp, err := b.adm.CreateTopic(ctx, partitions, 1, configs, name)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("create topic %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_, _ = b.adm.DeleteTopics(ctx, name)
	})
	b.waitTopic(t, name, partitions)
	return name
}

// waitTopic waits until the broker's metadata shows every partition of a new topic with a leader.
func (b *broker) waitTopic(t testing.TB, name string, partitions int32) {
	t.Helper()
	ctx := testContext(t, 60*time.Second)
	for {
		req := kmsg.NewPtrMetadataRequest()
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(name)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, b.cl)
		if err == nil && len(resp.Topics) == 1 && resp.Topics[0].ErrorCode == 0 && len(resp.Topics[0].Partitions) == int(partitions) {
			ready := true
			for _, p := range resp.Topics[0].Partitions {
				ready = ready && p.ErrorCode == 0 && p.Leader >= 0
			}
			if ready {
				return
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("topic %s has no leaders after 60s: %v", name, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// produce writes n records with a plain franz-go producer, record i to partition i % partitions
// with the value valueOf(i), and waits until all are acknowledged.
func (b *broker) produce(t testing.TB, topic string, partitions, n int, valueOf func(i int) []byte) {
	t.Helper()
	b.produceRange(t, topic, partitions, 0, n, valueOf)
}

// produceRange is produce for the records from to to (excluded).
func (b *broker) produceRange(t testing.TB, topic string, partitions, from, to int, valueOf func(i int) []byte) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.addr), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(5*time.Millisecond),
		kgo.MetadataMinAge(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := testContext(t, 5*time.Minute)
	errs := make(chan error, 1)
	for i := from; i < to; i++ {
		r := &kgo.Record{Topic: topic, Partition: int32(i % partitions), Key: fmt.Appendf(nil, "k%d", i), Value: valueOf(i)}
		cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
			if err != nil {
				select {
				case errs <- err:
				default:
				}
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatalf("produce: flush: %v", err)
	}
	select {
	case err := <-errs:
		t.Fatalf("produce: %v", err)
	default:
	}
}

// seqValue is the value of record i as produce writes it: its partition and its sequence number
// within the partition, so order per partition can be checked.
func seqValue(partitions int) func(i int) []byte {
	return func(i int) []byte {
		return fmt.Appendf(nil, `{"p":%d,"s":%d,"commodity":"gold","price":%d.5}`, i%partitions, i/partitions, 10+i%80)
	}
}

// readAll reads a topic from its start up to the end offsets it has when called.
func (b *broker) readAll(t testing.TB, topic string) []*kgo.Record {
	t.Helper()
	ctx := testContext(t, 2*time.Minute)
	ends, err := b.adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatalf("list end offsets: %v", err)
	}
	want := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			want[o.Partition] = o.Offset
		}
	})
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.addr), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.MetadataMinAge(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []*kgo.Record
	for len(want) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %s back: %d records, still waiting for partitions %v", topic, len(out), want)
		}
		fs.EachRecord(func(r *kgo.Record) {
			out = append(out, r)
			if end, ok := want[r.Partition]; ok && r.Offset+1 >= end {
				delete(want, r.Partition)
			}
		})
	}
	return out
}

// sourceConfig builds a source configuration through the spec.
func sourceConfig(t testing.TB, values map[string]any) connector.Config {
	t.Helper()
	cfg, err := sourceSpec.Config(values)
	if err != nil {
		t.Fatalf("source config: %v", err)
	}
	return cfg
}

func sinkConfig(t testing.TB, values map[string]any) connector.Config {
	t.Helper()
	cfg, err := sinkSpec.Config(values)
	if err != nil {
		t.Fatalf("sink config: %v", err)
	}
	return cfg
}

// readCommitted reads a topic from its start up to its last stable offsets, as a consumer with
// isolation.level=read_committed does: records of aborted or open transactions are not returned.
// Transaction markers are read (and dropped) to know when the end is reached.
func (b *broker) readCommitted(t testing.TB, topic string) []*kgo.Record {
	t.Helper()
	ctx := testContext(t, 2*time.Minute)
	ends, err := b.adm.ListCommittedOffsets(ctx, topic)
	if err != nil {
		t.Fatalf("list committed offsets: %v", err)
	}
	want := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			want[o.Partition] = o.Offset
		}
	})
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.addr), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords(), kgo.MetadataMinAge(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []*kgo.Record
	for len(want) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %s back: %d records, still waiting for partitions %v", topic, len(out), want)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if !r.Attrs.IsControl() {
				out = append(out, r)
			}
			if end, ok := want[r.Partition]; ok && r.Offset+1 >= end {
				delete(want, r.Partition)
			}
		})
	}
	return out
}

// openSink builds and opens a sink, closed when the test ends.
func openSink(t testing.TB, ctx context.Context, cfg connector.Config, env connector.Env) *Sink {
	t.Helper()
	snk, err := NewSink(cfg, env)
	if err != nil {
		t.Fatal(err)
	}
	if err := snk.Open(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = snk.Close(context.Background()) })
	return snk
}
