package servicetest

import (
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/testenv"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestKafkaSmokeIntegration(t *testing.T) {
	bootstrap := testenv.Require(t, "KAFKA_BOOTSTRAP")
	ctx := testContext(t, 60*time.Second)
	topic := uniqueName(t, "smoke")

	cl, err := kgo.NewClient(kgo.SeedBrokers(bootstrap))
	if err != nil {
		t.Fatalf("new client: %v", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(ctx, 2, 1, nil, topic); err != nil {
		t.Fatalf("create topic: %v", err)
	}
	t.Cleanup(func() { _, _ = adm.DeleteTopics(testContext(t, 10*time.Second), topic) })

	want := &kgo.Record{Topic: topic, Partition: 1, Key: []byte("k1"), Value: []byte("hello kafka"),
		Headers: []kgo.RecordHeader{{Key: "h", Value: []byte("v")}}}
	prod, err := kgo.NewClient(kgo.SeedBrokers(bootstrap), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatalf("new producer: %v", err)
	}
	defer prod.Close()
	if err := prod.ProduceSync(ctx, want).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}

	cons, err := kgo.NewClient(kgo.SeedBrokers(bootstrap), kgo.ConsumerGroup(topic+"_g"), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit())
	if err != nil {
		t.Fatalf("new consumer: %v", err)
	}
	defer cons.Close()
	var got *kgo.Record
	for got == nil {
		fetches := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consume: no record before the deadline: %v", ctx.Err())
		}
		if errs := fetches.Errors(); len(errs) > 0 {
			t.Fatalf("consume: %v", errs[0].Err)
		}
		if recs := fetches.Records(); len(recs) > 0 {
			got = recs[0]
		}
	}
	if string(got.Key) != "k1" || string(got.Value) != "hello kafka" || got.Partition != 1 || got.Offset != 0 ||
		len(got.Headers) != 1 || got.Headers[0].Key != "h" || string(got.Headers[0].Value) != "v" {
		t.Fatalf("consumed partition %d offset %d key %q value %q headers %v; want partition 1 offset 0 k1/hello kafka/h=v",
			got.Partition, got.Offset, got.Key, got.Value, got.Headers)
	}
	if err := cons.CommitRecords(ctx, got); err != nil {
		t.Fatalf("commit offsets: %v", err)
	}
	offs, err := adm.FetchOffsets(ctx, topic+"_g")
	if err != nil {
		t.Fatalf("fetch committed offsets: %v", err)
	}
	if o, ok := offs.Lookup(topic, 1); !ok || o.At != 1 {
		t.Fatalf("committed offset of partition 1 = %+v (found %v), want 1", o, ok)
	}
}
