package engine

import (
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/metrics"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// BenchmarkObserveLatency is the cost of sluice_end_to_end_latency_seconds per record: one
// batch of 1024 records with a source time each, observed as a sink's write completes.
func BenchmarkObserveLatency(b *testing.B) {
	m := metrics.New()
	w := &sinkWriter{latency: m.EndToEnd.With("bench", "sink")}
	w.latCounts = w.latency.Counts()
	recs := make([]connector.Record, 1024)
	now := time.Now()
	for i := range recs {
		recs[i].Time = now.Add(-time.Duration(i) * time.Millisecond)
	}
	for b.Loop() {
		w.observeLatency(recs, nil)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(recs)), "ns/record")
}
