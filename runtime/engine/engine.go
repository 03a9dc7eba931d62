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
//
// The roles live one per file: run.go opens, wires and closes; reader.go, batcher.go,
// processor.go (transforms and routing), sinkloop.go and committer.go are the stages; health.go
// and monitor.go report readiness and lag.
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

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
	// NewStage builds transform stages. Required when the pipeline has transforms.
	NewStage StageFactory
	// DrainTimeout bounds the drain after a stop request. Default pipeline.DefaultDrainTimeout.
	DrainTimeout time.Duration
	// Clock tells the time for readiness and lag; nil means time.Now. Tests inject one.
	Clock func() time.Time
	// MonitorInterval is how often the lag metrics are refreshed. Default 1s.
	MonitorInterval time.Duration
}

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
	sinks   []*sinkRunner
	dlq     *sinkRunner
	byPort  map[string][]*sinkRunner
	health  *health
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
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.MonitorInterval <= 0 {
		o.MonitorInterval = time.Second
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
	secrets := spec.Secrets()
	p := &Pipeline{spec: spec, opts: o, secrets: secrets, log: newRedactingLogger(o.Logger, secrets).With("pipeline", spec.Name),
		m: o.Metrics, byPort: map[string][]*sinkRunner{}, health: newHealth(o.Clock, spec.StuckAfter)}
	if err := p.build(); err != nil {
		return nil, redactErr(fmt.Errorf("engine: pipeline %q: %w", spec.Name, err), secrets)
	}
	return p, nil
}

// build constructs the source and the sinks.
func (p *Pipeline) build() error {
	spec := p.spec
	sc, ok := p.opts.Catalog.Lookup(connector.KindSource, spec.Source.Type)
	if !ok {
		return fmt.Errorf("unknown source type %q", spec.Source.Type)
	}
	src, err := sc.NewSource(spec.Source.Config, p.env("source"))
	if err != nil {
		return fmt.Errorf("source %s: %w", spec.Source.Type, err)
	}
	p.source = src
	for _, s := range spec.Sinks {
		r, err := p.newSink(s.Name, s.Component)
		if err != nil {
			return err
		}
		p.sinks = append(p.sinks, r)
		p.byPort[s.Port()] = append(p.byPort[s.Port()], r)
	}
	if spec.DeadLetter != nil {
		r, err := p.newSink("dead_letter", *spec.DeadLetter)
		if err != nil {
			return err
		}
		p.dlq = r
	}
	return nil
}

func (p *Pipeline) newSink(name string, c pipeline.Component) (*sinkRunner, error) {
	reg, ok := p.opts.Catalog.Lookup(connector.KindSink, c.Type)
	if !ok {
		return nil, fmt.Errorf("sink %q: unknown type %q", name, c.Type)
	}
	s, err := reg.NewSink(c.Config, p.env(name))
	if err != nil {
		return nil, fmt.Errorf("sink %q: %w", name, err)
	}
	return &sinkRunner{name: name, sink: s, ch: make(chan sinkItem, 16)}, nil
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
func (p *Pipeline) Status() Status {
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
	r := newRun(p)
	err := redactErr(r.run(ctx), p.secrets)
	p.health.finish(err, ctx.Err() != nil)
	return err
}
