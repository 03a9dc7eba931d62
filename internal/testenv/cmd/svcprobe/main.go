// Command svcprobe checks that a test service really answers by making one round trip through the
// client library the connectors use: a produce then consume for Kafka (franz-go) and Pulsar
// (pulsar-client-go). scripts/services uses it as the readiness check. It exits 0 on success and 1
// with the error on stderr otherwise; each probe gives up after 20 seconds.
//
//	svcprobe kafka 127.0.0.1:19092
//	svcprobe pulsar pulsar://127.0.0.1:16650
package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/apache/pulsar-client-go/pulsar/log"
	"github.com/twmb/franz-go/pkg/kgo"
)

const probeTopic = "sluice-probe"

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: svcprobe kafka|pulsar ADDRESS")
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var err error
	switch os.Args[1] {
	case "kafka":
		err = probeKafka(ctx, os.Args[2])
	case "pulsar":
		err = probePulsar(ctx, os.Args[2])
	default:
		err = fmt.Errorf("unknown service %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "svcprobe %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

// probeKafka produces one record and fetches it back from the offset the broker assigned.
func probeKafka(ctx context.Context, bootstrap string) error {
	payload := []byte("probe-" + strconv.FormatInt(time.Now().UnixNano(), 10))
	prod, err := kgo.NewClient(kgo.SeedBrokers(bootstrap), kgo.AllowAutoTopicCreation(),
		kgo.RecordRetries(3), kgo.ProduceRequestTimeout(5*time.Second))
	if err != nil {
		return fmt.Errorf("new client: %w", err)
	}
	defer prod.Close()
	res := prod.ProduceSync(ctx, &kgo.Record{Topic: probeTopic, Value: payload})
	rec, err := res.First()
	if err != nil {
		return fmt.Errorf("produce: %w", err)
	}
	cons, err := kgo.NewClient(kgo.SeedBrokers(bootstrap), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{
		probeTopic: {rec.Partition: kgo.NewOffset().At(rec.Offset)},
	}))
	if err != nil {
		return fmt.Errorf("new consumer: %w", err)
	}
	defer cons.Close()
	for {
		fetches := cons.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("consume: %w", err)
		}
		if errs := fetches.Errors(); len(errs) > 0 {
			return fmt.Errorf("consume: %w", errs[0].Err)
		}
		for it := fetches.RecordIter(); !it.Done(); {
			if r := it.Next(); string(r.Value) == string(payload) {
				return nil
			}
		}
	}
}

// probePulsar subscribes, sends one message and receives it back.
func probePulsar(ctx context.Context, url string) error {
	client, err := pulsar.NewClient(pulsar.ClientOptions{
		URL:               url,
		OperationTimeout:  10 * time.Second,
		ConnectionTimeout: 5 * time.Second,
		Logger:            log.DefaultNopLogger(),
	})
	if err != nil {
		return fmt.Errorf("new client: %w", err)
	}
	defer client.Close()
	// A fresh topic each time: reloading an old one after a restart waits for ledger recovery.
	topic := "persistent://public/default/" + probeTopic + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	cons, err := client.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "probe",
		SubscriptionInitialPosition: pulsar.SubscriptionPositionLatest})
	if err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	defer cons.Close()
	prod, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic})
	if err != nil {
		return fmt.Errorf("create producer: %w", err)
	}
	defer prod.Close()
	payload := []byte("probe-" + strconv.FormatInt(time.Now().UnixNano(), 10))
	if _, err := prod.Send(ctx, &pulsar.ProducerMessage{Payload: payload}); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	for {
		msg, err := cons.Receive(ctx)
		if err != nil {
			return fmt.Errorf("receive: %w", err)
		}
		if ackErr := cons.Ack(msg); ackErr != nil {
			return fmt.Errorf("ack: %w", ackErr)
		}
		if string(msg.Payload()) == string(payload) {
			return nil
		}
	}
}
