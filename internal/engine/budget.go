package engine

import (
	"context"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// budget bounds the records and bytes in flight. One goroutine acquires; any releases.
type budget struct {
	mu          sync.Mutex
	recs, bytes int64
	maxR, maxB  int64
	wake        chan struct{}
	gR, gB      prometheus.Gauge
}

func newBudget(maxR, maxB int64, gR, gB prometheus.Gauge) *budget {
	return &budget{maxR: maxR, maxB: maxB, wake: make(chan struct{}, 1), gR: gR, gB: gB}
}

// acquire blocks until the batch fits, or ctx is done. A batch larger than the whole budget is
// let through when nothing else is in flight, so an oversized batch cannot deadlock the pipeline.
func (b *budget) acquire(ctx context.Context, recs, bytes int64) error {
	for {
		b.mu.Lock()
		if b.recs == 0 || (b.recs+recs <= b.maxR && b.bytes+bytes <= b.maxB) {
			b.recs += recs
			b.bytes += bytes
			b.gR.Set(float64(b.recs))
			b.gB.Set(float64(b.bytes))
			b.mu.Unlock()
			return nil
		}
		b.mu.Unlock()
		select {
		case <-b.wake:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (b *budget) release(recs, bytes int64) {
	b.mu.Lock()
	b.recs -= recs
	b.bytes -= bytes
	b.gR.Set(float64(b.recs))
	b.gB.Set(float64(b.bytes))
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default:
	}
}
