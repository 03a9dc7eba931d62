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
// With delivery exactly_once every sink stores the source positions with its data (WriteTx), the
// source resumes from what the sinks stored and each sink gets only the records after what it
// holds (exactlyonce.go).
//
// Memory is bounded: a pipeline never holds more than its buffer policy's records and bytes
// between the source and the sinks (a single batch larger than the budget is let through alone).
//
// The roles live one per file: run.go opens, wires and closes; reader.go, batcher.go,
// processor.go (transforms and routing), sinkloop.go (with sinkbatch.go and pipelined.go) and
// committer.go are the stages; health.go and monitor.go report readiness and lag.
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/sluicehq/sluice/internal/metrics"
	"github.com/sluicehq/sluice/internal/schema"
	"github.com/sluicehq/sluice/runtime/catalog"
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
	// Checkpoints is the durable position store (a *checkpoint.Store). Required by Run; New
	// does not touch it.
	Checkpoints Checkpoints
	// DataDir is the root of the components' private directories (DataDir/<pipeline>/<component>).
	DataDir string
	// NewStage builds transform stages. Required when the pipeline has transforms.
	NewStage StageFactory
	// DrainTimeout bounds the drain after a stop request. Default pipeline.DefaultDrainTimeout.
	DrainTimeout time.Duration
	// Clock tells the time for readiness and lag; nil means time.Now. Tests inject one.
	Clock func() time.Time
	// MonitorInterval is how often the lag metrics are refreshed. Default 1s.
	MonitorInterval time.Duration
	// BeforeRead, when set, is called before every read of the source: while it blocks, the
	// source is not read and what is in flight is delivered. It returns an error only when ctx
	// (the run's reading context) is done. The supervisor pauses a pipeline with it.
	BeforeRead func(ctx context.Context) error
	// OnRunning, when set, is called once per Run, when the components are open and data starts
	// to move.
	OnRunning func()
}

// Checkpoints loads and saves a pipeline's positions durably; internal/checkpoint.Store is one.
type Checkpoints interface {
	Load(pipeline string) ([]connector.Position, error)
	Save(pipeline string, positions []connector.Position) error
}

// ComponentError is a source or sink the engine could not build. New returns one per failing
// component, joined.
type ComponentError struct {
	// Component is "source", "dead_letter" or the sink's name.
	Component string
	Kind      connector.Kind
	Err       error
	// Hint says how to fix it, when the engine knows; a *connector.ConfigError in Err carries its
	// own.
	Hint string
}

func (e *ComponentError) Error() string {
	if e.Component == "source" || e.Component == "dead_letter" {
		return fmt.Sprintf("%s: %v", e.Component, e.Err)
	}
	return fmt.Sprintf("sink %q: %v", e.Component, e.Err)
}

func (e *ComponentError) Unwrap() error { return e.Err }

// ErrNoDeadLetter is wrapped by the error that stops a pipeline when a record must go to the
// dead letters and the pipeline configures no dead-letter sink.
var ErrNoDeadLetter = errors.New("no dead_letter sink is configured")

// Pipeline is one runnable pipeline. Build it with New, run it once with Run. Its status
// methods are safe to call from any goroutine at any time.
type Pipeline struct {
	spec    *pipeline.Pipeline
	secrets []string
	opts    Options
	log     *slog.Logger
	m       *metrics.Metrics
	source  connector.Source
	dec     *schema.Decoder // the source's decode:, nil without one
	sinks   []*sinkRunner
	dlq     *sinkRunner
	byPort  map[string][]*sinkRunner
	health  *health
}

type sinkRunner struct {
	name string
	typ  string
	sink connector.Sink
	ch   chan sinkItem
	// batch is the sink's own batch policy (defaults applied); nil when it has none.
	batch *pipeline.BatchPolicy
	// tx is the sink written through WriteTx: set for every sink (not the dead-letter sink) of an
	// exactly_once pipeline.
	tx connector.TransactionalSink
	// skip is, per partition, the offset up to which this sink already holds the records (what it
	// stored, or the local checkpoint), while the source re-reads them for another sink; only the
	// processor touches it (exactly_once).
	skip map[string]int64
	// stored is what the sink stored when the run started (exactly_once), for its sink loop.
	stored map[string]int64
	// enc is the sink's encode:, nil without one.
	enc *schema.Encoder
}

// New builds the pipeline's components from the catalog. It does no I/O. Zero-valued policies of
// spec take their defaults (pipeline.Pipeline.WithDefaults).
func New(spec *pipeline.Pipeline, o Options) (*Pipeline, error) {
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
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.MonitorInterval <= 0 {
		o.MonitorInterval = time.Second
	}
	if len(spec.Transforms) > 0 && o.NewStage == nil {
		return nil, fmt.Errorf("engine: pipeline %q has transforms but no stage factory", spec.Name)
	}
	secrets := spec.Secrets()
	p := &Pipeline{spec: spec, opts: o, secrets: secrets, log: newRedactingLogger(o.Logger, secrets).With("pipeline", spec.Name),
		m: o.Metrics, byPort: map[string][]*sinkRunner{}, health: newHealth(o.Clock, spec.StuckAfter)}
	if err := p.build(); err != nil {
		return nil, redactErr(fmt.Errorf("engine: pipeline %q: %w", spec.Name, err), secrets)
	}
	return p, nil
}

// build constructs the source and the sinks. It tries every component and returns one
// *ComponentError per failure, joined; what it built is closed again on failure.
func (p *Pipeline) build() error {
	spec := p.spec
	var errs []error
	if src, err := p.newSource(spec.Source); err != nil {
		errs = append(errs, &ComponentError{Component: "source", Kind: connector.KindSource, Err: err})
	} else {
		p.source = src
	}
	for _, s := range spec.Sinks {
		r, err := p.newSink(s.Name, s.Component)
		if err != nil {
			errs = append(errs, &ComponentError{Component: s.Name, Kind: connector.KindSink, Err: err})
			continue
		}
		r.batch = s.Batch
		p.sinks = append(p.sinks, r)
		p.byPort[s.Port()] = append(p.byPort[s.Port()], r)
	}
	if spec.DeadLetter != nil {
		r, err := p.newSink("dead_letter", *spec.DeadLetter)
		if err != nil {
			errs = append(errs, &ComponentError{Component: "dead_letter", Kind: connector.KindSink, Err: err})
		} else {
			p.dlq = r
		}
	}
	if spec.Delivery == pipeline.ExactlyOnce {
		errs = append(errs, p.checkExactlyOnce()...) // exactlyonce.go
	}
	if len(errs) > 0 {
		_ = p.Discard(context.Background())
		return errors.Join(errs...)
	}
	return nil
}

func (p *Pipeline) newSource(c pipeline.Component) (connector.Source, error) {
	reg, ok := p.opts.Catalog.Lookup(connector.KindSource, c.Type)
	if !ok {
		return nil, fmt.Errorf("unknown source type %q", c.Type)
	}
	if c.Decode != nil {
		dec, err := schema.NewDecoder(c.Decode)
		if err != nil {
			return nil, fmt.Errorf("decode: %w", err)
		}
		p.dec = dec
	}
	return reg.NewSource(c.Config, p.env("source"))
}

func (p *Pipeline) newSink(name string, c pipeline.Component) (*sinkRunner, error) {
	reg, ok := p.opts.Catalog.Lookup(connector.KindSink, c.Type)
	if !ok {
		return nil, fmt.Errorf("unknown sink type %q", c.Type)
	}
	var enc *schema.Encoder
	if c.Encode != nil {
		var err error
		if enc, err = schema.NewEncoder(c.Encode); err != nil {
			return nil, fmt.Errorf("encode: %w", err)
		}
	}
	s, err := reg.NewSink(c.Config, p.env(name))
	if err != nil {
		return nil, err
	}
	return &sinkRunner{name: name, typ: c.Type, sink: s, ch: make(chan sinkItem, 16), enc: enc}, nil
}

// Discard releases the components of a pipeline that will not run (after validation). It must
// not be called on a pipeline that ran or is running; Run closes its own components.
func (p *Pipeline) Discard(ctx context.Context) error {
	var errs []error
	if p.source != nil {
		errs = append(errs, p.guard("source", "close", func() error { return p.source.Close(ctx) }))
	}
	for _, s := range p.allSinks() {
		errs = append(errs, p.guard(s.name, "close", func() error { return s.sink.Close(ctx) }))
	}
	return redactErr(errors.Join(errs...), p.secrets)
}

// env is the connector environment of one component.
func (p *Pipeline) env(component string) connector.Env {
	dir := ""
	if p.opts.DataDir != "" {
		dir = filepath.Join(p.opts.DataDir, "pipelines", p.spec.Name, component)
	}
	return connector.Env{Logger: p.log.With("component", component), Pipeline: p.spec.Name, Component: component, DataDir: dir}
}

// Name returns the pipeline's name.
func (p *Pipeline) Name() string { return p.spec.Name }

// Ready reports whether the pipeline has opened its components and is moving data: it is
// running, no sink has kept failing and no stage has held one batch for longer than the
// pipeline's StuckAfter.
func (p *Pipeline) Ready() bool { return p.Status().Ready }

// Status reports the pipeline's state, readiness and, when it is not ready, why.
func (p *Pipeline) Status() pipeline.Status {
	s := p.health.status()
	s.Reason = pipeline.Redact(s.Reason, p.secrets)
	return s
}

func (p *Pipeline) allSinks() []*sinkRunner {
	out := append([]*sinkRunner(nil), p.sinks...)
	if p.dlq != nil {
		out = append(out, p.dlq)
	}
	return out
}

// Run runs the pipeline until its bounded source is exhausted and everything is delivered
// (returns nil), until ctx is cancelled (stops reading, drains, checkpoints, returns nil), or
// until a fatal error (returns it; what was delivered is checkpointed).
//
// Secret values of the pipeline never appear in the returned error nor in the pipeline's logs.
func (p *Pipeline) Run(ctx context.Context) error {
	if p.opts.Checkpoints == nil {
		return fmt.Errorf("engine: pipeline %q: a checkpoint store is required", p.spec.Name)
	}
	r := newRun(p)
	err := redactErr(r.run(ctx), p.secrets)
	p.health.finish(err, ctx.Err() != nil)
	return err
}
