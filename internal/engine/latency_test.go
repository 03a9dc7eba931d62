package engine_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/sluicehq/sluice/internal/engine"
	"github.com/sluicehq/sluice/internal/metrics"
	"github.com/sluicehq/sluice/runtime/pipeline"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// TestEndToEndLatencyPerSink checks sluice_end_to_end_latency_seconds: one observation per record
// a sink holds durably (none for the records it refused, none in the dead-letter sink), each at
// least the time the write holding it took (each sink's delay), through the plain write loop and
// through a sink batch's.
func TestEndToEndLatencyPerSink(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.txt")
	var lines []string
	for i := range 3000 {
		if i%10 == 9 {
			lines = append(lines, fmt.Sprintf("refuse-%d", i))
		} else {
			lines = append(lines, fmt.Sprintf("ok-%d", i))
		}
	}
	if err := os.WriteFile(in, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const delay = 30 * time.Millisecond
	slow, batched := &memSink{delay: delay}, &memSink{delay: delay}
	p := spec("latency", pipeline.Component{Type: "file", Config: connector.Config{"path": in}},
		sink("slow", newMemSink(t, slow)),
		pipeline.Sink{Name: "batched", Component: newMemSink(t, batched), From: pipeline.DefaultPort,
			Batch: &pipeline.BatchPolicy{MaxRecords: 1 << 20, MaxBytes: 1 << 30, Linger: 100 * time.Millisecond}})
	p.DeadLetter = &pipeline.Component{Type: "file", Config: connector.Config{"path": filepath.Join(dir, "dlq.jsonl")}}
	m := metrics.New()
	e, err := engine.New(p, engine.Options{Catalog: testCatalog(), Checkpoints: openStore(t, filepath.Join(dir, "data")), Metrics: m, DrainTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(slow.got()) != 2700 || len(batched.got()) != 2700 {
		t.Fatalf("the sinks hold %d and %d records, want 2700 each", len(slow.got()), len(batched.got()))
	}
	histogram := func(sink string) *dto.Histogram {
		mfs, err := m.Registry.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			for _, s := range mf.GetMetric() {
				if mf.GetName() == "sluice_end_to_end_latency_seconds" && labelsOf(s) == "pipeline=latency,sink="+sink {
					return s.GetHistogram()
				}
			}
		}
		t.Fatalf("no sluice_end_to_end_latency_seconds series for sink %s", sink)
		return nil
	}
	for _, sink := range []string{"slow", "batched"} {
		h := histogram(sink)
		if h.GetSampleCount() != 2700 {
			t.Errorf("sink %s: %d observations, want one per record it holds (2700)", sink, h.GetSampleCount())
		}
		for _, b := range h.GetBucket() {
			if b.GetUpperBound() < delay.Seconds() && b.GetCumulativeCount() != 0 {
				t.Errorf("sink %s: %d records observed at most %vs, but each waited at least %s", sink, b.GetCumulativeCount(), b.GetUpperBound(), delay)
			}
		}
	}
	// Every sink of the pipeline has a series (the dead-letter sink has none).
	if n := len(collectLabels(t, m)); n != 2 {
		t.Errorf("%d series of sluice_end_to_end_latency_seconds, want 2 (slow, batched): %v", n, collectLabels(t, m))
	}
}

func collectLabels(t *testing.T, m *metrics.Metrics) []string {
	t.Helper()
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, mf := range mfs {
		if mf.GetName() != "sluice_end_to_end_latency_seconds" {
			continue
		}
		for _, s := range mf.GetMetric() {
			out = append(out, labelsOf(s))
		}
	}
	return out
}

func labelsOf(s *dto.Metric) string {
	var ls []string
	for _, l := range s.GetLabel() {
		ls = append(ls, l.GetName()+"="+l.GetValue())
	}
	return strings.Join(ls, ",")
}
