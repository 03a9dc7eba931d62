package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/engine"
	"github.com/sluicehq/sluice/internal/metrics"
	"github.com/sluicehq/sluice/runtime/pipeline"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// A record the source marks malformed (here a file line over max_line_bytes) goes to the dead
// letters with the source's reason, and the lines around it are delivered; without a dead-letter
// sink the pipeline stops saying so.
func TestMalformedSourceRecordGoesToTheDeadLetters(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.txt")
	os.WriteFile(in, []byte("a\n"+strings.Repeat("x", 200)+"\nb\n"), 0o644)
	src := pipeline.Component{Type: "file", Config: connector.Config{"path": in, "max_line_bytes": int64(100)}}

	out, dlq := &memSink{}, &memSink{}
	p := spec("long", src, sink("out", newMemSink(t, out)))
	d := newMemSink(t, dlq)
	p.DeadLetter = &d
	m := metrics.New()
	eng, err := engine.New(p, engine.Options{Catalog: testCatalog(), Checkpoints: openStore(t, filepath.Join(dir, "data")), Metrics: m, DrainTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := value(m.RecordsRejected.WithLabelValues("long", "source")); n != 1 {
		t.Fatalf("sluice_records_rejected_total{component=\"source\"} = %v, want 1", n)
	}
	if got := out.got(); len(got) != 2 || got[0] != "a" || got[1] != "b" {
		t.Fatalf("sink got %q, want a and b", got)
	}
	letters := dlq.got()
	if len(letters) != 1 {
		t.Fatalf("dead letters: %q", letters)
	}
	var e engine.Envelope
	if err := json.Unmarshal([]byte(letters[0]), &e); err != nil {
		t.Fatal(err)
	}
	if e.Stage != "source" || e.Kind != "malformed" || !strings.Contains(e.Reason, "line at offset 2 is 200 bytes, longer than max_line_bytes (100)") ||
		e.Value == nil || *e.Value != strings.Repeat("x", 100) || e.Offset != 2+201 {
		t.Fatalf("dead letter: %s", letters[0])
	}
	if strings.Contains(letters[0], connector.HeaderMalformed) {
		t.Fatalf("the marking header reached the dead letter: %s", letters[0])
	}

	p = spec("long2", src, sink("out", newMemSink(t, &memSink{})))
	err = runPipeline(t, context.Background(), p, openStore(t, filepath.Join(dir, "data2")), nil)
	if !errors.Is(err, engine.ErrNoDeadLetter) || !strings.Contains(err.Error(), "max_line_bytes") {
		t.Fatalf("without a dead-letter sink: err = %v", err)
	}
}
