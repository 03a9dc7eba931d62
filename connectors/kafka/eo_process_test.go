package kafka

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
)

// TestKillNineExactlyOnceIntegration runs Kafka → Kafka (a consumer group) and file → Kafka with
// delivery: exactly_once, kills `sluice run` with kill -9 ten times each at random points of the
// stream, restarting it each time, and lets the last run finish: a read-committed consumer of
// the output topic must then see every record exactly once, each partition in order.
func TestKillNineExactlyOnceIntegration(t *testing.T) {
	b := sharedBroker(t)
	bin := sluiceBinary(t)
	const partitions, kills = 3, 10
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewSource(seed))
	t.Logf("seed %d", seed)
	// run runs the pipeline through the kills. feed, when set, adds the input chunk by chunk: it
	// is called with k before the wait for kill k+1, and with kills after the last kill.
	run := func(t *testing.T, source string, sinkPartition string, n int, feed func(k int)) {
		out, positions := b.topic(t, partitions, nil), b.positionsTopic(t)
		dir := t.TempDir()
		m := filepath.Join(dir, "eo.yaml")
		y := "apiVersion: sluice.dev/v1\nkind: Pipeline\nmetadata: {name: eo}\nspec:\n  source: " + source + "\n  sinks:\n" +
			fmt.Sprintf("    - {name: out, type: kafka, config: {brokers: [%q], topic: %s, partition: '%s', positions_topic: %s}}\n", b.addr, out, sinkPartition, positions) +
			"  delivery: exactly_once\n  batch: {max_records: 500, linger: 5ms}\n  buffer: {max_records: 5000}\n"
		if err := os.WriteFile(m, []byte(y), 0o644); err != nil {
			t.Fatal(err)
		}
		// The end offsets count aborted records and markers too: a sign of progress only.
		written := func() int64 {
			ends, err := b.adm.ListEndOffsets(testContext(t, 10*time.Second), out)
			if err != nil {
				return 0
			}
			var total int64
			ends.Each(func(o kadm.ListedOffset) { total += max(0, o.Offset) })
			return total
		}
		p := startSluice(t, bin, dir, "eo", m)
		for k := range kills {
			// Polled often: a file source on an idle machine writes tens of thousands of records
			// between two polls of waitFor, and the run must not end before its kill.
			base, step := written(), int64(500+rng.Intn(4000))
			if feed != nil {
				// The chunk fed now is more than the step: the run cannot run out of input
				// before its kill, however fast it is.
				feed(k)
				step = min(step, int64(n/(kills+1)/2))
			}
			deadline := time.Now().Add(2 * time.Minute)
			for written() < base+step {
				if p.exited() {
					t.Fatalf("sluice exited before kill %d (n=%d, too few records for ten kills?):\n%s", k+1, n, p.logTail())
				}
				if time.Now().After(deadline) {
					t.Fatalf("no records flowing before kill %d", k+1)
				}
				time.Sleep(5 * time.Millisecond)
			}
			p.kill()
			t.Logf("kill -9 number %d at about %d offsets written", k+1, written())
			p = startSluice(t, bin, dir, "eo", m)
		}
		if feed != nil {
			feed(kills)
		}
		var recs []seqRecord
		byPart := map[int32][]seqRecord{}
		waitFor(t, 3*time.Minute, "every record read committed", func() bool {
			if p.exited() && !p.exitOK {
				t.Fatalf("sluice exited:\n%s", p.logTail())
			}
			got := b.readCommitted(t, out)
			if len(got) < n {
				time.Sleep(time.Second)
				return false
			}
			recs, byPart = recs[:0], map[int32][]seqRecord{}
			for _, r := range got {
				var s seqRecord
				if err := json.Unmarshal(r.Value, &s); err != nil {
					t.Fatalf("output record %q: %v", r.Value, err)
				}
				if int32(s.P) != r.Partition {
					t.Fatalf("record of input partition %d in output partition %d", s.P, r.Partition)
				}
				byPart[r.Partition] = append(byPart[r.Partition], s)
				recs = append(recs, s)
			}
			return true
		})
		if !p.exited() {
			p.terminate()
		}
		for part := range int32(partitions) {
			checkOrder(t, byPart[part])
		}
		dups := checkComplete(t, recs, partitions, n)
		t.Logf("kill -9 ×%d: %d records, %d read committed, %d duplicates", kills, n, len(recs), dups)
		fmt.Printf("kafka exactly_once kill -9 x%d (%s): %d records, %d read committed, %d duplicates\n", kills, t.Name(), n, len(recs), dups)
		if dups != 0 || len(recs) != n {
			t.Fatalf("%d duplicates among %d records read committed; want each of %d once", dups, len(recs), n)
		}
		if errs := grepLines(p.logText(), "level=ERROR"); errs != "" {
			t.Logf("the last run logged errors:\n%s", errs)
		}
	}
	t.Run("KafkaToKafka", func(t *testing.T) {
		in := b.topic(t, partitions, nil)
		const n = 60_000
		chunk := n / (kills + 1)
		feed := func(k int) {
			to := (k + 1) * chunk
			if k == kills {
				to = n
			}
			b.produceRange(t, in, partitions, k*chunk, to, seqValue(partitions))
		}
		// A static member (instance_id): the restarted process takes its partitions back at once.
		run(t, fmt.Sprintf("{type: kafka, config: %s}", groupSource(b.addr, in, uniqueName(t, "g"), ", instance_id: eo-0")), "{{header.kafka_partition}}", n, feed)
	})
	t.Run("FileToKafka", func(t *testing.T) {
		// More records than the group case: the file source reads far faster than a consumer
		// fetches, and every kill must come before the end.
		const n = 240_000
		var sb strings.Builder
		val := seqValue(partitions)
		for i := range n {
			sb.Write(val(i))
			sb.WriteByte('\n')
		}
		path := filepath.Join(t.TempDir(), "in.jsonl")
		if err := os.WriteFile(path, []byte(sb.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		run(t, fmt.Sprintf("{type: file, config: {path: %q, read_buffer: 16KiB}}", path), "{{p}}", n, nil)
	})
}
