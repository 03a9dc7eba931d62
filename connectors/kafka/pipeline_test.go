package kafka

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluicehq/sluice/connectors/file"
	"github.com/sluicehq/sluice/internal/checkpoint"
	"github.com/sluicehq/sluice/internal/engine"
	"github.com/sluicehq/sluice/runtime/catalog"
	"github.com/sluicehq/sluice/runtime/pipeline"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// testCatalog holds the Kafka and file connectors.
func testCatalog(t testing.TB) *catalog.Catalog {
	cat, err := catalog.New(append(Components(), file.Components()...)...)
	if err != nil {
		t.Fatal(err)
	}
	return cat
}

// startEngine runs the pipeline in the background until stop is called, which stops it
// gracefully and returns Run's error.
func startEngine(t *testing.T, p *pipeline.Pipeline, dataDir string) (stop func() error) {
	t.Helper()
	store, err := checkpoint.Open(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	e, err := engine.New(p, engine.Options{Catalog: testCatalog(t), Checkpoints: store, DrainTimeout: 30 * time.Second})
	if err != nil {
		store.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	stopped := false
	var result error
	stop = func() error {
		if !stopped {
			stopped = true
			cancel()
			result = <-done
			store.Close()
		}
		return result
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// seqRecord is a record written by produce with seqValue.
type seqRecord struct {
	P int `json:"p"`
	S int `json:"s"`
}

// readSeq reads the complete lines of a file of seqValue records (a torn last line, from a
// process killed while writing, is left out).
func readSeq(t testing.TB, path string) []seqRecord {
	t.Helper()
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	if i := bytes.LastIndexByte(data, '\n'); i >= 0 {
		data = data[:i+1]
	} else {
		data = nil
	}
	var out []seqRecord
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var r seqRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("%s: line %q: %v", path, sc.Text(), err)
		}
		out = append(out, r)
	}
	return out
}

// countLines counts the complete lines of a file.
func countLines(path string) int {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	return bytes.Count(data, []byte{'\n'})
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %s waiting for %s", d, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// checkComplete checks that recs hold every record of n spread over partitions and returns the
// number of duplicates.
func checkComplete(t testing.TB, recs []seqRecord, partitions, n int) int {
	t.Helper()
	seen := make(map[seqRecord]bool, n)
	dups := 0
	for _, r := range recs {
		if seen[r] {
			dups++
		}
		seen[r] = true
	}
	missing := 0
	for i := range n {
		if !seen[seqRecord{P: i % partitions, S: i / partitions}] {
			if missing < 5 {
				t.Errorf("record %d (partition %d, seq %d) is missing", i, i%partitions, i/partitions)
			}
			missing++
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d records are missing (%d lines, %d duplicates)", missing, n, len(recs), dups)
	}
	return dups
}

// checkOrder checks that within each partition the records appear in order: each record is
// the next of its partition, or a repeat of an earlier one (a redelivery restarts from an
// earlier record, and then goes on in order).
func checkOrder(t testing.TB, recs []seqRecord) {
	t.Helper()
	last := map[int]int{}
	high := map[int]int{}
	for i, r := range recs {
		l, ok := last[r.P]
		if !ok {
			l = -1
		}
		h, ok := high[r.P]
		if !ok {
			h = -1
		}
		if r.S > h+1 || (r.S > h && r.S != l+1) {
			t.Fatalf("line %d: partition %d seq %d comes after seq %d (highest so far %d): out of order", i, r.P, r.S, l, h)
		}
		last[r.P] = r.S
		high[r.P] = max(h, r.S)
	}
}

func TestKafkaToFile100kIntegration(t *testing.T) {
	b := sharedBroker(t)
	const partitions, n = 3, 100_000
	topic := b.topic(t, partitions, nil)
	b.produce(t, topic, partitions, n, seqValue(partitions))

	dir := t.TempDir()
	out := filepath.Join(dir, "out.jsonl")
	p := &pipeline.Pipeline{
		Name:   "kafka-file",
		Source: pipeline.Component{Type: "kafka", Config: connector.Config{"brokers": []any{b.addr}, "topics": []any{topic}, "group": uniqueName(t, "g")}},
		Sinks:  []pipeline.Sink{{Name: "out", Component: pipeline.Component{Type: "file", Config: connector.Config{"path": out, "fsync": false}}}},
	}
	stop := startEngine(t, p, filepath.Join(dir, "data"))
	waitFor(t, 3*time.Minute, "100,000 lines in the file sink", func() bool { return countLines(out) >= n })
	if err := stop(); err != nil {
		t.Fatalf("run: %v", err)
	}
	recs := readSeq(t, out)
	if dups := checkComplete(t, recs, partitions, n); dups != 0 {
		t.Errorf("%d duplicates in a run without failures", dups)
	}
	checkOrder(t, recs)

	// Everything delivered was committed to the group: a consumer of the group has no lag.
	offs, err := b.adm.FetchOffsets(testContext(t, 30*time.Second), p.Source.Config["group"].(string))
	if err != nil {
		t.Fatal(err)
	}
	for part := range int32(partitions) {
		want := int64(n / partitions)
		if int(part) < n%partitions {
			want++
		}
		if o, ok := offs.Lookup(topic, part); !ok || o.At != want {
			t.Errorf("committed offset of partition %d = %d (found %v), want %d", part, o.At, ok, want)
		}
	}
}
