package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/internal/ackset"
	"github.com/sluicehq/sluice/internal/aggregate"
	"github.com/sluicehq/sluice/runtime/pipeline"
	"github.com/sluicehq/sluice/runtime/transform"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// batch is one unit of work in flight.
type batch struct {
	id      uint64
	records int64
	bytes   int64
	last    []connector.Position // the last position of each partition the batch holds
	failed  atomic.Int32         // records of the batch sent to the dead letters
	pending atomic.Int32
}

type sinkItem struct {
	b    *batch // nil for an item that only moves a sink's positions (exactly_once)
	recs []connector.Record
	// pos is, in exactly_once mode, the batch's last positions: what a write of this item and the
	// items before it covers.
	pos []connector.Position
	// dead-letter items carry the reasons, one per record.
	letters []deadLetter
}

func (it sinkItem) len() int { return len(it.recs) + len(it.letters) }

// size is the payload size of the item's records (connector.Record.Size).
func (it sinkItem) size() int64 {
	var n int64
	for i := range it.recs {
		n += int64(it.recs[i].Size())
	}
	return n
}

type pendingBatch struct {
	b    *batch
	recs []connector.Record
	kind int // dataBatch, or tickBatch and flushBatch without records (aggregate.go)
}

// run is the state of one Run call, shared by the stages.
type run struct {
	p         *Pipeline
	tracker   *ackset.Set
	budget    *budget
	failures  *failureWindow
	inflight  *inflight
	committed *committedPositions
	stages    []stageRunner

	workCtx   context.Context
	fail      context.CancelCauseFunc
	commitSig chan struct{}

	sourceEnded atomic.Bool        // the source returned io.EOF
	lastPos     connector.Position // the position of the last record through the ordered stages
	stateLogs   []connector.StateLog
}

type stageRunner struct {
	spec  pipeline.Transform
	stage transform.Stage
	agg   *aggregate.Operator // an aggregate stage's operator (aggregate.go)
}

func newRun(p *Pipeline) *run {
	pl := p.spec.Name
	tracker := ackset.New()
	if hasAggregates(p.spec) {
		tracker = ackset.NewOrdered()
	}
	return &run{p: p, tracker: tracker, commitSig: make(chan struct{}, 1),
		failures:  newFailureWindow(p.spec.FailureLimit.Ratio, p.spec.FailureLimit.Window),
		budget:    newBudget(int64(p.spec.Buffer.MaxRecords), p.spec.Buffer.MaxBytes, p.m.InFlightRecords.WithLabelValues(pl), p.m.InFlightBytes.WithLabelValues(pl)),
		inflight:  newInflight(),
		committed: newCommittedPositions(),
	}
}

// fatal stops the run with err; the first cause wins.
func (r *run) fatal(err error) { r.fail(err) }

func (r *run) run(ctx context.Context) (err error) {
	workCtx, fail := context.WithCancelCause(context.WithoutCancel(ctx))
	defer fail(nil)
	r.workCtx, r.fail = workCtx, fail

	defer func() { err = r.closeAll(err) }()
	if err := r.open(ctx); err != nil {
		if ctx.Err() != nil {
			return nil // stopped while opening: nothing was read, so nothing is lost
		}
		return err
	}
	r.p.health.running()
	r.p.m.PipelineUp.WithLabelValues(r.p.spec.Name).Set(1)
	if f := r.p.opts.OnRunning; f != nil {
		f()
	}

	readCtx, stopReading := context.WithCancel(workCtx)
	defer stopReading()
	go r.watchStop(ctx, stopReading)
	r.flow(readCtx)
	return r.result(ctx)
}

// open builds the transform stages and opens the sinks, then the source at its checkpoint (in
// exactly_once mode, at the earliest position the sinks stored).
func (r *run) open(ctx context.Context) error {
	p := r.p
	pl := p.spec.Name
	for _, t := range p.spec.Transforms {
		st, err := p.opts.NewStage(r.workCtx, pl, t, p.log.With("component", t.Name))
		if err != nil {
			return fmt.Errorf("pipeline %q: transform %q: %w", pl, t.Name, err)
		}
		sr := stageRunner{spec: t, stage: st}
		if t.Aggregate != nil {
			if sr.agg, err = r.openAggregate(t, st); err != nil {
				_ = st.Close(ctx)
				return fmt.Errorf("pipeline %q: transform %q: %w", pl, t.Name, err)
			}
		}
		r.stages = append(r.stages, sr)
	}
	for _, s := range p.allSinks() {
		if err := openWithRetry(ctx, p.log, func(c context.Context) error {
			return p.guard(s.name, "open", func() error { return s.sink.Open(c) })
		}); err != nil {
			return fmt.Errorf("pipeline %q: open sink %q: %w", pl, s.name, err)
		}
	}
	if err := r.openCodecs(); err != nil { // codec.go
		return fmt.Errorf("pipeline %q: %w", pl, err)
	}
	resume, err := p.opts.Checkpoints.Load(pl)
	if err != nil {
		return fmt.Errorf("pipeline %q: %w", pl, err)
	}
	r.resumeAggregates(resume)
	if p.spec.Delivery == pipeline.ExactlyOnce {
		if resume, err = r.resumeExactlyOnce(ctx, resume); err != nil { // exactlyonce.go
			return fmt.Errorf("pipeline %q: %w", pl, err)
		}
	}
	if ms, ok := p.source.(connector.MetadataHeaderSource); ok && r.headersUnread() {
		ms.OmitMetadataHeaders()
		p.log.Debug("nothing in the pipeline reads headers: the source leaves out its metadata headers")
	}
	if err := openWithRetry(ctx, p.log, func(c context.Context) error {
		return p.guard("source", "open", func() error { return p.source.Open(c, resume) })
	}); err != nil {
		return fmt.Errorf("pipeline %q: open source %s: %w", pl, p.spec.Source.Type, err)
	}
	if len(resume) > 0 {
		p.log.Info("resuming", "positions", len(resume))
	}
	r.committed.set(resume)
	return nil
}

// closeAll closes every component whatever happened, folding close errors into err.
func (r *run) closeAll(err error) error {
	p := r.p
	cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var errs []error
	if cerr := p.guard("source", "close", func() error { return p.source.Close(cctx) }); cerr != nil {
		errs = append(errs, fmt.Errorf("close source: %w", cerr))
	}
	for _, s := range p.allSinks() {
		if cerr := p.guard(s.name, "close", func() error { return s.sink.Close(cctx) }); cerr != nil {
			errs = append(errs, fmt.Errorf("close sink %q: %w", s.name, cerr))
		}
	}
	for _, st := range r.stages {
		if cerr := p.guard(st.spec.Name, "close", func() error { return st.stage.Close(cctx) }); cerr != nil {
			errs = append(errs, fmt.Errorf("close transform %q: %w", st.spec.Name, cerr))
		}
	}
	for _, l := range r.stateLogs {
		_ = l.Close()
	}
	p.m.PipelineUp.WithLabelValues(p.spec.Name).Set(0)
	p.m.PipelineReady.WithLabelValues(p.spec.Name).Set(0)
	if len(errs) == 0 {
		return err
	}
	cerr := fmt.Errorf("pipeline %q: %w", p.spec.Name, errors.Join(errs...))
	if err == nil {
		return cerr
	}
	p.log.Warn("closing after failure", "err", cerr)
	return err
}

// watchStop turns a stop request (ctx done) into: stop reading at once, give the drain
// DrainTimeout.
func (r *run) watchStop(ctx context.Context, stopReading context.CancelFunc) {
	p := r.p
	select {
	case <-ctx.Done():
		p.log.Info("stop requested: draining", "timeout", p.opts.DrainTimeout)
		p.health.draining()
		stopReading()
		t := time.NewTimer(p.opts.DrainTimeout)
		defer t.Stop()
		select {
		case <-t.C:
			r.fatal(fmt.Errorf("drain did not finish within %s; undelivered records will be read again on restart", p.opts.DrainTimeout))
		case <-r.workCtx.Done():
		}
	case <-r.workCtx.Done():
	}
}

// flow runs the stages until the source is done (or reading stops) and everything read is
// delivered or the run failed. Each stage closes its output when its input is exhausted.
func (r *run) flow(readCtx context.Context) {
	p := r.p
	raw := make(chan []connector.Record, 2)
	batches := make(chan *pendingBatch, 2)
	var wg sync.WaitGroup
	commitDone := make(chan struct{})
	go func() { defer close(commitDone); r.committer() }()
	monitorDone := make(chan struct{})
	stopMonitor := make(chan struct{})
	go func() { defer close(monitorDone); r.monitor(stopMonitor) }()

	wg.Add(2)
	go func() { defer wg.Done(); r.reader(readCtx, raw) }()
	go func() { defer wg.Done(); r.batcher(raw, batches) }()

	var sinkWG sync.WaitGroup
	for _, s := range p.sinks {
		sinkWG.Add(1)
		go func() { defer sinkWG.Done(); r.sinkLoop(s, false) }()
	}
	dlqDone := make(chan struct{})
	if p.dlq != nil {
		go func() { defer close(dlqDone); r.sinkLoop(p.dlq, true) }()
	} else {
		close(dlqDone)
	}

	r.processor(r.withTimers(batches)) // returns when batches is closed
	for _, s := range p.sinks {
		close(s.ch)
	}
	sinkWG.Wait()
	if p.dlq != nil {
		close(p.dlq.ch)
	}
	<-dlqDone
	wg.Wait()
	close(r.commitSig)
	<-commitDone
	close(stopMonitor)
	<-monitorDone
}

// result is the run's outcome once the flow has ended.
func (r *run) result(ctx context.Context) error {
	p := r.p
	pl := p.spec.Name
	if cause := context.Cause(r.workCtx); cause != nil && !errors.Is(cause, context.Canceled) {
		return fmt.Errorf("pipeline %q: %w", pl, cause)
	}
	if n := r.tracker.Pending(); n != 0 {
		return fmt.Errorf("pipeline %q: %d batch(es) were not delivered", pl, n)
	}
	if ctx.Err() != nil {
		p.log.Info("stopped")
	} else {
		p.log.Info("finished: source exhausted and every record delivered")
	}
	return nil
}

// headersUnread reports whether nothing in the pipeline reads a record header: no transform, no
// schema codec, and every sink (the dead-letter one too) says it ignores them.
func (r *run) headersUnread() bool {
	p := r.p
	if len(p.spec.Transforms) > 0 || p.dec != nil {
		return false
	}
	for _, s := range p.allSinks() {
		if s.enc != nil || !connector.IgnoresHeaders(s.sink) {
			return false
		}
	}
	return true
}
