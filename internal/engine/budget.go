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
	// full is closed while the acquirer waits for budget (see pressure); a fresh channel
	// replaces it once the acquirer got what it waited for.
	full   chan struct{}
	isFull bool
}

func newBudget(maxR, maxB int64, gR, gB prometheus.Gauge) *budget {
	return &budget{maxR: maxR, maxB: maxB, wake: make(chan struct{}, 1), gR: gR, gB: gB, full: make(chan struct{})}
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
			if b.isFull {
				b.full, b.isFull = make(chan struct{}), false
			}
			b.mu.Unlock()
			return nil
		}
		if !b.isFull {
			close(b.full)
			b.isFull = true
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

// pressure returns a channel that is closed while the source waits for budget. A sink gathering
// a batch of its own selects on it to write early when it holds much of the budget (see
// holdsMuch), so a sink batch close to the budget's size cannot stall the pipeline until its
// linger passes.
func (b *budget) pressure() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.full
}

// holdsMuch reports whether records and bytes are at least half of the budget in either.
func (b *budget) holdsMuch(recs, bytes int64) bool {
	return 2*recs >= b.maxR || 2*bytes >= b.maxB
}
