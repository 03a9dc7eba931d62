package engine

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/sluicehq/sluice/internal/aggregate"
	"github.com/sluicehq/sluice/runtime/pipeline"
	"github.com/sluicehq/sluice/runtime/transform"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// stageOutput is what the transforms made of one batch so far.
type stageOutput struct {
	main    []connector.Record            // records on the default port, input of the next stage
	routed  map[string][]connector.Record // records emitted to other ports
	letters []deadLetter                  // rejected records
	// extracted holds the keys and event times of main for the first aggregate stage, found
	// on the batch's lane (aggregate.go).
	extracted *aggregate.Extracted
}

// processor runs the transforms on each batch and routes the results, in the order the batches
// were read. With transforms, up to lanes() batches go through them at once, each on its own
// goroutine (a stage is safe for concurrent use and has an instance for each), so that one
// batch's guest calls do not wait for the previous batch's; the results are routed one at a time,
// in order.
func (r *run) processor(in <-chan *pendingBatch) {
	lanes := r.lanes()
	if lanes <= 1 {
		for pb := range in {
			if out, ok := r.transform(pb); ok && r.ordered(pb, &out) {
				r.route(pb.b, out)
			}
		}
		return
	}
	type job struct {
		pb   *pendingBatch
		out  stageOutput
		ok   bool
		done chan struct{}
	}
	// order holds the batches being transformed, oldest first: one more than its capacity can be
	// in progress (the one the router waits for), so lanes in all.
	order := make(chan *job, lanes-1)
	go func() {
		defer close(order)
		for pb := range in {
			j := &job{pb: pb, done: make(chan struct{})}
			order <- j
			go func() {
				defer close(j.done)
				j.out, j.ok = r.transform(pb)
			}()
		}
	}()
	for j := range order {
		<-j.done
		if j.ok && r.workCtx.Err() == nil && r.ordered(j.pb, &j.out) {
			r.route(j.pb.b, j.out)
		}
	}
}

// maxLanes bounds the batches transformed at once, whatever the instance pools.
const maxLanes = 8

// lanes is how many batches the processor transforms at once: the largest instance pool of the
// pipeline's transforms (at most maxLanes), 1 without transforms (routing alone gains nothing
// from more).
func (r *run) lanes() int {
	n := 1
	for _, st := range r.stages {
		n = max(n, min(st.spec.Limits.Instances, maxLanes))
	}
	return n
}

// transform runs the transforms on one batch. It reports false when the batch must not be
// routed: the run is failing (after a failure the batches still queued are drained unread).
func (r *run) transform(pb *pendingBatch) (stageOutput, bool) {
	if r.workCtx.Err() != nil {
		return stageOutput{}, false // draining the channel after a failure
	}
	out := stageOutput{main: pb.recs}
	r.malformed(&out)
	if !r.decode(&out) { // codec.go
		return stageOutput{}, false
	}
	for _, st := range r.stages[:r.firstAggregate()] {
		if len(out.main) == 0 || !r.applyStage(st, &out) {
			break
		}
	}
	r.extractForAggregate(&out)
	return out, r.workCtx.Err() == nil
}

// malformed moves the records the source marked with connector.HeaderMalformed from out.main to
// the dead letters, without that header.
func (r *run) malformed(out *stageOutput) {
	var kept []connector.Record // nil until the first marked record
	for i, rec := range out.main {
		k := slices.IndexFunc(rec.Headers, func(h connector.Header) bool { return h.Key == connector.HeaderMalformed })
		if k < 0 {
			if kept != nil {
				kept = append(kept, rec)
			}
			continue
		}
		if kept == nil {
			kept = append(make([]connector.Record, 0, len(out.main)), out.main[:i]...)
		}
		reason := string(rec.Headers[k].Value)
		rec.Headers = slices.Delete(slices.Clone(rec.Headers), k, k+1)
		if len(rec.Headers) == 0 {
			rec.Headers = nil
		}
		out.letters = append(out.letters, deadLetter{rec: rec, stage: "source", kind: "malformed", reason: reason})
	}
	if kept != nil {
		r.p.m.RecordsRejected.WithLabelValues(r.p.spec.Name, "source").Add(float64(len(out.main) - len(kept)))
		out.main = kept
	}
}

// applyStage runs one transform on out.main and folds its result into out. It returns false when
// the run must stop.
func (r *run) applyStage(st stageRunner, out *stageOutput) bool {
	p := r.p
	pl, name := p.spec.Name, st.spec.Name
	in := out.main
	var res transform.Result
	if !r.callStage(name, len(in), func() (err error) {
		res, err = st.stage.Process(r.workCtx, in)
		return err
	}) {
		return false
	}
	if len(res.Actions) != len(in) {
		r.fatal(fmt.Errorf("transform %q: %d actions for %d records", name, len(res.Actions), len(in)))
		return false
	}
	// next stays nil while every record so far passed: a batch that passes whole goes on as it
	// came, without a copy (the common case of a validator on good data).
	var next []connector.Record
	changed := false
	rejected := 0
	defer func() {
		if rejected > 0 {
			p.m.RecordsRejected.WithLabelValues(pl, name).Add(float64(rejected))
		}
	}()
	for o := range res.Outcomes() {
		if o.Action == transform.Pass {
			if changed {
				next = append(next, in[o.Input])
			}
			continue
		}
		if !changed {
			changed = true
			next = append(make([]connector.Record, 0, len(in)), in[:o.Input]...)
		}
		switch o.Action {
		case transform.Drop:
		case transform.Emit:
			for _, e := range o.Emitted {
				e.Record.Position = in[o.Input].Position
				if e.Port == "" || e.Port == pipeline.DefaultPort {
					next = append(next, e.Record)
				} else {
					if out.routed == nil {
						out.routed = map[string][]connector.Record{}
					}
					out.routed[e.Port] = append(out.routed[e.Port], e.Record)
				}
			}
		case transform.Reject:
			rejected++
			if !r.reject(st, in[o.Input], o.Rejected, out) {
				return false
			}
		}
	}
	if !changed {
		next = in
	}
	p.m.RecordsOut.WithLabelValues(pl, name).Add(float64(len(next)))
	out.main = next
	return true
}

// callStage makes one call of a stage on n records, with its readiness tracking, timing and
// metrics. It stops the run and returns false when the call fails.
func (r *run) callStage(name string, n int, call func() error) bool {
	p := r.p
	pl := p.spec.Name
	start := time.Now()
	began := p.health.begin(name)
	err := p.guard(name, "process", call)
	p.health.end(name, began)
	p.m.BatchSeconds.WithLabelValues(pl, name).Observe(time.Since(start).Seconds())
	p.m.RecordsIn.WithLabelValues(pl, name).Add(float64(n))
	switch {
	case errors.Is(err, transform.ErrBroken):
		p.m.StagesBroken.WithLabelValues(pl, name).Inc()
		r.fatal(fmt.Errorf("transform %q is broken, so the pipeline stopped (what was delivered is checkpointed): %w", name, err))
		return false
	case err != nil:
		r.fatal(fmt.Errorf("transform %q: %w", name, err))
		return false
	}
	return true
}

// reject applies the transform's on_reject policy to one rejected record. It returns false when
// the policy stops the pipeline.
func (r *run) reject(st stageRunner, rec connector.Record, rej transform.Rejected, out *stageOutput) bool {
	switch st.spec.OnReject {
	case pipeline.RejectDrop:
	case pipeline.RejectStop:
		r.fatal(fmt.Errorf("transform %q rejected the record at %s (code %d: %s) and on_reject is stop", st.spec.Name, rec.Position, rej.Code, rej.Reason))
		return false
	default:
		out.letters = append(out.letters, deadLetter{rec: rec, stage: st.spec.Name, kind: "rejected", code: int(rej.Code), reason: rej.Reason})
	}
	return true
}

// delivery is one sink's part of a batch.
type delivery struct {
	s    *sinkRunner
	item sinkItem
}

// route hands the batch's records to the sinks of their ports and its dead letters to the
// dead-letter sink, or completes it at once when nothing is left to deliver.
func (r *run) route(b *batch, out stageOutput) {
	p := r.p
	var ds []delivery
	letters := out.letters
	stopped := false
	add := func(port string, recs []connector.Record) {
		if stopped {
			return
		}
		if len(recs) == 0 {
			return
		}
		sinks := p.byPort[port]
		if len(sinks) == 0 {
			reason := fmt.Sprintf("no sink reads output port %q", port)
			for i := range recs {
				letters = append(letters, deadLetter{rec: recs[i], stage: "router", kind: "unrouted", reason: reason})
			}
			return
		}
		for _, s := range sinks {
			it := sinkItem{b: b, recs: recs}
			if s.tx != nil {
				if it.recs = forSink(s, recs, b.last); len(it.recs) == 0 {
					continue
				}
				it.pos = b.last
			}
			if s.enc != nil {
				var failed []deadLetter
				var ok bool
				if it.recs, failed, ok = r.encode(s, it.recs); !ok { // codec.go
					stopped = true
					return
				}
				letters = append(letters, failed...)
				if len(it.recs) == 0 {
					continue
				}
			}
			ds = append(ds, delivery{s: s, item: it})
		}
	}
	add(pipeline.DefaultPort, out.main)
	for port, recs := range out.routed {
		add(port, recs)
	}
	if stopped {
		return
	}
	b.failed.Add(int32(len(letters)))
	if len(letters) > 0 {
		if p.dlq == nil {
			l := letters[0]
			hint := "add spec.dead_letter, or set on_reject: drop on the transform to drop them knowingly"
			if l.kind == "malformed" {
				hint = "add spec.dead_letter, or fix the input or the source's limit"
			}
			r.fatal(fmt.Errorf("%d record(s) must go to the dead letters (first at %s, from %s: %s) but %w; %s",
				len(letters), l.rec.Position, l.stage, l.reason, ErrNoDeadLetter, hint))
			return
		}
		ds = append(ds, delivery{s: p.dlq, item: sinkItem{b: b, letters: letters}})
	}
	if len(ds) == 0 {
		r.finish(b)
		r.movePositions(b, ds)
		return
	}
	b.pending.Store(int32(len(ds)))
	for _, d := range ds {
		select {
		case d.s.ch <- d.item:
		case <-r.workCtx.Done():
			return
		}
	}
	r.movePositions(b, ds)
}

// movePositions hands, in exactly_once mode, the batch's positions to every sink that gets none
// of its records, so that what each sink stores moves on with the source even when its records
// are filtered out, dead-lettered or routed to other sinks.
func (r *run) movePositions(b *batch, ds []delivery) {
	if r.p.spec.Delivery != pipeline.ExactlyOnce {
		return
	}
	for _, s := range r.p.sinks {
		if slices.ContainsFunc(ds, func(d delivery) bool { return d.s == s }) {
			continue
		}
		select {
		case s.ch <- sinkItem{pos: b.last}:
		case <-r.workCtx.Done():
			return
		}
	}
}
