package engine

import (
	"errors"
	"slices"
	"time"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

// pipelineDepth is how many writes a connector.PipelinedSink has in flight at most.
const pipelineDepth = 3

// inFlight is a write handed to a pipelined sink and not yet completed.
type inFlight struct {
	items []sinkItem
	recs  []connector.Record
	start time.Time
	wait  func() error
}

// pipelinedLoop is sinkLoop for a connector.PipelinedSink: up to pipelineDepth writes in flight,
// completed in order. While batches are queued the next one is handed over before the oldest is
// durable; when none is queued the oldest is awaited. A write that failed as a whole is written
// again through the ordinary retrying Write, and so is every write handed over after it (the sink
// makes none of them durable after a failed one).
func (w *sinkWriter) pipelinedLoop(ps connector.PipelinedSink) {
	r := w.r
	var q []inFlight
	for first := range w.s.ch {
		if r.workCtx.Err() != nil {
			continue
		}
		w.gather(first)
		f := inFlight{items: slices.Clone(w.items), recs: w.records(), start: time.Now()}
		if len(f.items) > 1 || w.isDLQ {
			f.recs = slices.Clone(f.recs) // records() reuses w.buf for the next write
		}
		f.wait = ps.WriteAsync(r.workCtx, f.recs)
		q = append(q, f)
		for len(q) == pipelineDepth || (len(q) > 0 && len(w.s.ch) == 0) {
			var ok bool
			if q, ok = w.completeOldest(q); !ok {
				return
			}
		}
	}
	for len(q) > 0 {
		var ok bool
		if q, ok = w.completeOldest(q); !ok {
			return
		}
	}
}

// completeOldest waits for the oldest write of q and completes it, and returns the rest. After a
// write failed as a whole it waits for the rest too and writes each of them again, in order. It
// reports false when the run must stop.
func (w *sinkWriter) completeOldest(q []inFlight) ([]inFlight, bool) {
	r, h := w.r, w.r.p.health
	f := q[0]
	started := h.begin(w.s.name)
	err := f.wait()
	h.end(w.s.name, started)
	var be *connector.BatchError
	if err == nil || errors.As(err, &be) || r.workCtx.Err() != nil {
		w.items = f.items
		return q[1:], w.done(f.recs, err, time.Since(f.start))
	}
	r.p.log.Warn("sink write failed; writing it and the ones after it again", "sink", w.s.name, "err", err, "writes", len(q))
	for _, g := range q[1:] {
		_ = g.wait() // not durable after a failed write: each is written again below
	}
	for _, g := range q {
		w.items = g.items
		if !w.write(g.recs, nil) {
			return nil, false
		}
	}
	return nil, true
}
