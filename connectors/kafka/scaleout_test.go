package kafka

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Settings of the process tests: a short session timeout so a killed member's partitions move on
// within seconds, and a buffer small enough for the duplicate bound to mean something.
const (
	procBufferRecords = 10_000
	procMaxPoll       = 1_000
	procBatch         = 1_024
)

// dupBoundPerKill is how many records a member killed with kill -9 may leave to be delivered
// twice (runtime/RATIONALE.md, Kafka): those in the buffer, those released since the last commit
// (up to another buffer's worth while one commit is in progress), and what the reader holds
// outside the budget (the poll in hand, two in the channel, and the batch being filled).
const dupBoundPerKill = 2*procBufferRecords + 3*procMaxPoll + procBatch

func groupSource(brokers, topic, group, extra string) string {
	return fmt.Sprintf("{brokers: [%q], topics: [%s], group: %s, session_timeout: 6s, heartbeat_interval: 1s, rebalance_timeout: 20s, revoke_timeout: 10s, max_poll_records: %d%s}",
		brokers, topic, group, procMaxPoll, extra)
}

const procSpecExtra = "  buffer: {max_records: 10000}\n"

// producePaced writes the seqValue records from..n-1 in chunks, pausing between them, so that
// consumers see a stream rather than one burst. It returns a channel that yields the first error, or nil once
// everything is acknowledged.
func producePaced(t *testing.T, addr, topic string, partitions, from, n, chunks int, pause time.Duration) <-chan error {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.MetadataMinAge(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	ctx := testContext(t, 5*time.Minute)
	value := seqValue(partitions)
	go func() {
		defer cl.Close()
		var mu sync.Mutex
		var first error
		per := (n - from + chunks - 1) / chunks
		for i := from; i < n; {
			end := min(n, i+per)
			for ; i < end; i++ {
				r := &kgo.Record{Topic: topic, Partition: int32(i % partitions), Value: value(i)}
				cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
					mu.Lock()
					if err != nil && first == nil {
						first = err
					}
					mu.Unlock()
				})
			}
			if err := cl.Flush(ctx); err != nil {
				done <- err
				return
			}
			time.Sleep(pause)
		}
		mu.Lock()
		defer mu.Unlock()
		done <- first
	}()
	return done
}

// TestScaleOutThreeProcessesIntegration runs three `sluice run` processes in one group on a
// 6-partition topic while 300,000 records are produced; one is killed with kill -9 halfway and
// another stopped with SIGTERM. Every record must reach the file sinks; duplicates are counted
// and bounded.
func TestScaleOutThreeProcessesIntegration(t *testing.T) {
	b := sharedBroker(t)
	bin := sluiceBinary(t)
	const partitions, n = 6, 300_000
	topic := b.topic(t, partitions, nil)
	group := uniqueName(t, "g")
	dir := t.TempDir()
	var procs []*proc
	var outs []string
	for i := range 3 {
		name := fmt.Sprintf("p%d", i+1)
		out := filepath.Join(dir, name+".jsonl")
		outs = append(outs, out)
		m := writeManifest(t, filepath.Join(dir, name+".yaml"), "scale", groupSource(b.addr, topic, group, ""),
			fmt.Sprintf("    - {name: out, type: file, config: {path: %q, fsync: false}}\n", out), procSpecExtra)
		procs = append(procs, startSluice(t, bin, dir, name, m))
	}
	for _, p := range procs {
		waitFor(t, time.Minute, p.name+" ready", func() bool {
			if p.exited() {
				t.Fatalf("%s exited:\n%s", p.name, p.logTail())
			}
			code, _ := p.readyz()
			return code == 200
		})
	}
	produced := producePaced(t, b.addr, topic, partitions, 0, n, 5, 1500*time.Millisecond) // 60k per chunk: the kill and the stop land mid-stream
	lines := func() int {
		total := 0
		for _, o := range outs {
			total += countLines(o)
		}
		return total
	}
	waitFor(t, 2*time.Minute, "half the records delivered", func() bool { return lines() >= n/2 })
	procs[0].kill()
	t.Logf("killed p1 (kill -9) at %d lines", lines())
	waitFor(t, 2*time.Minute, "two thirds of the records delivered", func() bool { return lines() >= 2*n/3 })
	procs[1].terminate()
	t.Logf("stopped p2 (SIGTERM) at %d lines", lines())
	if err := <-produced; err != nil {
		t.Fatalf("produce: %v", err)
	}
	var all []seqRecord
	waitFor(t, 3*time.Minute, "every record in the sinks", func() bool {
		if procs[2].exited() {
			t.Fatalf("p3 exited:\n%s", procs[2].logTail())
		}
		if lines() < n {
			return false
		}
		all = all[:0]
		seen := map[seqRecord]bool{}
		for _, o := range outs {
			for _, r := range readSeq(t, o) {
				all = append(all, r)
				seen[r] = true
			}
		}
		return len(seen) == n
	})
	procs[2].terminate()
	all = all[:0]
	// Order is not checked here: a partition's records move between the files as it changes
	// owner (the single-process tests check it).
	for _, o := range outs {
		all = append(all, readSeq(t, o)...)
	}
	for i, p := range procs {
		t.Logf("%s delivered %d lines; its group events:\n%s", p.name, countLines(outs[i]), grepLines(p.logText(), "partitions assigned", "partitions revoked", "partitions lost", "revoke_timeout"))
	}
	dups := checkComplete(t, all, partitions, n)
	t.Logf("scale-out: %d records, %d lines, %d duplicates (bound %d for one kill -9)", n, len(all), dups, dupBoundPerKill)
	fmt.Printf("kafka scale-out: 3 processes, 6 partitions, %d records: %d duplicates after one kill -9 and one SIGTERM (bound %d)\n", n, dups, dupBoundPerKill)
	if dups > dupBoundPerKill {
		t.Fatalf("%d duplicates, more than the bound of %d", dups, dupBoundPerKill)
	}
}

// TestKillNineFiveTimesKafkaToKafkaIntegration kills one `sluice run` (Kafka → Kafka) with
// kill -9 five times while records stream through it, restarting it each time: the output topic
// must end with every record, each partition in order apart from redeliveries.
func TestKillNineFiveTimesKafkaToKafkaIntegration(t *testing.T) {
	b := sharedBroker(t)
	bin := sluiceBinary(t)
	const partitions, n, kills = 3, 100_000, 5
	in, out := b.topic(t, partitions, nil), b.topic(t, partitions, nil)
	dir := t.TempDir()
	// A static member (instance_id): the restarted process takes its partitions back at once
	// instead of waiting for the killed one's session to expire.
	m := writeManifest(t, filepath.Join(dir, "k2k.yaml"), "k2k", groupSource(b.addr, in, uniqueName(t, "g"), ", instance_id: k2k-0"),
		fmt.Sprintf("    - {name: out, type: kafka, config: {brokers: [%q], topic: %s, partition: '{{header.kafka_partition}}'}}\n", b.addr, out), procSpecExtra)
	outRecords := func() int64 {
		ends, err := b.adm.ListEndOffsets(testContext(t, 10*time.Second), out)
		if err != nil {
			return 0
		}
		var total int64
		ends.Each(func(o kadm.ListedOffset) { total += max(0, o.Offset) })
		return total
	}
	p := startSluice(t, bin, dir, "k2k", m)
	// The input comes in one chunk per kill, paced over about a second, and the kill lands once a
	// third of it is in the output: while the chunk still streams in, and never after the input
	// ran out, however fast or slow the machine (a producer on its own clock could finish before
	// the last kill, leaving nothing to wait for).
	chunk := n / (kills + 1)
	for k := range kills {
		base := outRecords()
		produced := producePaced(t, b.addr, in, partitions, k*chunk, (k+1)*chunk, 20, 50*time.Millisecond)
		waitFor(t, 2*time.Minute, fmt.Sprintf("records flowing before kill %d", k+1), func() bool {
			if p.exited() {
				t.Fatalf("sluice exited:\n%s", p.logTail())
			}
			return outRecords() >= base+int64(chunk/3)
		})
		p.kill()
		t.Logf("kill -9 number %d with %d records in the output topic", k+1, outRecords())
		p = startSluice(t, bin, dir, "k2k", m)
		if err := <-produced; err != nil {
			t.Fatalf("produce: %v", err)
		}
	}
	if err := <-producePaced(t, b.addr, in, partitions, kills*chunk, n, 20, 50*time.Millisecond); err != nil {
		t.Fatalf("produce: %v", err)
	}
	waitFor(t, 3*time.Minute, "every record in the output topic", func() bool {
		if p.exited() {
			t.Fatalf("sluice exited:\n%s", p.logTail())
		}
		return outRecords() >= n
	})
	var recs []seqRecord
	for {
		recs = recs[:0]
		byPart := map[int32][]seqRecord{}
		for _, r := range b.readAll(t, out) {
			var s seqRecord
			if err := json.Unmarshal(r.Value, &s); err != nil {
				t.Fatalf("output record %q: %v", r.Value, err)
			}
			if int32(s.P) != r.Partition {
				t.Fatalf("record of input partition %d in output partition %d", s.P, r.Partition)
			}
			byPart[r.Partition] = append(byPart[r.Partition], s)
		}
		seen := map[seqRecord]bool{}
		for part := range int32(partitions) {
			checkOrder(t, byPart[part])
			recs = append(recs, byPart[part]...)
			for _, s := range byPart[part] {
				seen[s] = true
			}
		}
		if len(seen) == n {
			break
		}
		if p.exited() {
			t.Fatalf("sluice exited:\n%s", p.logTail())
		}
		time.Sleep(time.Second) // the output had duplicates and still lacks records: more are coming
	}
	p.terminate()
	dups := checkComplete(t, recs, partitions, n)
	t.Logf("kill -9 ×%d, Kafka → Kafka: %d records, %d in the output topic, %d duplicates (bound %d)", kills, n, len(recs), dups, kills*dupBoundPerKill)
	fmt.Printf("kafka kill -9 x%d (Kafka → Kafka): %d records, %d duplicates (bound %d)\n", kills, n, dups, kills*dupBoundPerKill)
	if dups > kills*dupBoundPerKill {
		t.Fatalf("%d duplicates, more than the bound of %d", dups, kills*dupBoundPerKill)
	}
}
