package kafka

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/sdk/go/connector"
	"github.com/sluicehq/sluice/sdk/go/conntest"
)

// positionsTopic creates a positions topic for one test, as the sink would (compacted, one
// partition), so the tests do not fill the default one.
func (b *broker) positionsTopic(t testing.TB) string {
	compact := "compact"
	return b.topic(t, 1, map[string]*string{"cleanup.policy": &compact})
}

func TestConformanceTransactionalSink(t *testing.T) {
	b := sharedBroker(t)
	// The broker refuses a produce batch over 2000 bytes on this topic: the poison record is
	// larger, and is refused before the transaction.
	maxBytes := "2000"
	conntest.TestTransactionalSink(t, conntest.TransactionalSinkHarness{
		Setup: func(t *testing.T) (conntest.TxSinkFactory, func(t *testing.T) []connector.Record) {
			topic := b.topic(t, 3, map[string]*string{"max.message.bytes": &maxBytes})
			cfg := sinkConfig(t, map[string]any{"brokers": []any{b.addr}, "topic": topic, "positions_topic": b.positionsTopic(t)})
			return func(env connector.Env) (connector.TransactionalSink, error) { return NewSink(cfg, env) },
				func(t *testing.T) []connector.Record {
					var out []connector.Record
					for _, r := range b.readCommitted(t, topic) {
						out = append(out, connector.Record{Key: r.Key, Value: r.Value})
					}
					return out
				}
		},
		Poison: func(i int) connector.Record {
			return connector.Record{Key: []byte("poison"), Value: bytes.Repeat([]byte("x"), 3000)}
		},
		Identity: func(r connector.Record) string {
			if strings.HasPrefix(string(r.Value), "xxx") {
				return "poison"
			}
			return string(r.Value)
		},
	})
}

// TestTransactionAbortedByARefusedRecordIntegration has the brokers refuse records inside a
// transaction: with compression the size is not checked before producing, so an incompressible
// record over the topic's max.message.bytes fails its produce batch, and a rendered topic that
// does not exist fails its record. Each aborts the transaction, which is written again without
// them: a read-committed consumer sees every other record once, and the positions are stored.
func TestTransactionAbortedByARefusedRecordIntegration(t *testing.T) {
	b := sharedBroker(t)
	maxBytes := "2000"
	topic := b.topic(t, 2, map[string]*string{"max.message.bytes": &maxBytes})
	cfg := sinkConfig(t, map[string]any{"brokers": []any{b.addr}, "topic": "{{header.dest}}", "compression": "lz4",
		"positions_topic": b.positionsTopic(t), "linger": 50 * time.Millisecond})
	env := connector.Env{Pipeline: uniqueName(t, "p"), Component: "out"}
	ctx := testContext(t, 2*time.Minute)
	snk := openSink(t, ctx, cfg, env)
	if got, err := snk.StoredPositions(ctx); err != nil || len(got) != 0 {
		t.Fatalf("StoredPositions of a new sink: %v, %v; want none", got, err)
	}
	noise := make([]byte, 3000)
	_, _ = rand.Read(noise)
	missing := uniqueName(t, "missing")
	var batch []connector.Record
	for i := range 40 {
		r := connector.Record{Key: fmt.Appendf(nil, "k%d", i%4), Value: fmt.Appendf(nil, `{"n":%d}`, i),
			Headers: []connector.Header{{Key: "dest", Value: []byte(topic)}}, Position: connector.Position{Partition: "p", Offset: int64(i + 1)}}
		switch i {
		case 9, 30:
			r.Value = noise
		case 21:
			r.Headers[0].Value = []byte(missing)
		}
		batch = append(batch, r)
	}
	err := snk.WriteTx(ctx, batch, []connector.Position{{Partition: "p", Offset: 40}})
	var be *connector.BatchError
	if !errors.As(err, &be) {
		t.Fatalf("WriteTx: %v; want a *connector.BatchError", err)
	}
	var idx []int
	for _, f := range be.Failed {
		idx = append(idx, f.Index)
		t.Logf("refused %d: %v", f.Index, f.Err)
	}
	if !slices.Equal(idx, []int{9, 21, 30}) {
		t.Fatalf("refused %v, want [9 21 30]", idx)
	}
	seen := map[string]int{}
	for _, r := range b.readCommitted(t, topic) {
		seen[string(r.Value)]++
	}
	for i, r := range batch {
		want := 1
		if slices.Contains(idx, i) {
			want = 0
		}
		if n := seen[string(r.Value)]; n != want {
			t.Errorf("record %d read %d times by a read-committed consumer, want %d", i, n, want)
		}
	}
	snk2, err := NewSink(cfg, env)
	if err != nil {
		t.Fatal(err)
	}
	if err := snk2.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer snk2.Close(ctx)
	got, err := snk2.StoredPositions(ctx)
	if err != nil || len(got) != 1 || got[0].Offset != 40 {
		t.Fatalf("StoredPositions after the write: %v, %v; want p@40", got, err)
	}
}

func TestCheckExactlyOnceRefusals(t *testing.T) {
	for _, c := range []struct {
		values map[string]any
		field  string
	}{
		{map[string]any{"acks": "leader", "idempotent": false}, "acks"},
		{map[string]any{"idempotent": false}, "idempotent"},
	} {
		values := map[string]any{"brokers": []any{"localhost:9092"}, "topic": "t"}
		for k, v := range c.values {
			values[k] = v
		}
		snk, err := NewSink(sinkConfig(t, values), connector.Env{})
		if err != nil {
			t.Fatal(err)
		}
		var ce *connector.ConfigError
		if err := snk.CheckExactlyOnce(); !errors.As(err, &ce) || ce.Field != c.field {
			t.Errorf("%v: CheckExactlyOnce = %v; want a *connector.ConfigError naming %s", c.values, err, c.field)
		}
	}
	snk, err := NewSink(sinkConfig(t, map[string]any{"brokers": []any{"localhost:9092"}, "topic": "t"}), connector.Env{})
	if err != nil {
		t.Fatal(err)
	}
	if err := snk.CheckExactlyOnce(); err != nil {
		t.Errorf("CheckExactlyOnce of the defaults: %v", err)
	}
}
