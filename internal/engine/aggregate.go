package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/sluicehq/sluice/internal/aggregate"
	"github.com/sluicehq/sluice/runtime/pipeline"
	"github.com/sluicehq/sluice/runtime/transform"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// Aggregate stages (internal/aggregate) keep state derived from every record before them, so:
//   - they run, with the stages after them, one batch at a time in read order, on the goroutine
//     that routes batches (the stages before them still run several batches at once);
//   - the tracker releases positions in batch order across partitions (ackset.NewOrdered), and
//     the committer writes the state changes of the batches it releases in the transaction that
//     saves their positions, so the store always holds state that matches its positions;
//   - processing-time windows and early updates need the clock to act while the source is idle:
//     tick batches, with no records, go through the stages in order;
//   - at the end of a bounded source, the open windows close (flush), except in exactly_once
//     mode, where their records would carry the position of the last record, which the sinks
//     already hold.

// StateStore is what aggregate stages need of the checkpoint store: its database, and saving
// positions with other writes in one transaction. internal/checkpoint.Store is one.
type StateStore interface {
	DB() *bolt.DB
	SaveWith(pipeline string, positions []connector.Position, also func(tx *bolt.Tx) error) error
}

// hasAggregates reports whether the pipeline has an aggregate stage.
func hasAggregates(spec *pipeline.Pipeline) bool {
	for _, t := range spec.Transforms {
		if t.Aggregate != nil {
			return true
		}
	}
	return false
}

// openAggregate builds the operator of an aggregate stage and restores its state.
func (r *run) openAggregate(t pipeline.Transform, st transform.Stage) (*aggregate.Operator, error) {
	p := r.p
	g, ok := st.(transform.Aggregator)
	if !ok {
		return nil, errors.New("its module is not an aggregate module (ABI 1.1, meta kinds: aggregate); use it as a transform with wasm:")
	}
	ss, ok := p.opts.Checkpoints.(StateStore)
	if !ok {
		return nil, errors.New("aggregate stages need the embedded checkpoint store")
	}
	cfg, err := operatorConfig(t.Aggregate)
	if err != nil {
		return nil, err
	}
	cfg.Clock = p.opts.Clock
	pl := p.spec.Name
	m := aggregate.Metrics{
		Late:          p.m.AggLate.WithLabelValues(pl, t.Name),
		WindowsClosed: p.m.AggWindowsClosed.WithLabelValues(pl, t.Name),
		Slots:         p.m.AggSlots.WithLabelValues(pl, t.Name),
		StateBytes:    p.m.AggStateBytes.WithLabelValues(pl, t.Name),
		Spilled:       p.m.AggSpilled.WithLabelValues(pl, t.Name),
		Watermark:     p.m.AggWatermark.WithLabelValues(pl, t.Name),
	}
	op, err := aggregate.New(cfg, g, aggregate.Store{DB: ss.DB()}, pl, t.Name, m)
	if err != nil {
		return nil, err
	}
	// A source whose partitions move between processes keeps the state per partition in its
	// state log, so that it follows them (internal/aggregate/statelog.go).
	if src, ok := p.source.(connector.StateLogSource); ok {
		var log connector.StateLog
		err := p.guard("source", "state log", func() (err error) {
			log, ok, err = src.StateLog(r.workCtx, pl+"."+t.Name)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("state log: %w", err)
		}
		if ok {
			if err := op.UseStateLog(log); err != nil {
				_ = log.Close()
				return nil, err
			}
			r.stateLogs = append(r.stateLogs, log)
			src.OnAssigned(op.Assigned)
			// A partition lost or given up: its state and its records still in flight are
			// dropped, and nothing more of it goes to the state log (its next owner's).
			if rs, ok := p.source.(connector.PartitionReleaser); ok {
				rs.OnReleased(op.Released)
			}
			p.log.Info("aggregate state follows the source's partitions", "transform", t.Name)
		}
	}
	if err := op.Restore(); err != nil {
		return nil, err
	}
	return op, nil
}

// operatorConfig maps a stage's manifest settings.
func operatorConfig(a *pipeline.Aggregate) (aggregate.Config, error) {
	var c aggregate.Config
	switch a.Key {
	case "":
	case "$":
		c.WholeValue = true
	default:
		k, err := aggregate.ParsePath(a.Key)
		if err != nil {
			return c, fmt.Errorf("key: %w", err)
		}
		c.Key = k
	}
	if a.Time != "" {
		t, err := aggregate.ParsePath(a.Time)
		if err != nil {
			return c, fmt.Errorf("time: %w", err)
		}
		c.Time = t
	}
	switch {
	case a.Tumbling > 0:
		c.Window = aggregate.Window{Kind: aggregate.Tumbling, Size: a.Tumbling}
	case a.Hopping > 0:
		c.Window = aggregate.Window{Kind: aggregate.Hopping, Size: a.Hopping, Every: a.Every}
		if a.Every <= 0 || a.Every > a.Hopping {
			return c, fmt.Errorf("window: hopping %s needs every, at most the window", a.Hopping)
		}
	case a.Session > 0:
		c.Window = aggregate.Window{Kind: aggregate.Session, Gap: a.Session}
	}
	c.Lateness, c.TTL, c.Early, c.MemoryBytes = a.AllowedLateness, a.TTL, a.Early, a.MemoryBytes
	c.Late, c.LatePort = aggregate.LatePolicy(a.Late)
	return c, nil
}

// resumeAggregates tells the operators the positions their restored state reflects (the local
// checkpoint), when the source's positions compare: records the source delivers again up to
// them (an exactly_once resume from a sink's earlier position, a consumer group's older
// committed offset) are not folded twice.
func (r *run) resumeAggregates(local []connector.Position) {
	p := r.p
	cp, ok := p.source.(connector.ComparablePositions)
	if !ok || !p.ask("source", cp.PositionsComparable) {
		return
	}
	for _, st := range r.stages {
		if st.agg != nil {
			st.agg.Resume(local)
		}
	}
}

// firstAggregate is the index of the first aggregate stage, or len(r.stages).
func (r *run) firstAggregate() int {
	for i, st := range r.stages {
		if st.agg != nil {
			return i
		}
	}
	return len(r.stages)
}

// timers is how often tick batches are due, 0 for none.
func (r *run) timers() time.Duration {
	var every time.Duration
	for _, st := range r.stages {
		if st.agg == nil {
			continue
		}
		if d, ok := st.agg.HasTimers(); ok && (every == 0 || d < every) {
			every = d
		}
	}
	return every
}

// withTimers forwards the batches of in, adds a tick batch every tick while they come, and
// after in is exhausted a flush batch when the source reached its end (see the top of this
// file). It returns in itself when the pipeline needs neither.
func (r *run) withTimers(in <-chan *pendingBatch) <-chan *pendingBatch {
	if r.firstAggregate() == len(r.stages) {
		return in
	}
	out := make(chan *pendingBatch, 1)
	every := r.timers()
	go func() {
		defer close(out)
		var tick <-chan time.Time
		if every > 0 {
			t := time.NewTicker(every)
			defer t.Stop()
			tick = t.C
		}
		send := func(pb *pendingBatch) bool {
			select {
			case out <- pb:
				return true
			case <-r.workCtx.Done():
				return false
			}
		}
		for {
			select {
			case pb, ok := <-in:
				if !ok {
					if r.sourceEnded.Load() && r.workCtx.Err() == nil && r.p.spec.Delivery != pipeline.ExactlyOnce {
						send(r.emptyBatch(flushBatch))
					}
					return
				}
				if !send(pb) {
					return
				}
			case <-tick:
				if !send(r.emptyBatch(tickBatch)) {
					return
				}
			}
		}
	}()
	return out
}

// Kinds of batches without records.
const (
	dataBatch = iota
	tickBatch
	flushBatch
)

// emptyBatch registers a batch without records: a tick or the flush.
func (r *run) emptyBatch(kind int) *pendingBatch {
	bt := &batch{}
	bt.id = r.tracker.Add(nil)
	r.inflight.add(bt.id, r.p.opts.Clock())
	return &pendingBatch{b: bt, kind: kind}
}

// ordered runs the stages from the first aggregate stage on, in read order. It returns false
// when the run must stop.
func (r *run) ordered(pb *pendingBatch, out *stageOutput) bool {
	for _, st := range r.stages[r.firstAggregate():] {
		if st.agg != nil {
			if !r.applyAggregate(st, pb, out) {
				return false
			}
			continue
		}
		if len(out.main) > 0 && !r.applyStage(st, out) {
			return false
		}
	}
	if len(pb.recs) > 0 {
		r.lastPos = pb.recs[len(pb.recs)-1].Position
	}
	return true
}

// applyAggregate runs one aggregate stage on out.main (and its clock, for ticks and the flush)
// and folds what it made into out.
func (r *run) applyAggregate(st stageRunner, pb *pendingBatch, out *stageOutput) bool {
	p := r.p
	pl, name := p.spec.Name, st.spec.Name
	in := out.main
	var res aggregate.Result
	if !r.callStage(name, len(in), func() (err error) {
		switch {
		case pb.kind == tickBatch:
			res, err = st.agg.Tick(r.workCtx, pb.b.id)
		case pb.kind == flushBatch:
			res, err = st.agg.Flush(r.workCtx, pb.b.id)
		default:
			res, err = st.agg.ProcessExtracted(r.workCtx, pb.b.id, in, out.extracted)
		}
		return err
	}) {
		return false
	}
	out.extracted = nil
	if pb.kind != dataBatch {
		in = nil
		res.Actions = nil
	}
	// Records of the inputs, as a plain stage's.
	// Sized by what leaves the stage: an aggregate absorbs most of its input.
	n := len(res.Out)
	for _, a := range res.Actions {
		if a == transform.Pass || a == transform.Emit {
			n++
		}
	}
	next := make([]connector.Record, 0, n)
	rejected := 0
	for o := range res.Outcomes() {
		switch o.Action {
		case transform.Pass:
			next = append(next, in[o.Input])
		case transform.Emit:
			for _, e := range o.Emitted {
				e.Record.Position = in[o.Input].Position
				r.routeTo(out, &next, e.Port, e.Record)
			}
		case transform.Reject:
			rejected++
			if !r.reject(st, in[o.Input], o.Rejected, out) {
				return false
			}
		}
	}
	if rejected > 0 {
		p.m.RecordsRejected.WithLabelValues(pl, name).Add(float64(rejected))
	}
	at := func(i int) connector.Position {
		switch {
		case i >= 0:
			return in[i].Position
		case len(in) > 0:
			return in[len(in)-1].Position
		}
		return r.lastPos
	}
	for _, o := range res.Out {
		o.Record.Position = at(o.At)
		r.routeTo(out, &next, o.Port, o.Record)
	}
	for _, l := range res.Letters {
		rec := l.Record
		if l.Input >= 0 {
			rec = in[l.Input]
		} else {
			rec.Position = at(l.At)
		}
		kind := "rejected"
		if l.Input >= 0 {
			kind = "late"
		}
		out.letters = append(out.letters, deadLetter{rec: rec, stage: name, kind: kind, code: int(l.Code), reason: l.Reason})
	}
	p.m.RecordsOut.WithLabelValues(pl, name).Add(float64(len(next)))
	out.main = next
	return true
}

// extractForAggregate finds the keys and event times of out.main for the first aggregate stage
// while the batch is on its lane, when batches have lanes of their own: the aggregate stages run
// one batch at a time, and this is work they need not do there.
func (r *run) extractForAggregate(out *stageOutput) {
	fa := r.firstAggregate()
	if fa == len(r.stages) || len(out.main) == 0 || r.lanes() <= 1 || r.workCtx.Err() != nil {
		return
	}
	out.extracted = r.stages[fa].agg.Extract(out.main)
}

// routeTo adds a record to the main records or to its port's.
func (r *run) routeTo(out *stageOutput, main *[]connector.Record, port string, rec connector.Record) {
	if port == "" || port == pipeline.DefaultPort {
		*main = append(*main, rec)
		return
	}
	if out.routed == nil {
		out.routed = map[string][]connector.Record{}
	}
	out.routed[port] = append(out.routed[port], rec)
}

// appendStateLogs appends the commits' changes to the state logs (partitioned mode), after the
// positions are saved and before the source is acked.
func (r *run) appendStateLogs(commits []*aggregate.Commit, ps []connector.Position) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, c := range commits {
		if err := c.AppendLog(ctx, ps); err != nil {
			return err
		}
	}
	return nil
}

// ackedAggregates tells the operators the source committed ps: for a source with a state log,
// only as far as it says it committed each partition.
func (r *run) ackedAggregates(ps []connector.Position) {
	if src, ok := r.p.source.(connector.StateLogSource); ok {
		var done []connector.Position
		for _, p := range ps {
			if off, ok := src.Committed(p.Partition); ok {
				done = append(done, connector.Position{Partition: p.Partition, Offset: min(off, p.Offset)})
			}
		}
		ps = done
	}
	for _, st := range r.stages {
		if st.agg != nil {
			st.agg.Acked(ps)
		}
	}
}

// aggregateCommits takes, for the committer, the state changes of the batches up to through.
func (r *run) aggregateCommits(through uint64) []*aggregate.Commit {
	var cs []*aggregate.Commit
	for _, st := range r.stages {
		if st.agg == nil {
			continue
		}
		if c := st.agg.Committable(through); c != nil {
			cs = append(cs, c)
		}
	}
	return cs
}
