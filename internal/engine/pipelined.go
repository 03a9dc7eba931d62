package engine

import (
	"errors"
	"slices"
	"time"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

// pipelineDepth is how many writes a connector.PipelinedSink has in flight at most.
const pipelineDepth = connector.MaxWritesInFlight

// inFlight is a write handed to a pipelined sink and not yet completed. The loop's waiter
// goroutine calls the waits, in order, so the loop hands over more batches while the oldest write
// is awaited.
type inFlight struct {
	items   []sinkItem
	recs    []connector.Record
	owned   bool // recs is a copy in one of the loop's spare buffers, given back once completed
	start   time.Time
	started time.Time // for the pipeline's health: the sink is busy from the hand-over
	wait    func() error
	done    chan struct{} // closed when wait returned
	err     error         // what wait returned, once done is closed
}

// pipelinedLoop is sinkLoop for a connector.PipelinedSink: up to pipelineDepth writes in flight,
// completed in order. A batch that arrives is handed over at once, while earlier writes are in
// flight, unless pipelineDepth writes already are; a write is completed as soon as its wait
// returns. A write that failed as a whole is written again through the ordinary retrying Write,
// and so is every write handed over after it (the sink makes none of them durable after a failed
// one).
func (w *sinkWriter) pipelinedLoop(ps connector.PipelinedSink) {
	r := w.r
	waits := make(chan *inFlight, pipelineDepth)
	defer close(waits)
	go func() {
		for f := range waits {
			f.err = f.wait()
			close(f.done)
		}
	}()
	var q []*inFlight
	defer func() { // a run that stops leaves writes in flight: the sink is no longer busy with them
		for _, f := range q {
			r.p.health.end(w.s.name, f.started)
		}
	}()
	ch := w.s.ch
	for ch != nil || len(q) > 0 {
		var in <-chan sinkItem
		if len(q) < pipelineDepth {
			in = ch
		}
		var oldest chan struct{}
		if len(q) > 0 {
			oldest = q[0].done
		}
		select {
		case first, ok := <-in:
			switch {
			case !ok:
				ch = nil
			case r.workCtx.Err() == nil:
				f := w.handOver(ps, first)
				q = append(q, f)
				waits <- f // never blocks: at most pipelineDepth are in flight
			}
		case <-oldest:
			var ok bool
			if q, ok = w.completeOldest(q); !ok {
				return
			}
		}
	}
}

// handOver gathers first and what is queued behind it and hands them to the sink.
func (w *sinkWriter) handOver(ps connector.PipelinedSink, first sinkItem) *inFlight {
	r := w.r
	w.gather(first)
	f := &inFlight{items: slices.Clone(w.items), recs: w.records(), start: time.Now(), done: make(chan struct{})}
	if len(f.items) > 1 || w.isDLQ {
		// records() reuses w.buf for the next write: this write gets a copy, in a buffer a
		// completed write gave back (a fresh one only while fewer than pipelineDepth exist).
		var spare []connector.Record
		if n := len(w.spare); n > 0 {
			spare, w.spare = w.spare[n-1], w.spare[:n-1]
		}
		f.recs, f.owned = append(spare, f.recs...), true
	}
	f.started = r.p.health.begin(w.s.name)
	f.wait = ps.WriteAsync(r.workCtx, f.recs)
	return f
}

// completeOldest completes the oldest write of q, whose wait returned, and returns the rest. After
// a write failed as a whole it waits for the rest too and writes each of them again, in order. It
// reports false when the run must stop.
func (w *sinkWriter) completeOldest(q []*inFlight) ([]*inFlight, bool) {
	r, h := w.r, w.r.p.health
	f := q[0]
	<-f.done
	h.end(w.s.name, f.started)
	err := f.err
	var be *connector.BatchError
	if err == nil || errors.As(err, &be) || r.workCtx.Err() != nil {
		w.items = f.items
		ok := w.done(f.recs, err, time.Since(f.start))
		if f.owned {
			clear(f.recs) // drop references to record bytes
			w.spare = append(w.spare, f.recs[:0])
		}
		return q[1:], ok
	}
	r.p.log.Warn("sink write failed; writing it and the ones after it again", "sink", w.s.name, "err", err, "writes", len(q))
	for _, g := range q[1:] {
		<-g.done // not durable after a failed write: each is written again below
		h.end(w.s.name, g.started)
	}
	for _, g := range q {
		w.items = g.items
		if !w.write(g.recs, nil) {
			return nil, false
		}
	}
	return nil, true
}
