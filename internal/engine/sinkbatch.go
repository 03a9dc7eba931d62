package engine

import (
	"time"

	"github.com/sluicehq/sluice/runtime/pipeline"
)

// sinkBatch is what a sink with a batch of its own has gathered and not yet written: whole items
// (one per pipeline batch), their records and bytes, and the budget their batches hold.
type sinkBatch struct {
	pol          pipeline.BatchPolicy
	recs         int
	bytes        int64
	heldR, heldB int64
	linger       *time.Timer
	lingering    bool
	// calm is set when the budget ran out while this sink held too little of it to be the one to
	// write early; it is cleared by the next item, so a full budget wakes the loop once per item.
	calm bool
}

// batchLoop is sinkLoop for a sink with a batch of its own: it gathers items until the sink's
// max_records or max_bytes would be passed, or its linger has passed since the first record
// waiting, or the source waits for budget while this sink holds at least half of it; then it
// writes them in one Write. Other sinks are not held up: each sink has its own loop, and the
// pipeline's batches reach them as they come.
func (w *sinkWriter) batchLoop(pol pipeline.BatchPolicy) {
	r := w.r
	sb := &sinkBatch{pol: pol, linger: time.NewTimer(time.Hour)}
	sb.linger.Stop()
	defer sb.linger.Stop()
	w.items = w.items[:0]
	for {
		var lingerC <-chan time.Time
		if sb.lingering {
			lingerC = sb.linger.C
		}
		var pressure <-chan struct{}
		if len(w.items) > 0 && !sb.calm {
			pressure = r.budget.pressure()
		}
		select {
		case it, ok := <-w.s.ch:
			if !ok {
				if r.workCtx.Err() == nil {
					w.flushBatch(sb)
				}
				return
			}
			if r.workCtx.Err() != nil {
				continue // draining the channel after a failure
			}
			if !w.gatherItem(sb, it) {
				return
			}
		case <-lingerC:
			sb.lingering = false
			if !w.flushBatch(sb) {
				return
			}
		case <-pressure:
			if !r.budget.holdsMuch(sb.heldR, sb.heldB) {
				sb.calm = true
				continue
			}
			if !w.flushBatch(sb) {
				return
			}
		}
	}
}

// gatherItem adds one item to the sink's batch, writing the batch first when the item would take
// it past a limit, and after when the batch is full. It returns false when the run must stop.
func (w *sinkWriter) gatherItem(sb *sinkBatch, it sinkItem) bool {
	n, bytes := it.len(), it.size()
	if len(w.items) > 0 && (sb.recs+n > sb.pol.MaxRecords || sb.bytes+bytes > sb.pol.MaxBytes) {
		if !w.flushBatch(sb) {
			return false
		}
	}
	w.items = append(w.items, it)
	sb.recs += n
	sb.bytes += bytes
	sb.heldR += it.b.records
	sb.heldB += it.b.bytes
	sb.calm = false
	if sb.recs >= sb.pol.MaxRecords || sb.bytes >= sb.pol.MaxBytes {
		return w.flushBatch(sb)
	}
	if !sb.lingering {
		sb.linger.Reset(sb.pol.Linger)
		sb.lingering = true
	}
	return true
}

// flushBatch writes what the sink's batch holds, if anything, and empties it. It returns false
// when the run must stop.
func (w *sinkWriter) flushBatch(sb *sinkBatch) bool {
	if sb.lingering {
		sb.linger.Stop()
		sb.lingering = false
	}
	if len(w.items) == 0 {
		return true
	}
	ok := w.write(w.records())
	clear(w.items) // drop references to record bytes
	w.items = w.items[:0]
	sb.recs, sb.bytes, sb.heldR, sb.heldB, sb.calm = 0, 0, 0, 0, false
	return ok
}
