// Package latency is the benchmarks' sink that drops what it gets while noting, per batch, how long
// its first record took from its Time (when the source read or created it) to the write.
package latency

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

// Sink drops records, counting them and their value bytes and noting each batch's latency.
type Sink struct {
	mu      sync.Mutex
	lat     []time.Duration
	records int64
	bytes   int64
}

func (s *Sink) Open(context.Context) error  { return nil }
func (s *Sink) Close(context.Context) error { return nil }

func (s *Sink) Write(_ context.Context, recs []connector.Record) error {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lat = append(s.lat, now.Sub(recs[0].Time))
	s.records += int64(len(recs))
	for i := range recs {
		s.bytes += int64(len(recs[i].Value))
	}
	return nil
}

// Counts returns the records and value bytes written so far.
func (s *Sink) Counts() (records, bytes int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.records, s.bytes
}

// Percentiles returns the p50 and p99 of the batch latencies noted so far.
func (s *Sink) Percentiles() (p50, p99 time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Percentiles(s.lat)
}

// Percentiles sorts lat and returns its p50 and p99 (zero when it is empty).
func Percentiles(lat []time.Duration) (p50, p99 time.Duration) {
	if len(lat) == 0 {
		return 0, 0
	}
	slices.Sort(lat)
	return lat[len(lat)/2], lat[len(lat)*99/100]
}
