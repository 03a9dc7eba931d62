package engine

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/internal/metrics"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// sinkWriter is the state of one sink's loop.
type sinkWriter struct {
	r           *run
	s           *sinkRunner
	isDLQ       bool
	maxCoalesce int
	items       []sinkItem
	buf         []connector.Record
	spare       [][]connector.Record // pipelinedLoop's buffers for the records of writes in flight
	out, failed prometheus.Counter
	hist        prometheus.Observer
	retries     prometheus.Counter
	latency     *metrics.LatencySeries // end to end, per record; nil for the dead-letter sink
	latCounts   *metrics.LatencyCounts
}

// sinkLoop writes the items of one sink, coalescing what is queued into one Write when the sink
// falls behind (or gathering them into the sink's own batches), and hands failed records to the
// dead-letter sink.
func (r *run) sinkLoop(s *sinkRunner, isDLQ bool) {
	p := r.p
	pl := p.spec.Name
	w := &sinkWriter{r: r, s: s, isDLQ: isDLQ, maxCoalesce: 4 * p.spec.Batch.MaxRecords,
		out: p.m.RecordsOut.WithLabelValues(pl, s.name), failed: p.m.RecordsFailed.WithLabelValues(pl, s.name),
		hist: p.m.BatchSeconds.WithLabelValues(pl, s.name), retries: p.m.Retries.WithLabelValues(pl, s.name)}
	if !isDLQ {
		w.latency = p.m.EndToEnd.With(pl, s.name)
		w.latCounts = w.latency.Counts()
	}
	if s.batch != nil || s.tx != nil {
		w.batchLoop() // sinkbatch.go
		return
	}
	if ps, ok := s.sink.(connector.PipelinedSink); ok {
		w.pipelinedLoop(ps) // pipelined.go
		return
	}
	for first := range s.ch {
		if r.workCtx.Err() != nil {
			continue
		}
		w.gather(first)
		if !w.write(w.records(), nil) {
			return
		}
	}
}

// gather collects first and whatever else is queued, up to maxCoalesce records.
func (w *sinkWriter) gather(first sinkItem) {
	w.items = append(w.items[:0], first)
	n := first.len()
	for n < w.maxCoalesce {
		select {
		case it, ok := <-w.s.ch:
			if !ok {
				return
			}
			w.items = append(w.items, it)
			n += it.len()
		default:
			return
		}
	}
}

// records is the batch to write for the gathered items: dead-letter envelopes, the single item's
// records as they are, or the items' records in one slice.
func (w *sinkWriter) records() []connector.Record {
	switch {
	case w.isDLQ:
		w.buf = w.buf[:0]
		for _, it := range w.items {
			for _, l := range it.letters {
				w.buf = append(w.buf, l.envelope(w.r.p.spec.Name))
			}
		}
		return w.buf
	case len(w.items) == 1:
		return w.items[0].recs
	}
	w.buf = w.buf[:0]
	for _, it := range w.items {
		w.buf = append(w.buf, it.recs...)
	}
	return w.buf
}

// write writes recs (through WriteTx with pos, in exactly_once mode) and completes the gathered
// items. It returns false when the run must stop.
func (w *sinkWriter) write(recs []connector.Record, pos []connector.Position) bool {
	start := time.Now()
	err := w.r.writeWithRetry(w.s, recs, pos, w.retries)
	return w.done(recs, err, time.Since(start))
}

// done completes the gathered items after their write of recs ended with err, which took took.
// It returns false when the run must stop.
func (w *sinkWriter) done(recs []connector.Record, err error, took time.Duration) bool {
	r, p := w.r, w.r.p
	w.hist.Observe(took.Seconds())
	var be *connector.BatchError
	switch {
	case err == nil:
		w.observeLatency(recs, nil)
	case errors.As(err, &be) && !w.isDLQ:
		w.observeLatency(recs, be.Failed)
		if !w.deadLetter(be, len(recs)) {
			return false
		}
	default:
		if r.workCtx.Err() == nil {
			r.fatal(fmt.Errorf("sink %q: %w", w.s.name, err))
		}
		return false
	}
	w.out.Add(float64(len(recs)))
	if w.isDLQ {
		p.m.DeadLetters.WithLabelValues(p.spec.Name).Add(float64(len(recs)))
	}
	for _, it := range w.items {
		r.complete(it.b)
	}
	clear(w.buf) // drop references to record bytes
	return true
}

// observeLatency observes, for each record of recs the sink now holds durably (all but the
// failed indexes), the time since its source time. A record without a time is left out; a source
// time ahead of this clock counts as 0.
func (w *sinkWriter) observeLatency(recs []connector.Record, failed []connector.RecordError) {
	if w.latency == nil || len(recs) == 0 {
		return
	}
	now := time.Now()
	var skip map[int]bool
	if len(failed) > 0 {
		skip = make(map[int]bool, len(failed))
		for _, f := range failed {
			skip[f.Index] = true
		}
	}
	for i := range recs {
		t := recs[i].Time
		if t.IsZero() || skip[i] {
			continue
		}
		w.latCounts.Observe(max(now.Sub(t).Seconds(), 0))
	}
	w.latency.Merge(w.latCounts)
}

// deadLetter maps the failed indexes of a write back to their batches; each batch with failures
// gets one more delivery (to the dead letters) before this one completes.
func (w *sinkWriter) deadLetter(be *connector.BatchError, n int) bool {
	r, p := w.r, w.r.p
	w.failed.Add(float64(len(be.Failed)))
	perItem := map[int][]deadLetter{}
	for _, f := range be.Failed {
		k, off := 0, f.Index
		for k < len(w.items) && off >= len(w.items[k].recs) {
			off -= len(w.items[k].recs)
			k++
		}
		if k == len(w.items) || off < 0 {
			r.fatal(fmt.Errorf("sink %q reported failed index %d of a %d-record batch", w.s.name, f.Index, n))
			return false
		}
		perItem[k] = append(perItem[k], deadLetter{rec: w.items[k].recs[off], stage: w.s.name, kind: "sink_failed", reason: f.Err.Error()})
	}
	if p.dlq == nil {
		r.fatal(fmt.Errorf("sink %q refused %d record(s) (first: %v) but %w; add spec.dead_letter so refused records are kept", w.s.name, len(be.Failed), be.Failed[0].Err, ErrNoDeadLetter))
		return false
	}
	for k, ls := range perItem {
		w.items[k].b.failed.Add(int32(len(ls)))
		w.items[k].b.pending.Add(1)
		select {
		case p.dlq.ch <- sinkItem{b: w.items[k].b, letters: ls}:
		case <-r.workCtx.Done():
			return false
		}
	}
	return true
}

// writeWithRetry writes recs to s (through WriteTx with pos when s is written exactly once),
// retrying a failed write with backoff until it succeeds, the error is permanent or per-record
// (*BatchError), or the run fails. While it retries, the pipeline's health knows
// the sink is failing.
func (r *run) writeWithRetry(s *sinkRunner, recs []connector.Record, pos []connector.Position, retries prometheus.Counter) error {
	h := r.p.health
	defer h.end(s.name, h.begin(s.name))
	for attempt := 1; ; attempt++ {
		var err error
		if s.tx != nil {
			err = r.p.writeTx(r.workCtx, s.tx, s.name, recs, pos)
		} else {
			err = r.p.write(r.workCtx, s.sink, s.name, recs)
		}
		if err == nil {
			return nil
		}
		var be *connector.BatchError
		if errors.As(err, &be) || errors.Is(err, connector.ErrPermanent) || r.workCtx.Err() != nil {
			return err
		}
		h.failing(s.name, err)
		retries.Inc()
		d := backoff(attempt)
		r.p.log.Warn("sink write failed; retrying", "sink", s.name, "err", err, "attempt", attempt, "backoff", d)
		if !sleep(r.workCtx, d) {
			return err
		}
	}
}
