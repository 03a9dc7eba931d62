package pulsar

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	plog "github.com/apache/pulsar-client-go/pulsar/log"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/internal/testenv"
	"github.com/sluicehq/sluice/sdk/go/connector"
	"github.com/sluicehq/sluice/sdk/go/conntest"
)

// broker is the shared Pulsar standalone of `make services`, with one client for the whole
// package (creating producers and consumers is what takes time, not clients).
type broker struct {
	url, admin string
	client     pulsar.Client
}

var (
	sharedOnce   sync.Once
	sharedClient pulsar.Client
	sharedErr    error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if sharedClient != nil {
		sharedClient.Close()
	}
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// needBroker returns the shared broker, or skips (fails under CI=true) when it is not running.
func needBroker(t testing.TB) broker {
	t.Helper()
	b := broker{url: testenv.Require(t, "PULSAR_URL"), admin: testenv.Require(t, "PULSAR_ADMIN_URL")}
	sharedOnce.Do(func() {
		sharedClient, sharedErr = pulsar.NewClient(pulsar.ClientOptions{URL: b.url, OperationTimeout: 60 * time.Second,
			ConnectionTimeout: 10 * time.Second, Logger: plog.DefaultNopLogger(), MetricsRegisterer: prometheus.NewRegistry()})
	})
	if sharedErr != nil {
		t.Fatalf("pulsar client: %v", sharedErr)
	}
	b.client = sharedClient
	return b
}

// uniqueTopic returns a topic name no other run has used, in public/default.
func uniqueTopic(t testing.TB, prefix string) string {
	t.Helper()
	clean := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, strings.ToLower(t.Name()))
	if len(clean) > 60 {
		clean = clean[len(clean)-60:]
	}
	return fmt.Sprintf("persistent://public/default/%s-%s-%d", prefix, clean, time.Now().UnixNano())
}

// adminDo sends an admin request and fails the test unless it succeeds (or conflicts, for a
// create of something that exists).
func (b broker) adminDo(t testing.TB, method, path, body string) []byte {
	t.Helper()
	req, err := http.NewRequest(method, b.admin+"/admin/v2/"+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 && resp.StatusCode != http.StatusConflict {
		t.Fatalf("%s %s: %s: %s", method, path, resp.Status, out)
	}
	return out
}

// createPartitioned creates topic with n partitions.
func (b broker) createPartitioned(t testing.TB, topic string, n int) {
	t.Helper()
	b.adminDo(t, http.MethodPut, strings.Replace(topic, "://", "/", 1)+"/partitions", fmt.Sprint(n))
}

// noAutoNamespace returns a namespace where topics are not created on first use.
func (b broker) noAutoNamespace(t testing.TB) string {
	t.Helper()
	b.adminDo(t, http.MethodPut, "namespaces/public/sluice_noauto", "")
	b.adminDo(t, http.MethodPost, "namespaces/public/sluice_noauto/autoTopicCreation", `{"allowAutoTopicCreation":false}`)
	return "public/sluice_noauto"
}

// sent is what produce sent: the message and where it went.
type sent struct {
	value     string
	key       string
	partition int32
	id        pulsar.MessageID
}

// produce sends n messages built by msg to topic with a plain producer and waits until every one
// is persisted. It returns them in send order.
func (b broker) produce(t testing.TB, topic string, n int, msg func(i int) *pulsar.ProducerMessage) []sent {
	t.Helper()
	return b.produceWith(t, pulsar.ProducerOptions{Topic: topic, BatchingMaxPublishDelay: 5 * time.Millisecond}, n, msg)
}

// produceWith is produce with the given producer options.
func (b broker) produceWith(t testing.TB, opts pulsar.ProducerOptions, n int, msg func(i int) *pulsar.ProducerMessage) []sent {
	t.Helper()
	topic := opts.Topic
	opts.MaxPendingMessages, opts.SendTimeout = 10000, 2*time.Minute
	p, err := b.client.CreateProducer(opts)
	if err != nil {
		t.Fatalf("create producer for %s: %v", topic, err)
	}
	defer p.Close()
	out := make([]sent, n)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	ctx := context.Background()
	for i := range n {
		m := msg(i)
		out[i] = sent{value: string(m.Payload), key: m.Key}
		wg.Add(1)
		p.SendAsync(ctx, m, func(id pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
			defer wg.Done()
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
				return
			}
			out[i].id, out[i].partition = id, id.PartitionIdx()
		})
	}
	if err := p.Flush(); err != nil {
		t.Fatalf("flush: %v", err)
	}
	wg.Wait()
	if firstErr != nil {
		t.Fatalf("produce to %s: %v", topic, firstErr)
	}
	return out
}

// numbered is message i of the tests: value {"n":i}, key k<i mod 7>.
func numbered(i int) *pulsar.ProducerMessage {
	return &pulsar.ProducerMessage{Payload: conntest.Value(i), Key: fmt.Sprintf("k%d", i%7)}
}

// sourceConfig builds a source configuration through the spec.
func sourceConfig(t testing.TB, b broker, values map[string]any) connector.Config {
	t.Helper()
	v := map[string]any{"url": b.url, "admin_url": b.admin, "operation_timeout": 60 * time.Second}
	for k, x := range values {
		v[k] = x
	}
	return conntest.Config(t, sourceSpec, v)
}

// sinkConfig builds a sink configuration through the spec.
func sinkConfig(t testing.TB, b broker, values map[string]any) connector.Config {
	t.Helper()
	v := map[string]any{"url": b.url, "operation_timeout": 60 * time.Second}
	for k, x := range values {
		v[k] = x
	}
	return conntest.Config(t, sinkSpec, v)
}

// openSink builds and opens a sink, closed at the end of the test.
func openSink(t testing.TB, cfg connector.Config) *Sink {
	t.Helper()
	s, err := NewSink(cfg, connector.Env{})
	if err != nil {
		t.Fatalf("NewSink: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := s.Open(ctx); err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

// readTopic reads every message of a topic (all its partitions) with a reader from the earliest
// message, as records: value, key, properties as headers, event time as time.
func (b broker) readTopic(t testing.TB, topic string) []connector.Record {
	t.Helper()
	parts, err := b.client.TopicPartitions(topic)
	if err != nil {
		t.Fatalf("partitions of %s: %v", topic, err)
	}
	var out []connector.Record
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, p := range parts {
		r, err := b.client.CreateReader(pulsar.ReaderOptions{Topic: p, StartMessageID: pulsar.EarliestMessageID()})
		if err != nil {
			t.Fatalf("reader of %s: %v", p, err)
		}
		for r.HasNext() {
			m, err := r.Next(ctx)
			if err != nil {
				r.Close()
				t.Fatalf("read %s: %v", p, err)
			}
			rec := connector.Record{Value: m.Payload(), Time: m.EventTime(), Position: connector.Position{Partition: p}}
			if m.Key() != "" {
				rec.Key = []byte(m.Key())
			}
			for k, v := range m.Properties() {
				rec.Headers = append(rec.Headers, connector.Header{Key: k, Value: []byte(v)})
			}
			out = append(out, rec)
		}
		r.Close()
	}
	return out
}

// openSource builds and opens a source, closed at the end of the test.
func openSource(t testing.TB, cfg connector.Config, resume []connector.Position) *Source {
	t.Helper()
	s, err := NewSource(cfg, connector.Env{})
	if err != nil {
		t.Fatalf("NewSource: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := s.Open(ctx, resume); err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

// readN reads until n records came, failing after a generous deadline.
func readN(t testing.TB, s connector.Source, n int) []connector.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return conntest.ReadN(t, ctx, s, n)
}

// readAll reads until every value of want came, failing after a generous deadline.
func readAll(t testing.TB, s connector.Source, want map[string]bool) []connector.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out []connector.Record
	seen := map[string]bool{}
	for len(seen) < len(want) {
		recs, err := s.Read(ctx)
		if err != nil {
			t.Fatalf("Read after %d of %d records: %v", len(seen), len(want), err)
		}
		for _, r := range recs {
			if want[string(r.Value)] {
				seen[string(r.Value)] = true
			}
		}
		out = append(out, recs...)
	}
	return out
}

// lastPerPartition is what the engine hands Ack: the last position of each partition, in order.
func lastPerPartition(recs []connector.Record) []connector.Position {
	idx := map[string]int{}
	var out []connector.Position
	for _, r := range recs {
		if i, ok := idx[r.Position.Partition]; ok {
			out[i] = r.Position
			continue
		}
		idx[r.Position.Partition] = len(out)
		out = append(out, r.Position)
	}
	return out
}

func header(r connector.Record, key string) (string, bool) {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value), true
		}
	}
	return "", false
}

func values(recs []connector.Record) map[string]int {
	m := map[string]int{}
	for _, r := range recs {
		m[string(r.Value)]++
	}
	return m
}

func equalBytes(a, b []byte) bool { return bytes.Equal(a, b) }
