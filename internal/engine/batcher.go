package engine

import (
	"time"

	"github.com/sluicehq/sluice/internal/ackset"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// batcher groups what the source returns into batches of the policy's size, waiting at most
// Linger to fill one, acquires the memory budget for each and registers it with the tracker.
func (r *run) batcher(in <-chan []connector.Record, out chan<- *pendingBatch) {
	defer close(out)
	b := &batchBuilder{r: r, out: out, maxR: r.p.spec.Batch.MaxRecords, maxB: r.p.spec.Batch.MaxBytes}
	linger := r.p.spec.Batch.Linger
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	armed := false
	for {
		select {
		case recs, ok := <-in:
			if !ok {
				b.flush()
				return
			}
			if !b.add(recs) {
				return
			}
			if len(b.cur) > 0 && !armed {
				timer.Reset(linger)
				armed = true
			} else if len(b.cur) == 0 && armed {
				timer.Stop()
				armed = false
			}
		case <-timer.C:
			armed = false
			if !b.flush() {
				return
			}
		case <-r.workCtx.Done():
			return
		}
	}
}

// batchBuilder holds the batch being filled.
type batchBuilder struct {
	r        *run
	out      chan<- *pendingBatch
	maxR     int
	maxB     int64
	cur      []connector.Record
	curBytes int64
	started  time.Time // when the first record of cur was read
}

// add takes what one Read returned, sending every batch it fills. It returns false when the run
// is failing.
func (b *batchBuilder) add(recs []connector.Record) bool {
	now := b.r.p.opts.Clock()
	for len(recs) > 0 {
		if len(b.cur) == 0 {
			n, bytes := fit(recs, 0, 0, b.maxR, b.maxB)
			if n < len(recs) || n == b.maxR || bytes >= b.maxB {
				// A full batch straight from the source's slice: no copy.
				if !b.send(recs[:n:n], bytes, now) {
					return false
				}
				recs = recs[n:]
				continue
			}
			// Everything fits and the batch is not full: keep it and wait to fill it.
			// The capacity is capped so appending never writes into the source's memory.
			b.cur, b.curBytes, b.started, recs = recs[:n:n], bytes, now, nil
			break
		}
		n, bytes := fit(recs, len(b.cur), b.curBytes, b.maxR, b.maxB)
		b.cur, b.curBytes, recs = append(b.cur, recs[:n]...), bytes, recs[n:]
		if len(recs) > 0 || len(b.cur) >= b.maxR || b.curBytes >= b.maxB {
			if !b.flush() {
				return false
			}
		}
	}
	return true
}

// flush sends the batch being filled, if any.
func (b *batchBuilder) flush() bool {
	ok := b.send(b.cur, b.curBytes, b.started)
	b.cur, b.curBytes = nil, 0
	return ok
}

// send acquires the budget for a batch, registers it and hands it to the processor.
func (b *batchBuilder) send(recs []connector.Record, bytes int64, read time.Time) bool {
	if len(recs) == 0 {
		return true
	}
	r := b.r
	if err := r.budget.acquire(r.workCtx, int64(len(recs)), bytes); err != nil {
		return false
	}
	bt := &batch{records: int64(len(recs)), bytes: bytes, last: ackset.LastPositions(recs)}
	bt.id = r.tracker.Add(bt.last)
	r.inflight.add(bt.id, read)
	select {
	case b.out <- &pendingBatch{b: bt, recs: recs}:
		return true
	case <-r.workCtx.Done():
		return false
	}
}

// fit returns how many of recs fit in a batch that already holds haveN records of haveBytes
// bytes, and the batch's bytes with them. An empty batch always takes at least one record.
func fit(recs []connector.Record, haveN int, haveBytes int64, maxR int, maxB int64) (int, int64) {
	n := 0
	for n < len(recs) && haveN+n < maxR {
		sz := int64(recs[n].Size())
		if haveN+n > 0 && haveBytes+sz > maxB {
			break
		}
		haveBytes += sz
		n++
	}
	return n, haveBytes
}
