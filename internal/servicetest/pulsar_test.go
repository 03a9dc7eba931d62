package servicetest

import (
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/apache/pulsar-client-go/pulsar/log"
	"github.com/sluicehq/sluice/internal/testenv"
)

func TestPulsarSmokeIntegration(t *testing.T) {
	url := testenv.Require(t, "PULSAR_URL")
	ctx := testContext(t, 60*time.Second)
	topic := "persistent://public/default/" + uniqueName(t, "smoke")

	client, err := pulsar.NewClient(pulsar.ClientOptions{URL: url, OperationTimeout: 30 * time.Second,
		ConnectionTimeout: 10 * time.Second, Logger: log.DefaultNopLogger()})
	if err != nil {
		t.Fatalf("new client: %v", err)
	}
	defer client.Close()
	cons, err := client.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "smoke",
		Type: pulsar.Exclusive, SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest, AckWithResponse: true})
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	defer cons.Close()
	prod, err := client.CreateProducer(pulsar.ProducerOptions{Topic: topic})
	if err != nil {
		t.Fatalf("create producer: %v", err)
	}
	defer prod.Close()
	id, err := prod.Send(ctx, &pulsar.ProducerMessage{Key: "k1", Payload: []byte("hello pulsar"),
		Properties: map[string]string{"h": "v"}})
	if err != nil {
		t.Fatalf("send: %v", err)
	}

	msg, err := cons.Receive(ctx)
	if err != nil {
		t.Fatalf("receive: %v", err)
	}
	if msg.Key() != "k1" || string(msg.Payload()) != "hello pulsar" || msg.Properties()["h"] != "v" {
		t.Fatalf("received key %q payload %q properties %v; want k1/hello pulsar/h=v", msg.Key(), msg.Payload(), msg.Properties())
	}
	if msg.ID().LedgerID() != id.LedgerID() || msg.ID().EntryID() != id.EntryID() {
		t.Fatalf("received message id %v, sent %v", msg.ID(), id)
	}
	if err := cons.Ack(msg); err != nil {
		t.Fatalf("ack: %v", err)
	}
}
