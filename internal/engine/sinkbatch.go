package engine

import (
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/sluicehq/sluice/runtime/pipeline"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// positionsEvery is the shortest interval between two writes to a transactional sink that carry
// only positions (exactly_once, when the sink gets no records for a while): often enough that a
// restart re-reads little for it, rarely enough that an idle table or lake does not fill with
// empty transactions. A sink batch's linger, when longer, is the interval.
const positionsEvery = time.Second

// sinkBatch is what a sink with a batch of its own (or, in exactly_once mode, any sink) has
// gathered and not yet written: whole items (one per pipeline batch), their records and bytes,
// the budget their batches hold and, for exactly_once, the positions the write will store.
type sinkBatch struct {
	pol pipeline.BatchPolicy
	// eager writes as soon as nothing more is queued, as a sink without a batch does.
	eager        bool
	recs         int
	bytes        int64
	heldR, heldB int64
	linger       *time.Timer
	lingering    bool
	// calm is set when the budget ran out while this sink held too little of it to be the one to
	// write early; it is cleared by the next item, so a full budget wakes the loop once per item.
	calm bool

	// exactly_once: the offset stored per partition, the positions to store with the next write,
	// and the timer of a write carrying positions only.
	stored   map[string]int64
	pending  map[string]connector.Position
	posTimer *time.Timer
	posArmed bool
	posEvery time.Duration
}

// batchLoop is sinkLoop for a sink with a batch of its own, and for every sink of an
// exactly_once pipeline. It gathers items until the sink's max_records or max_bytes would be
// passed, or its linger has passed since the first record waiting, or the source waits for budget
// while this sink holds at least half of it; then it writes them in one write. Without a batch of
// its own (exactly_once only) it writes what is queued at once, like sinkLoop. Other sinks are not
// held up: each sink has its own loop, and the pipeline's batches reach them as they come.
func (w *sinkWriter) batchLoop() {
	r := w.r
	sb := w.newSinkBatch()
	defer sb.linger.Stop()
	defer sb.posTimer.Stop()
	w.items = w.items[:0]
	for {
		var lingerC, posC <-chan time.Time
		if sb.lingering {
			lingerC = sb.linger.C
		}
		if sb.posArmed {
			posC = sb.posTimer.C
		}
		var pressure <-chan struct{}
		if len(w.items) > 0 && !sb.calm && !sb.eager {
			pressure = r.budget.pressure()
		}
		select {
		case it, ok := <-w.s.ch:
			if !ok {
				if r.workCtx.Err() == nil {
					w.flushBatch(sb) // with the positions left, so a restart re-reads nothing
				}
				return
			}
			if r.workCtx.Err() != nil {
				continue // draining the channel after a failure
			}
			if !w.gatherItem(sb, it) {
				return
			}
			if sb.eager && len(w.items) > 0 && len(w.s.ch) == 0 && !w.flushBatch(sb) {
				return
			}
		case <-lingerC:
			sb.lingering = false
			if !w.flushBatch(sb) {
				return
			}
		case <-posC:
			sb.posArmed = false
			if len(w.items) == 0 && !w.flushBatch(sb) {
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

func (w *sinkWriter) newSinkBatch() *sinkBatch {
	sb := &sinkBatch{linger: time.NewTimer(time.Hour), posTimer: time.NewTimer(time.Hour), posEvery: positionsEvery}
	sb.linger.Stop()
	sb.posTimer.Stop()
	if w.s.batch != nil {
		sb.pol = *w.s.batch
		sb.posEvery = max(positionsEvery, sb.pol.Linger)
	} else {
		sb.eager = true
		sb.pol = pipeline.BatchPolicy{MaxRecords: w.maxCoalesce, MaxBytes: math.MaxInt64}
	}
	if w.s.tx != nil {
		sb.stored, sb.pending = w.s.stored, map[string]connector.Position{}
		if sb.stored == nil {
			sb.stored = map[string]int64{}
		}
	}
	return sb
}

// gatherItem adds one item to the sink's batch, writing the batch first when the item would take
// it past a limit, and after when the batch is full. It returns false when the run must stop.
func (w *sinkWriter) gatherItem(sb *sinkBatch, it sinkItem) bool {
	if it.b == nil { // positions only
		sb.cover(it.pos)
		return true
	}
	n, bytes := it.len(), int64(0)
	if !sb.eager {
		bytes = it.size()
	}
	if len(w.items) > 0 && (sb.recs+n > sb.pol.MaxRecords || sb.bytes+bytes > sb.pol.MaxBytes) {
		if !w.flushBatch(sb) {
			return false
		}
	}
	w.items = append(w.items, it)
	sb.cover(it.pos)
	sb.recs += n
	sb.bytes += bytes
	sb.heldR += it.b.records
	sb.heldB += it.b.bytes
	sb.calm = false
	if sb.recs >= sb.pol.MaxRecords || sb.bytes >= sb.pol.MaxBytes {
		return w.flushBatch(sb)
	}
	if !sb.lingering && !sb.eager {
		sb.linger.Reset(sb.pol.Linger)
		sb.lingering = true
	}
	return true
}

// cover notes, in exactly_once mode, that the next write covers the source up to ps (per
// partition): positions at or before what the sink stored are not stored again. The first
// position waiting arms the timer of a positions-only write.
func (sb *sinkBatch) cover(ps []connector.Position) {
	if sb.pending == nil {
		return
	}
	for _, p := range ps {
		if off, ok := sb.stored[p.Partition]; ok && p.Offset <= off {
			continue
		}
		sb.pending[p.Partition] = p
	}
	if len(sb.pending) > 0 && !sb.posArmed {
		sb.posTimer.Reset(sb.posEvery)
		sb.posArmed = true
	}
}

// flushBatch writes what the sink's batch holds, with the positions it covers in exactly_once
// mode (a write of positions only when it holds no records), and empties it. It returns false
// when the run must stop.
func (w *sinkWriter) flushBatch(sb *sinkBatch) bool {
	if sb.lingering {
		sb.linger.Stop()
		sb.lingering = false
	}
	if len(w.items) == 0 && len(sb.pending) == 0 {
		return true
	}
	var pos []connector.Position
	if len(sb.pending) > 0 {
		pos = slices.SortedFunc(maps.Values(sb.pending), func(a, b connector.Position) int { return strings.Compare(a.Partition, b.Partition) })
	}
	ok := w.write(w.records(), pos)
	clear(w.items) // drop references to record bytes
	w.items = w.items[:0]
	sb.recs, sb.bytes, sb.heldR, sb.heldB, sb.calm = 0, 0, 0, 0, false
	if ok && pos != nil {
		for _, p := range pos {
			sb.stored[p.Partition] = p.Offset
		}
		clear(sb.pending)
		sb.posTimer.Stop()
		sb.posArmed = false
	}
	return ok
}
