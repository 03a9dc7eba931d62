package kafka

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/sluicehq/sluice/runtime/pipeline"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// TestSourceOpenFaultsIntegration checks the errors Open gives for an unknown topic (permanent,
// naming it) and for brokers nobody listens on (transient, naming the address and the cause).
func TestSourceOpenFaultsIntegration(t *testing.T) {
	b := sharedBroker(t)
	missing := uniqueName(t, "missing")
	src, err := NewSource(sourceConfig(t, map[string]any{"brokers": []any{b.addr}, "topics": []any{missing}, "group": "g"}), connector.Env{})
	if err != nil {
		t.Fatal(err)
	}
	err = src.Open(testContext(t, time.Minute), nil)
	_ = src.Close(context.Background())
	if !errors.Is(err, connector.ErrPermanent) || !strings.Contains(err.Error(), missing) || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("Open with an unknown topic: %v; want a permanent error naming the topic", err)
	}
	t.Logf("unknown topic: %v", err)

	dead := fmt.Sprintf("127.0.0.1:%d", freePorts(t, 1)[0])
	src, err = NewSource(sourceConfig(t, map[string]any{"brokers": []any{dead}, "topics": []any{"prices"}, "connect_timeout": time.Second}), connector.Env{})
	if err != nil {
		t.Fatal(err)
	}
	err = src.Open(testContext(t, time.Minute), nil)
	_ = src.Close(context.Background())
	if err == nil || errors.Is(err, connector.ErrPermanent) || !strings.Contains(err.Error(), dead) || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("Open with no broker listening: %v; want a transient error naming %s and the refused connection", err, dead)
	}
	t.Logf("unreachable: %v", err)
}

// TestPrivateBrokerIntegration runs the checks that need a broker of their own: SASL, a broker
// that is down when the pipeline starts, and a broker restarted while records stream.
func TestPrivateBrokerIntegration(t *testing.T) {
	if raceEnabled {
		t.Skip("starts and restarts a Kafka broker; it runs in the plain test pass")
	}
	pb := startPrivateBroker(t)
	adm := kadm.NewClient(pb.client(t))
	newTopic := func(t *testing.T, partitions int32) string {
		name := uniqueName(t, "t")
		resp, err := adm.CreateTopic(testContext(t, time.Minute), partitions, 1, nil, name)
		if err == nil {
			err = resp.Err
		}
		if err != nil {
			t.Fatalf("create topic: %v", err)
		}
		(&broker{addr: pb.addr(), adm: adm, cl: pb.client(t)}).waitTopic(t, name, partitions)
		return name
	}

	t.Run("SASL", func(t *testing.T) {
		topic := newTopic(t, 1)
		pbk := &broker{addr: pb.addr(), adm: adm}
		pbk.produce(t, topic, 1, 10, seqValue(1))
		for _, mech := range []string{saslPlain, saslScramSHA256, saslScramSHA512} {
			for _, password := range []string{saslPassword, "wrong-password"} {
				sasl := map[string]any{"mechanism": mech, "username": saslUser, "password": password}
				src, err := NewSource(sourceConfig(t, map[string]any{"brokers": []any{pb.saslAddr()}, "topics": []any{topic}, "sasl": sasl}), connector.Env{})
				if err != nil {
					t.Fatal(err)
				}
				ctx := testContext(t, time.Minute)
				err = src.Open(ctx, nil)
				if password != saslPassword {
					_ = src.Close(ctx)
					if !errors.Is(err, connector.ErrPermanent) || !strings.Contains(err.Error(), "authentication") || !strings.Contains(err.Error(), saslUser) ||
						strings.Contains(err.Error(), password) {
						t.Fatalf("%s with a wrong password: Open = %v; want a permanent error about the authentication of %s, without the password", mech, err, saslUser)
					}
					t.Logf("%s, wrong password: %v", mech, err)
					snk, err := NewSink(sinkConfig(t, map[string]any{"brokers": []any{pb.saslAddr()}, "topic": topic, "sasl": sasl}), connector.Env{})
					if err != nil {
						t.Fatal(err)
					}
					if err := snk.Open(ctx); !errors.Is(err, connector.ErrPermanent) {
						t.Fatalf("%s sink with a wrong password: Open = %v; want a permanent error", mech, err)
					}
					_ = snk.Close(ctx)
					continue
				}
				if err != nil {
					t.Fatalf("%s: Open: %v", mech, err)
				}
				recs, err := src.Read(ctx)
				_ = src.Close(ctx)
				if err != nil || len(recs) == 0 {
					t.Fatalf("%s: Read = %d records, %v", mech, len(recs), err)
				}
			}
		}
	})

	t.Run("TLS", func(t *testing.T) {
		topic := newTopic(t, 1)
		pbk := &broker{addr: pb.addr(), adm: adm}
		pbk.produce(t, topic, 1, 10, seqValue(1))
		ctx := testContext(t, time.Minute)
		// Trusting the test's CA: reads; the sink writes.
		src, err := NewSource(sourceConfig(t, map[string]any{"brokers": []any{pb.tlsAddr()}, "topics": []any{topic}, "tls": map[string]any{"ca_file": pb.caFile}}), connector.Env{})
		if err != nil {
			t.Fatal(err)
		}
		if err := src.Open(ctx, nil); err != nil {
			t.Fatalf("Open over TLS: %v", err)
		}
		recs, err := src.Read(ctx)
		_ = src.Close(ctx)
		if err != nil || len(recs) == 0 {
			t.Fatalf("Read over TLS = %d records, %v", len(recs), err)
		}
		snk, err := NewSink(sinkConfig(t, map[string]any{"brokers": []any{pb.tlsAddr()}, "topic": topic, "tls": map[string]any{"ca_file": pb.caFile}}), connector.Env{})
		if err != nil {
			t.Fatal(err)
		}
		if err := snk.Open(ctx); err != nil {
			t.Fatalf("sink Open over TLS: %v", err)
		}
		if err := snk.Write(ctx, []connector.Record{{Value: []byte("over tls")}}); err != nil {
			t.Fatalf("sink Write over TLS: %v", err)
		}
		_ = snk.Close(ctx)
		// Trusting only the system's CAs: a permanent error that says why.
		src, err = NewSource(sourceConfig(t, map[string]any{"brokers": []any{pb.tlsAddr()}, "topics": []any{topic}, "tls": map[string]any{"enabled": true}}), connector.Env{})
		if err != nil {
			t.Fatal(err)
		}
		err = src.Open(ctx, nil)
		_ = src.Close(ctx)
		if !errors.Is(err, connector.ErrPermanent) || !strings.Contains(err.Error(), "TLS") {
			t.Fatalf("Open over TLS without the CA: %v; want a permanent TLS error", err)
		}
		t.Logf("untrusted certificate: %v", err)
	})

	// A listener that requires a client certificate: the source and the sink with tls.cert_file
	// and tls.key_file read and write; without a certificate the broker refuses the handshake and
	// Open fails (it does not hang).
	t.Run("MutualTLS", func(t *testing.T) {
		topic := newTopic(t, 1)
		pbk := &broker{addr: pb.addr(), adm: adm}
		pbk.produce(t, topic, 1, 10, seqValue(1))
		ctx := testContext(t, time.Minute)
		mtls := map[string]any{"ca_file": pb.caFile, "cert_file": pb.clientCert, "key_file": pb.clientKey}
		src, err := NewSource(sourceConfig(t, map[string]any{"brokers": []any{pb.mtlsAddr()}, "topics": []any{topic}, "tls": mtls}), connector.Env{})
		if err != nil {
			t.Fatal(err)
		}
		if err := src.Open(ctx, nil); err != nil {
			t.Fatalf("Open with a client certificate: %v", err)
		}
		recs, err := src.Read(ctx)
		_ = src.Close(ctx)
		if err != nil || len(recs) == 0 {
			t.Fatalf("Read with a client certificate = %d records, %v", len(recs), err)
		}
		snk, err := NewSink(sinkConfig(t, map[string]any{"brokers": []any{pb.mtlsAddr()}, "topic": topic, "tls": mtls}), connector.Env{})
		if err != nil {
			t.Fatal(err)
		}
		if err := snk.Open(ctx); err != nil {
			t.Fatalf("sink Open with a client certificate: %v", err)
		}
		if err := snk.Write(ctx, []connector.Record{{Value: []byte("over mutual tls")}}); err != nil {
			t.Fatalf("sink Write with a client certificate: %v", err)
		}
		_ = snk.Close(ctx)
		src, err = NewSource(sourceConfig(t, map[string]any{"brokers": []any{pb.mtlsAddr()}, "topics": []any{topic},
			"tls": map[string]any{"ca_file": pb.caFile}, "connect_timeout": 5 * time.Second}), connector.Env{})
		if err != nil {
			t.Fatal(err)
		}
		err = src.Open(ctx, nil)
		_ = src.Close(ctx)
		if !errors.Is(err, connector.ErrPermanent) || !strings.Contains(err.Error(), "tls.cert_file") {
			t.Fatalf("Open without a client certificate: %v; want a permanent error that says to set tls.cert_file", err)
		}
		t.Logf("without a client certificate: %v", err)
	})

	// One stop of the broker serves two checks: a pipeline that was running when the broker went
	// away resumes by itself, and a pipeline started while it is away says why it cannot open,
	// is not ready, retries, and runs once the broker is back.
	t.Run("BrokerDown", func(t *testing.T) {
		bin := sluiceBinary(t)
		pbk := &broker{addr: pb.addr(), adm: adm, cl: pb.client(t)}
		const partitions, n, nLate = 3, 40_000, 3_000
		in, out, late := newTopic(t, partitions), newTopic(t, partitions), newTopic(t, partitions)
		pbk.produce(t, in, partitions, n/2, seqValue(partitions))
		pbk.produce(t, late, partitions, nLate, seqValue(partitions))

		// Kafka → Kafka, running when the broker stops.
		p := &pipeline.Pipeline{
			Name: "restart",
			Source: pipeline.Component{Type: "kafka", Config: connector.Config{"brokers": []any{pb.addr()}, "topics": []any{in}, "group": uniqueName(t, "g"),
				"session_timeout": 6 * time.Second, "heartbeat_interval": time.Second}},
			Sinks: []pipeline.Sink{{Name: "out", Component: pipeline.Component{Type: "kafka", Config: connector.Config{"brokers": []any{pb.addr()}, "topic": out,
				"partition": "{{header.kafka_partition}}"}}}},
		}
		stop := startEngine(t, p, filepath.Join(t.TempDir(), "data"))
		outRecords := func() int64 {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			ends, err := adm.ListEndOffsets(ctx, out)
			if err != nil {
				return 0
			}
			var total int64
			ends.Each(func(o kadm.ListedOffset) { total += max(0, o.Offset) })
			return total
		}
		waitFor(t, 2*time.Minute, "the first records through", func() bool { return outRecords() > 0 })
		before := outRecords()
		pb.stop()
		t.Logf("broker stopped with %d records in the output topic", before)

		// `sluice run` started while the broker is down.
		dir := t.TempDir()
		lateOut := filepath.Join(dir, "late.jsonl")
		m := writeManifest(t, filepath.Join(dir, "late.yaml"), "unreachable",
			fmt.Sprintf("{brokers: [%q], topics: [%s], group: %s, connect_timeout: 5s}", pb.addr(), late, uniqueName(t, "g")),
			fmt.Sprintf("    - {name: out, type: file, config: {path: %q, fsync: false}}\n", lateOut), "")
		proc := startSluice(t, bin, dir, "sluice", m)
		waitFor(t, time.Minute, "a failed open in the log", func() bool {
			if proc.exited() {
				t.Fatalf("sluice exited:\n%s", proc.logTail())
			}
			return strings.Contains(proc.logText(), "open failed; retrying")
		})
		line := grepLines(proc.logText(), "open failed; retrying")
		if !strings.Contains(line, pb.addr()) || !strings.Contains(line, "connection refused") {
			t.Fatalf("the open failure does not say which broker and why:\n%s", line)
		}
		t.Logf("while the broker is down: %s", line)
		if code, body := proc.readyz(); code != 503 {
			t.Fatalf("/readyz = %d %q while the broker is down; want 503", code, body)
		}

		pb.start()
		// The second half is produced once the broker is back, by the same plain producer.
		pbk.produceRange(t, in, partitions, n/2, n, seqValue(partitions))
		waitFor(t, 2*time.Minute, "every record delivered by the late pipeline", func() bool {
			if proc.exited() {
				t.Fatalf("sluice exited:\n%s", proc.logTail())
			}
			return countLines(lateOut) >= nLate
		})
		if code, body := proc.readyz(); code != 200 {
			t.Fatalf("/readyz = %d %q once running; want 200", code, body)
		}
		proc.terminate()
		checkComplete(t, readSeq(t, lateOut), partitions, nLate)

		var recs []seqRecord
		waitFor(t, 3*time.Minute, "every record in the output topic", func() bool {
			if outRecords() < n {
				return false
			}
			recs = recs[:0]
			seen := map[seqRecord]bool{}
			for _, r := range pbk.readAll(t, out) {
				var s seqRecord
				if err := json.Unmarshal(r.Value, &s); err != nil {
					t.Fatal(err)
				}
				recs = append(recs, s)
				seen[s] = true
			}
			return len(seen) == n
		})
		if err := stop(); err != nil {
			t.Fatalf("the pipeline failed: %v", err)
		}
		dups := checkComplete(t, recs, partitions, n)
		t.Logf("broker restart: %d records, %d duplicates", n, dups)
	})
}

// TestBacklogIntegration checks the lag the source reports per partition: after the given
// positions without a group; after the group's committed offsets in one.
func TestBacklogIntegration(t *testing.T) {
	b := sharedBroker(t)
	topic := b.topic(t, 2, nil)
	b.produce(t, topic, 2, 100, seqValue(2)) // 50 per partition
	ctx := testContext(t, 2*time.Minute)
	backlog := func(src *Source, after []connector.Position) map[string]int64 {
		t.Helper()
		bl, err := src.Backlog(ctx, after)
		if err != nil {
			t.Fatalf("Backlog: %v", err)
		}
		out := map[string]int64{}
		for _, x := range bl {
			out[x.Partition] = x.Records
		}
		return out
	}
	p0, p1 := topic+"/0", topic+"/1"

	direct, err := NewSource(sourceConfig(t, map[string]any{"brokers": []any{b.addr}, "topics": []any{topic}}), connector.Env{})
	if err != nil {
		t.Fatal(err)
	}
	if err := direct.Open(ctx, nil); err != nil {
		t.Fatal(err)
	}
	defer direct.Close(ctx)
	if got := backlog(direct, []connector.Position{{Partition: p0, Offset: 9}}); got[p0] != 40 || got[p1] != 50 {
		t.Fatalf("backlog without a group, after %s@9: %v; want %s 40 and %s 50 (from its start)", p0, got, p0, p1)
	}

	group, err := NewSource(sourceConfig(t, map[string]any{"brokers": []any{b.addr}, "topics": []any{topic}, "group": uniqueName(t, "g")}), connector.Env{})
	if err != nil {
		t.Fatal(err)
	}
	if err := group.Open(ctx, nil); err != nil {
		t.Fatal(err)
	}
	defer group.Close(ctx)
	last := map[string]connector.Position{}
	for n := 0; n < 100; {
		recs, err := group.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			last[r.Position.Partition] = r.Position
		}
		n += len(recs)
	}
	if err := group.Ack(ctx, []connector.Position{last[p0], last[p1]}); err != nil {
		t.Fatal(err)
	}
	if got := backlog(group, nil); got[p0] != 0 || got[p1] != 0 {
		t.Fatalf("backlog of a group that committed everything: %v; want 0 and 0", got)
	}
	b.produceRange(t, topic, 2, 100, 120, seqValue(2)) // 10 more per partition
	if got := backlog(group, nil); got[p0] != 10 || got[p1] != 10 {
		t.Fatalf("backlog after 10 more records per partition: %v; want 10 and 10", got)
	}
}
