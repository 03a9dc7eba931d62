package pulsar

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"

	"github.com/sluicehq/sluice/connectors/file"
	"github.com/sluicehq/sluice/runtime/catalog"
	"github.com/sluicehq/sluice/runtime/pipeline"
	"github.com/sluicehq/sluice/runtime/supervisor"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// seqMessage is message i of the end-to-end tests: about 100 bytes, its sequence number first
// so that the checks can read it back cheaply.
func seqMessage(i int) *pulsar.ProducerMessage {
	return &pulsar.ProducerMessage{
		Key:     "k" + strconv.Itoa(i%50),
		Payload: fmt.Appendf(nil, `{"seq":%d,"commodity":"gold","price":%d.25,"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}`, i, 1000+i%900),
	}
}

// seqOf reads the sequence number of a line written from seqMessage.
func seqOf(line []byte) (int, bool) {
	rest, ok := bytes.CutPrefix(line, []byte(`{"seq":`))
	if !ok {
		return 0, false
	}
	end := bytes.IndexByte(rest, ',')
	if end < 0 {
		return 0, false
	}
	n, err := strconv.Atoi(string(rest[:end]))
	return n, err == nil
}

// readSeqs reads the sequence numbers of a file sink's output, in file order.
func readSeqs(t testing.TB, path string) []int {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []int
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		n, ok := seqOf(sc.Bytes())
		if !ok {
			t.Fatalf("%s: line %q is not a produced record", path, sc.Bytes())
		}
		out = append(out, n)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// countLines counts the lines of a file, 0 when it does not exist.
func countLines(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	return bytes.Count(b, []byte{'\n'})
}

// delivery is what checkDelivery found.
type delivery struct {
	missing, duplicates, outOfOrder int
}

// checkDelivery checks that every produced record is in seqs, and that each partition's records
// appear in the order they were produced (a record written again after a restart counts as a
// duplicate, not as out of order).
func checkDelivery(produced []sent, seqs []int) delivery {
	var d delivery
	seen := make([]bool, len(produced))
	last := map[int32]int{}
	for _, s := range seqs {
		if s < 0 || s >= len(produced) {
			d.outOfOrder++
			continue
		}
		if seen[s] {
			d.duplicates++
			continue
		}
		seen[s] = true
		p := produced[s].partition
		if prev, ok := last[p]; ok && s < prev {
			d.outOfOrder++
		}
		last[p] = s
	}
	for _, ok := range seen {
		if !ok {
			d.missing++
		}
	}
	return d
}

// TestPulsarToFile100kIntegration: 100,000 records from a plain producer on a 4-partition topic,
// read by the Pulsar source into a file sink while they are produced: every record arrives once,
// each partition's in the order it was produced.
func TestPulsarToFile100kIntegration(t *testing.T) {
	b := needBroker(t)
	const n = 100_000
	topic := uniqueTopic(t, "tofile")
	b.createPartitioned(t, topic, 4)
	dir := t.TempDir()
	out := filepath.Join(dir, "out.jsonl")

	cat, err := catalog.New(append(Components(), file.Components()...)...)
	if err != nil {
		t.Fatal(err)
	}
	sup, err := supervisor.New(supervisor.Options{Catalog: cat, DataDir: filepath.Join(dir, "data")})
	if err != nil {
		t.Fatal(err)
	}
	defer sup.Close(context.Background())
	p := &pipeline.Pipeline{
		Name: "tofile",
		Source: pipeline.Component{Type: "pulsar", Config: sourceConfig(t, b, map[string]any{
			"topics": []any{topic}, "subscription": "sluice"})},
		Sinks: []pipeline.Sink{{Name: "out", Component: pipeline.Component{Type: "file", Config: connector.Config{"path": out, "fsync": true}}}},
	}
	if problems := sup.Add(context.Background(), p); len(problems) > 0 {
		t.Fatal(problems)
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	done := make(chan error, 1)
	go func() { done <- sup.Run(ctx, supervisor.RunOptions{}) }()

	produced := b.produce(t, topic, n, seqMessage)
	deadline := time.Now().Add(3 * time.Minute)
	for countLines(out) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d records in the file after 3 minutes", countLines(out), n)
		}
		select {
		case err := <-done:
			t.Fatalf("pipeline ended early: %v", err)
		case <-time.After(200 * time.Millisecond):
		}
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("pipeline: %v", err)
	}
	d := checkDelivery(produced, readSeqs(t, out))
	t.Logf("%d records: %d missing, %d duplicates, %d out of partition order", n, d.missing, d.duplicates, d.outOfOrder)
	if d.missing > 0 || d.outOfOrder > 0 || d.duplicates > 0 {
		t.Fatalf("want every record once, in partition order; got %+v", d)
	}
}
