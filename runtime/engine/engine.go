// Package engine runs one pipeline: source → batcher → transforms → router → sinks, with the
// dead-letter sink beside them, the ack tracker and the checkpoint store behind them.
//
// The delivery rule: a batch counts as delivered only when every sink it was routed to (and the
// dead-letter sink, for its rejected or failed records) has made it durable; the ack tracker then
// releases positions per partition in read order; the positions are saved in the checkpoint store;
// only after that is the source acked. A crash at any moment therefore loses nothing: on restart
// the source resumes after the last saved positions and at most the un-checkpointed tail is read
// again.
//
// Memory is bounded: a pipeline never holds more than its buffer policy's records and bytes
// between the source and the sinks (a single batch larger than the budget is let through alone).
package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/runtime/ackset"
	"github.com/sluicehq/sluice/runtime/catalog"
	"github.com/sluicehq/sluice/runtime/checkpoint"
	"github.com/sluicehq/sluice/runtime/metrics"
	"github.com/sluicehq/sluice/runtime/pipeline"
	"github.com/sluicehq/sluice/runtime/transform"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// StageFactory builds the stage of one transform of the named pipeline. The supervisor supplies
// one backed by the WASM host.
type StageFactory func(ctx context.Context, pipelineName string, t pipeline.Transform, logger *slog.Logger) (transform.Stage, error)

// Options configure a pipeline run.
type Options struct {
	// Catalog holds the components the pipeline's source and sinks name. Required.
	Catalog *catalog.Catalog
	// Logger is the process logger; the pipeline scopes it. Nil discards logs.
	Logger *slog.Logger
	// Metrics receives the pipeline's metrics. Nil keeps them private.
	Metrics *metrics.Metrics
	// Checkpoints is the durable position store. Required.
	Checkpoints *checkpoint.Store
	// DataDir is the root of the components' private directories (DataDir/<pipeline>/<component>).
	DataDir string
	// NewStage builds transform stages. Required when the manifest has transforms.
	NewStage StageFactory
	// DrainTimeout bounds the drain after a stop request. Default pipeline.DefaultDrainTimeout.
	DrainTimeout time.Duration
}

// ErrNoDeadLetter is wrapped by the error that stops a pipeline when a record must go to the
// dead letters and the manifest configures no dead-letter sink.
var ErrNoDeadLetter = errors.New("no dead_letter sink is configured")

// Pipeline is one runnable pipeline. Build it with New, run it once with Run.
type Pipeline struct {
	spec    *pipeline.Pipeline
	secrets []string
	opts    Options
	log     *slog.Logger
	m       *metrics.Metrics
	source  connector.Source
	sinks   []*sinkRunner
	dlq     *sinkRunner
	byPort  map[string][]*sinkRunner
	ready   atomic.Bool
}

type sinkRunner struct {
	name string
	sink connector.Sink
	ch   chan sinkItem
}

// New builds the pipeline's components from the catalog. It does no I/O. Zero-valued policies of
// spec take their defaults (pipeline.Pipeline.WithDefaults).
func New(spec *pipeline.Pipeline, o Options) (*Pipeline, error) {
	if o.Checkpoints == nil {
		return nil, errors.New("engine: a checkpoint store is required")
	}
	if o.Catalog == nil {
		return nil, errors.New("engine: a catalog is required")
	}
	spec = spec.WithDefaults()
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Metrics == nil {
		o.Metrics = metrics.New()
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = pipeline.DefaultDrainTimeout
	}
	secrets := spec.Secrets()
	p := &Pipeline{spec: spec, opts: o, secrets: secrets, log: newRedactingLogger(o.Logger, secrets).With("pipeline", spec.Name),
		m: o.Metrics, byPort: map[string][]*sinkRunner{}}

	env := func(component string) connector.Env {
		dir := ""
		if o.DataDir != "" {
			dir = filepath.Join(o.DataDir, "pipelines", spec.Name, component)
		}
		return connector.Env{Logger: p.log.With("component", component), Pipeline: spec.Name, Component: component, DataDir: dir}
	}
	sc, ok := o.Catalog.Lookup(connector.KindSource, spec.Source.Type)
	if !ok {
		return nil, fmt.Errorf("engine: pipeline %q: unknown source type %q", spec.Name, spec.Source.Type)
	}
	src, err := sc.NewSource(spec.Source.Config, env("source"))
	if err != nil {
		return nil, redactErr(fmt.Errorf("engine: pipeline %q: source %s: %w", spec.Name, spec.Source.Type, err), secrets)
	}
	p.source = src
	newSink := func(name string, c pipeline.Component) (*sinkRunner, error) {
		reg, ok := o.Catalog.Lookup(connector.KindSink, c.Type)
		if !ok {
			return nil, fmt.Errorf("engine: pipeline %q: sink %q: unknown type %q", spec.Name, name, c.Type)
		}
		s, err := reg.NewSink(c.Config, env(name))
		if err != nil {
			return nil, redactErr(fmt.Errorf("engine: pipeline %q: sink %q: %w", spec.Name, name, err), secrets)
		}
		return &sinkRunner{name: name, sink: s, ch: make(chan sinkItem, 16)}, nil
	}
	for _, s := range spec.Sinks {
		r, err := newSink(s.Name, s.Component)
		if err != nil {
			return nil, err
		}
		port := s.Port()
		p.sinks = append(p.sinks, r)
		p.byPort[port] = append(p.byPort[port], r)
	}
	if spec.DeadLetter != nil {
		r, err := newSink("dead_letter", *spec.DeadLetter)
		if err != nil {
			return nil, err
		}
		p.dlq = r
	}
	if spec.Delivery == pipeline.ExactlyOnce {
		// The engine does not yet resume from positions stored in sinks, so exactly-once cannot
		// be honoured even by a sink that could store them; refusing is better than silently
		// delivering at least once.
		return nil, fmt.Errorf("engine: pipeline %q: delivery exactly_once is not supported by this runtime yet; use delivery: at_least_once", spec.Name)
	}
	if len(spec.Transforms) > 0 && o.NewStage == nil {
		return nil, fmt.Errorf("engine: pipeline %q has transforms but no stage factory", spec.Name)
	}
	return p, nil
}

// Name returns the pipeline's name.
func (p *Pipeline) Name() string { return p.spec.Name }

// Ready reports whether the pipeline has opened its components and is moving data.
func (p *Pipeline) Ready() bool { return p.ready.Load() }

// batch is one unit of work in flight.
type batch struct {
	id      uint64
	records int64
	bytes   int64
	failed  atomic.Int32 // records of the batch sent to the dead letters
	pending atomic.Int32
}

type sinkItem struct {
	b    *batch
	recs []connector.Record
	// dead-letter items carry the reasons, one per record.
	letters []deadLetter
}

// Run runs the pipeline until its bounded source is exhausted and everything is delivered
// (returns nil), until ctx is cancelled (stops reading, drains, checkpoints, returns nil), or
// until a fatal error (returns it; what was delivered is checkpointed).
//
// Secret values of the manifest never appear in the returned error nor in the pipeline's logs.
func (p *Pipeline) Run(ctx context.Context) (err error) {
	r := &run{p: p, tracker: ackset.New(), commitSig: make(chan struct{}, 1),
		failures: newFailureWindow(p.spec.FailureLimit.Ratio, p.spec.FailureLimit.Window)}
	return redactErr(r.run(ctx), p.secrets)
}

type run struct {
	p        *Pipeline
	tracker  *ackset.Set
	budget   *budget
	failures *failureWindow
	stages   []stageRunner

	workCtx   context.Context
	fail      context.CancelCauseFunc
	commitSig chan struct{}
	lastSave  atomic.Int64 // unix nanos
}

type stageRunner struct {
	spec  pipeline.Transform
	stage transform.Stage
}

func (r *run) fatal(err error) { r.fail(err) }

func (r *run) run(ctx context.Context) (err error) {
	p := r.p
	pl := p.spec.Name
	workCtx, fail := context.WithCancelCause(context.WithoutCancel(ctx))
	defer fail(nil)
	r.workCtx, r.fail = workCtx, fail
	r.budget = newBudget(int64(p.spec.Buffer.MaxRecords), p.spec.Buffer.MaxBytes, p.m.InFlightRecords.WithLabelValues(pl), p.m.InFlightBytes.WithLabelValues(pl))

	// Open everything; close everything whatever happens.
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var errs []error
		if cerr := p.source.Close(cctx); cerr != nil {
			errs = append(errs, fmt.Errorf("close source: %w", cerr))
		}
		for _, s := range p.allSinks() {
			if cerr := s.sink.Close(cctx); cerr != nil {
				errs = append(errs, fmt.Errorf("close sink %q: %w", s.name, cerr))
			}
		}
		for _, st := range r.stages {
			if cerr := st.stage.Close(cctx); cerr != nil {
				errs = append(errs, fmt.Errorf("close transform %q: %w", st.spec.Name, cerr))
			}
		}
		if len(errs) > 0 {
			cerr := fmt.Errorf("pipeline %q: %w", pl, errors.Join(errs...))
			if err == nil {
				err = cerr
			} else {
				p.log.Warn("closing after failure", "err", cerr)
			}
		}
		p.m.PipelineUp.WithLabelValues(pl).Set(0)
		p.ready.Store(false)
	}()

	for _, t := range p.spec.Transforms {
		st, serr := p.opts.NewStage(workCtx, pl, t, p.log.With("component", t.Name))
		if serr != nil {
			return fmt.Errorf("pipeline %q: transform %q: %w", pl, t.Name, serr)
		}
		r.stages = append(r.stages, stageRunner{spec: t, stage: st})
	}
	for _, s := range p.allSinks() {
		if oerr := openWithRetry(ctx, p.log, func(c context.Context) error { return s.sink.Open(c) }); oerr != nil {
			return fmt.Errorf("pipeline %q: open sink %q: %w", pl, s.name, oerr)
		}
	}
	resume, err := p.opts.Checkpoints.Load(pl)
	if err != nil {
		return fmt.Errorf("pipeline %q: %w", pl, err)
	}
	if oerr := openWithRetry(ctx, p.log, func(c context.Context) error { return p.source.Open(c, resume) }); oerr != nil {
		return fmt.Errorf("pipeline %q: open source %s: %w", pl, p.spec.Source.Type, oerr)
	}
	if len(resume) > 0 {
		p.log.Info("resuming", "positions", len(resume))
	}
	p.ready.Store(true)
	p.m.PipelineUp.WithLabelValues(pl).Set(1)
	r.lastSave.Store(time.Now().UnixNano())

	// The stop request: stop reading at once; give the drain DrainTimeout.
	readCtx, stopReading := context.WithCancel(workCtx)
	defer stopReading()
	go func() {
		select {
		case <-ctx.Done():
			p.log.Info("stop requested: draining", "timeout", p.opts.DrainTimeout)
			stopReading()
			t := time.NewTimer(p.opts.DrainTimeout)
			defer t.Stop()
			select {
			case <-t.C:
				r.fatal(fmt.Errorf("drain did not finish within %s; undelivered records will be read again on restart", p.opts.DrainTimeout))
			case <-workCtx.Done():
			}
		case <-workCtx.Done():
		}
	}()

	raw := make(chan []connector.Record, 2)
	batches := make(chan *pendingBatch, 2)
	var wg sync.WaitGroup
	commitDone := make(chan struct{})
	go func() { defer close(commitDone); r.committer() }()

	wg.Add(1)
	go func() { defer wg.Done(); r.reader(readCtx, raw) }()
	wg.Add(1)
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

	r.processor(batches) // returns when batches is closed (or on failure)
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

	if cause := context.Cause(workCtx); cause != nil && !errors.Is(cause, context.Canceled) {
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

func (p *Pipeline) allSinks() []*sinkRunner {
	out := append([]*sinkRunner(nil), p.sinks...)
	if p.dlq != nil {
		out = append(out, p.dlq)
	}
	return out
}

// reader pulls batches from the source until EOF, a stop request, or a fatal error.
func (r *run) reader(ctx context.Context, out chan<- []connector.Record) {
	defer close(out)
	p := r.p
	in := p.m.RecordsIn.WithLabelValues(p.spec.Name, "source")
	failures := 0
	for {
		recs, err := p.source.Read(ctx)
		if len(recs) > 0 {
			in.Add(float64(len(recs)))
			select {
			case out <- recs:
			case <-r.workCtx.Done():
				return
			}
		}
		switch {
		case err == nil:
			failures = 0
		case errors.Is(err, io.EOF):
			return
		case ctx.Err() != nil:
			return
		default:
			failures++
			if errors.Is(err, connector.ErrPermanent) || failures > 5 {
				r.fatal(fmt.Errorf("source %s: read: %w", p.spec.Source.Type, err))
				return
			}
			p.log.Warn("source read failed; retrying", "err", err, "attempt", failures)
			if !sleep(ctx, backoff(failures)) {
				return
			}
		}
	}
}

type pendingBatch struct {
	b    *batch
	recs []connector.Record
}

// batcher groups what the source returns into batches of the policy's size, waiting at most
// Linger to fill one, acquires the memory budget for each and registers it with the tracker.
func (r *run) batcher(in <-chan []connector.Record, out chan<- *pendingBatch) {
	defer close(out)
	pol := r.p.spec.Batch
	maxR, maxB := pol.MaxRecords, pol.MaxBytes
	var cur []connector.Record
	var curBytes int64
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	armed := false
	flush := func(recs []connector.Record, bytes int64) bool {
		if len(recs) == 0 {
			return true
		}
		if err := r.budget.acquire(r.workCtx, int64(len(recs)), bytes); err != nil {
			return false
		}
		b := &batch{records: int64(len(recs)), bytes: bytes}
		b.id = r.tracker.Add(ackset.LastPositions(recs))
		select {
		case out <- &pendingBatch{b: b, recs: recs}:
			return true
		case <-r.workCtx.Done():
			return false
		}
	}
	for {
		select {
		case recs, ok := <-in:
			if !ok {
				flush(cur, curBytes)
				return
			}
			for len(recs) > 0 {
				if len(cur) == 0 {
					n, bytes := fit(recs, 0, 0, maxR, maxB)
					if n < len(recs) || n == maxR || bytes >= maxB {
						// A full batch straight from the source's slice: no copy.
						if !flush(recs[:n:n], bytes) {
							return
						}
						recs = recs[n:]
						continue
					}
					// Everything fits and the batch is not full: keep it and wait to fill it.
					// The capacity is capped so appending never writes into the source's memory.
					cur, curBytes, recs = recs[:n:n], bytes, nil
					break
				}
				n, bytes := fit(recs, len(cur), curBytes, maxR, maxB)
				cur, curBytes, recs = append(cur, recs[:n]...), bytes, recs[n:]
				if len(recs) > 0 || len(cur) >= maxR || curBytes >= maxB {
					if !flush(cur, curBytes) {
						return
					}
					cur, curBytes = nil, 0
				}
			}
			if len(cur) > 0 && !armed {
				timer.Reset(pol.Linger)
				armed = true
			} else if len(cur) == 0 && armed {
				timer.Stop()
				armed = false
			}
		case <-timer.C:
			armed = false
			if !flush(cur, curBytes) {
				return
			}
			cur, curBytes = nil, 0
		case <-r.workCtx.Done():
			return
		}
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

// processor runs the transforms on each batch in order and routes the results.
func (r *run) processor(in <-chan *pendingBatch) {
	p := r.p
	pl := p.spec.Name
	for pb := range in {
		if r.workCtx.Err() != nil {
			continue // draining the channel after a failure
		}
		main := pb.recs
		var routed map[string][]connector.Record
		var letters []deadLetter
		for _, st := range r.stages {
			if len(main) == 0 {
				break
			}
			start := time.Now()
			res, err := st.stage.Process(r.workCtx, main)
			p.m.BatchSeconds.WithLabelValues(pl, st.spec.Name).Observe(time.Since(start).Seconds())
			p.m.RecordsIn.WithLabelValues(pl, st.spec.Name).Add(float64(len(main)))
			if err != nil {
				r.fatal(fmt.Errorf("transform %q: %w", st.spec.Name, err))
				break
			}
			if len(res.Actions) != len(main) {
				r.fatal(fmt.Errorf("transform %q: %d actions for %d records", st.spec.Name, len(res.Actions), len(main)))
				break
			}
			next := make([]connector.Record, 0, len(main))
			ei, ri := 0, 0
			for i, a := range res.Actions {
				switch a {
				case transform.Pass:
					next = append(next, main[i])
				case transform.Drop:
				case transform.Emit:
					for ; ei < len(res.Emitted) && res.Emitted[ei].Input == i; ei++ {
						e := res.Emitted[ei]
						e.Record.Position = main[i].Position
						if e.Port == "" || e.Port == transform.DefaultPort {
							next = append(next, e.Record)
						} else {
							if routed == nil {
								routed = map[string][]connector.Record{}
							}
							routed[e.Port] = append(routed[e.Port], e.Record)
						}
					}
				case transform.Reject:
					var rej transform.Rejected
					for ; ri < len(res.Rejected) && res.Rejected[ri].Input <= i; ri++ {
						rej = res.Rejected[ri]
					}
					p.m.RecordsRejected.WithLabelValues(pl, st.spec.Name).Inc()
					switch st.spec.OnReject {
					case pipeline.RejectDrop:
					case pipeline.RejectStop:
						r.fatal(fmt.Errorf("transform %q rejected the record at %s (code %d: %s) and on_reject is stop", st.spec.Name, main[i].Position, rej.Code, rej.Reason))
					default:
						letters = append(letters, deadLetter{rec: main[i], stage: st.spec.Name, kind: "rejected", code: int(rej.Code), reason: rej.Reason})
					}
				}
			}
			p.m.RecordsOut.WithLabelValues(pl, st.spec.Name).Add(float64(len(next)))
			main = next
		}
		if r.workCtx.Err() != nil {
			continue
		}
		r.route(pb.b, main, routed, letters)
	}
}

// route hands the batch's records to the sinks of their ports and its dead letters to the
// dead-letter sink, or completes it at once when nothing is left to deliver.
func (r *run) route(b *batch, main []connector.Record, routed map[string][]connector.Record, letters []deadLetter) {
	p := r.p
	type delivery struct {
		s    *sinkRunner
		item sinkItem
	}
	var ds []delivery
	add := func(port string, recs []connector.Record) {
		if len(recs) == 0 {
			return
		}
		sinks := p.byPort[port]
		if len(sinks) == 0 {
			for i := range recs {
				letters = append(letters, deadLetter{rec: recs[i], stage: "router", kind: "unrouted", reason: fmt.Sprintf("no sink reads output port %q", port)})
			}
			return
		}
		for _, s := range sinks {
			ds = append(ds, delivery{s: s, item: sinkItem{b: b, recs: recs}})
		}
	}
	add(transform.DefaultPort, main)
	for port, recs := range routed {
		add(port, recs)
	}
	b.failed.Add(int32(len(letters)))
	if len(letters) > 0 {
		if p.dlq == nil {
			l := letters[0]
			r.fatal(fmt.Errorf("%d record(s) must go to the dead letters (first at %s, from %s: %s) but %w; add spec.dead_letter, or set on_reject: drop on the transform to drop them knowingly",
				len(letters), l.rec.Position, l.stage, l.reason, ErrNoDeadLetter))
			return
		}
		ds = append(ds, delivery{s: p.dlq, item: sinkItem{b: b, letters: letters}})
	}
	if len(ds) == 0 {
		r.finish(b)
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
}

// complete finishes one delivery of a batch; the last one finishes the batch.
func (r *run) complete(b *batch) {
	if b.pending.Add(-1) == 0 {
		r.finish(b)
	}
}

// finish releases a delivered batch's positions and budget, and checks the failure limit.
func (r *run) finish(b *batch) {
	if err := r.failures.add(int(b.records), int(b.failed.Load())); err != nil {
		r.fatal(err)
		return
	}
	if err := r.tracker.Done(b.id); err != nil {
		r.fatal(err)
		return
	}
	r.budget.release(b.records, b.bytes)
	select {
	case r.commitSig <- struct{}{}:
	default:
	}
}

// committer saves released positions and then acks the source, coalescing bursts of completions
// into one durable write.
func (r *run) committer() {
	p := r.p
	pl := p.spec.Name
	age := p.m.CheckpointAge.WithLabelValues(pl)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	commit := func() {
		ps := r.tracker.Take()
		if len(ps) == 0 {
			return
		}
		if err := p.opts.Checkpoints.Save(pl, ps); err != nil {
			r.fatal(err)
			return
		}
		r.lastSave.Store(time.Now().UnixNano())
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := p.source.Ack(ctx, ps); err != nil {
			// The checkpoint store holds the truth; a failed upstream commit only means the
			// source system shows an older position until the next ack.
			p.log.Warn("source ack failed", "err", err)
		}
	}
	for {
		select {
		case _, ok := <-r.commitSig:
			commit()
			if !ok {
				return
			}
		case <-tick.C:
			age.Set(time.Since(time.Unix(0, r.lastSave.Load())).Seconds())
		}
	}
}

// sinkLoop writes the items of one sink, coalescing what is queued into one Write when the sink
// falls behind, and hands failed records to the dead-letter sink.
func (r *run) sinkLoop(s *sinkRunner, isDLQ bool) {
	p := r.p
	pl := p.spec.Name
	out := p.m.RecordsOut.WithLabelValues(pl, s.name)
	failed := p.m.RecordsFailed.WithLabelValues(pl, s.name)
	hist := p.m.BatchSeconds.WithLabelValues(pl, s.name)
	retries := p.m.Retries.WithLabelValues(pl, s.name)
	maxCoalesce := 4 * p.spec.Batch.MaxRecords
	var items []sinkItem
	var buf []connector.Record
	for first := range s.ch {
		if r.workCtx.Err() != nil {
			continue
		}
		items = append(items[:0], first)
		n := first.len()
	gather:
		for n < maxCoalesce {
			select {
			case it, ok := <-s.ch:
				if !ok {
					break gather
				}
				items = append(items, it)
				n += it.len()
			default:
				break gather
			}
		}
		var recs []connector.Record
		if isDLQ {
			buf = buf[:0]
			for _, it := range items {
				for _, l := range it.letters {
					buf = append(buf, l.envelope(pl))
				}
			}
			recs = buf
		} else if len(items) == 1 {
			recs = first.recs
		} else {
			buf = buf[:0]
			for _, it := range items {
				buf = append(buf, it.recs...)
			}
			recs = buf
		}
		start := time.Now()
		err := r.writeWithRetry(s, recs, retries)
		hist.Observe(time.Since(start).Seconds())
		var be *connector.BatchError
		switch {
		case err == nil:
		case errors.As(err, &be) && !isDLQ:
			failed.Add(float64(len(be.Failed)))
			// Map failed indexes back to their batches; each batch with failures gets one more
			// delivery (to the dead letters) before this one completes.
			perItem := map[int][]deadLetter{}
			for _, f := range be.Failed {
				k, off := 0, f.Index
				for k < len(items) && off >= len(items[k].recs) {
					off -= len(items[k].recs)
					k++
				}
				if k == len(items) {
					r.fatal(fmt.Errorf("sink %q reported failed index %d of a %d-record batch", s.name, f.Index, len(recs)))
					return
				}
				perItem[k] = append(perItem[k], deadLetter{rec: items[k].recs[off], stage: s.name, kind: "sink_failed", reason: f.Err.Error()})
			}
			if p.dlq == nil {
				r.fatal(fmt.Errorf("sink %q refused %d record(s) (first: %v) but %w; add spec.dead_letter so refused records are kept", s.name, len(be.Failed), be.Failed[0].Err, ErrNoDeadLetter))
				return
			}
			for k, ls := range perItem {
				items[k].b.failed.Add(int32(len(ls)))
				items[k].b.pending.Add(1)
				select {
				case p.dlq.ch <- sinkItem{b: items[k].b, letters: ls}:
				case <-r.workCtx.Done():
					return
				}
			}
			err = nil
		default:
			if r.workCtx.Err() == nil {
				r.fatal(fmt.Errorf("sink %q: %w", s.name, err))
			}
			return
		}
		out.Add(float64(len(recs)))
		if isDLQ {
			p.m.DeadLetters.WithLabelValues(pl).Add(float64(len(recs)))
		}
		for _, it := range items {
			r.complete(it.b)
		}
		clear(buf) // drop references to record bytes
	}
}

func (it sinkItem) len() int { return len(it.recs) + len(it.letters) }

// writeWithRetry retries a failed write with backoff until it succeeds, the error is permanent
// or per-record (*BatchError), or the run fails.
func (r *run) writeWithRetry(s *sinkRunner, recs []connector.Record, retries interface{ Inc() }) error {
	for attempt := 1; ; attempt++ {
		err := s.sink.Write(r.workCtx, recs)
		if err == nil {
			return nil
		}
		var be *connector.BatchError
		if errors.As(err, &be) || errors.Is(err, connector.ErrPermanent) || r.workCtx.Err() != nil {
			return err
		}
		retries.Inc()
		d := backoff(attempt)
		r.p.log.Warn("sink write failed; retrying", "sink", s.name, "err", err, "attempt", attempt, "backoff", d)
		if !sleep(r.workCtx, d) {
			return err
		}
	}
}

func backoff(attempt int) time.Duration {
	d := 100 * time.Millisecond << min(attempt-1, 9)
	return min(d, 30*time.Second)
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// openWithRetry calls open up to five times with backoff, stopping early on a permanent error or
// when ctx is done.
func openWithRetry(ctx context.Context, log *slog.Logger, open func(context.Context) error) error {
	var err error
	for attempt := 1; attempt <= 5; attempt++ {
		if err = open(ctx); err == nil {
			return nil
		}
		if errors.Is(err, connector.ErrPermanent) || attempt == 5 {
			break
		}
		log.Warn("open failed; retrying", "err", err, "attempt", attempt)
		if !sleep(ctx, backoff(attempt)*2) {
			break
		}
	}
	return err
}
