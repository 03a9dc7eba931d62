// Package supervisor turns loaded pipeline configurations into running pipelines. It is the
// runtime API a front end drives: the sluice command line, an admin API or a reload loop.
//
// It owns everything between a configuration (runtime/pipeline) and a running pipeline:
// building sources, sinks and the dead-letter sink from a catalog (runtime/catalog), building
// WASM transform stages on one shared host, checking that every port a sink reads is emitted,
// registering the metrics, running many pipelines, stopping them and reporting their status.
//
// The life of a Supervisor: New, then CheckTransform for each transform (optional: Add loads
// the modules it needs), Add the pipelines (construction only, no I/O: what `sluice validate`
// does), Run them (opens the checkpoint store and the components, moves data), Close.
package supervisor

import (
	"context"
	"errors"
	"fmt"
	bolt "go.etcd.io/bbolt"
	"log/slog"
	"sync"
	"time"

	"github.com/sluicehq/sluice/internal/checkpoint"
	"github.com/sluicehq/sluice/internal/engine"
	"github.com/sluicehq/sluice/internal/metrics"
	"github.com/sluicehq/sluice/runtime/catalog"
	"github.com/sluicehq/sluice/runtime/pipeline"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// Options configure a Supervisor.
type Options struct {
	// Catalog holds the sources and sinks pipelines may name. Required.
	Catalog *catalog.Catalog
	// Logger receives the runtime's logs; nil discards them.
	Logger *slog.Logger
	// Metrics receives every pipeline's metrics and the WASM stages' counters; nil creates one.
	Metrics *metrics.Metrics
	// DataDir holds the checkpoint store, the components' private directories and the WASM
	// compilation cache. Empty means no cache and no component directories; Run then refuses,
	// as it has nowhere to checkpoint.
	DataDir string
	// DrainTimeout bounds a graceful stop; default pipeline.DefaultDrainTimeout.
	DrainTimeout time.Duration
	// StuckAfter is the readiness threshold of pipelines that set none; default
	// pipeline.DefaultStuckAfter.
	StuckAfter time.Duration
}

// Supervisor builds, runs and reports pipelines. Its methods are safe for concurrent use.
type Supervisor struct {
	opts Options
	log  *slog.Logger
	m    *metrics.Metrics
	wasm *wasmStages

	// store is the checkpoint store the pipelines are built with; Run opens it.
	store *lazyStore

	mu    sync.Mutex
	pipes []*engine.Pipeline
	ran   bool
}

// lazyStore lets pipelines be built before the checkpoint store is opened, so that building
// (validation) does no I/O.
type lazyStore struct{ s *checkpoint.Store }

func (l *lazyStore) Load(pipeline string) ([]connector.Position, error) { return l.s.Load(pipeline) }
func (l *lazyStore) Save(pipeline string, ps []connector.Position) error {
	return l.s.Save(pipeline, ps)
}
func (l *lazyStore) DB() *bolt.DB { return l.s.DB() }
func (l *lazyStore) SaveWith(pipeline string, ps []connector.Position, also func(tx *bolt.Tx) error) error {
	return l.s.SaveWith(pipeline, ps, also)
}

// New returns a supervisor. It does no I/O; it registers the WASM stage collector on the metrics
// registry.
func New(o Options) (*Supervisor, error) {
	if o.Catalog == nil {
		return nil, errors.New("supervisor: a catalog is required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Metrics == nil {
		o.Metrics = metrics.New()
	}
	s := &Supervisor{opts: o, log: o.Logger, m: o.Metrics, wasm: newWasmStages(o.DataDir, o.Logger), store: &lazyStore{}}
	if err := o.Metrics.Registry.Register(s.wasm); err != nil {
		return nil, fmt.Errorf("supervisor: register the WASM metrics: %w", err)
	}
	return s, nil
}

// Metrics returns the metrics every pipeline reports to.
func (s *Supervisor) Metrics() *metrics.Metrics { return s.m }

// Add builds the pipelines: their sources, sinks and dead-letter sinks (no I/O), and checks that
// every sink reads a port its pipeline's transforms emit and that no file sink writes the file
// its pipeline's source follows. A pipeline with a problem is not added;
// every problem of every pipeline is returned.
func (s *Supervisor) Add(ctx context.Context, ps ...*pipeline.Pipeline) []Problem {
	var problems []Problem
	for _, cfg := range ps {
		if pp := append(checkSelfFeeding(cfg), s.checkPorts(ctx, cfg)...); len(pp) > 0 {
			problems = append(problems, pp...)
			continue
		}
		if cfg.StuckAfter == 0 {
			c := *cfg
			c.StuckAfter = s.opts.StuckAfter
			cfg = &c
		}
		p, err := engine.New(cfg, engine.Options{Catalog: s.opts.Catalog, Logger: s.log, Metrics: s.m,
			DataDir: s.opts.DataDir, NewStage: s.wasm.newStage, DrainTimeout: s.opts.DrainTimeout, Checkpoints: s.store})
		if err != nil {
			problems = append(problems, componentProblems(cfg.Name, err)...)
			continue
		}
		s.mu.Lock()
		s.pipes = append(s.pipes, p)
		s.mu.Unlock()
	}
	return problems
}

// RunOptions adjust Run.
type RunOptions struct {
	// Reset forgets the pipelines' checkpoints: their sources start from the beginning. A
	// damaged checkpoint store is set aside and recreated (see checkpoint.Recreate).
	Reset bool
}

// Run opens the checkpoint store under DataDir and runs every added pipeline until each has
// ended: its bounded source is exhausted and everything delivered, ctx is cancelled (a graceful
// stop: stop reading, drain, checkpoint), or it failed. It returns the failures, joined. Run may
// be called once.
func (s *Supervisor) Run(ctx context.Context, o RunOptions) error {
	s.mu.Lock()
	if s.ran {
		s.mu.Unlock()
		return errors.New("supervisor: Run was already called")
	}
	s.ran = true
	pipes := append([]*engine.Pipeline(nil), s.pipes...)
	s.mu.Unlock()
	if len(pipes) == 0 {
		return errors.New("supervisor: no pipelines to run")
	}
	if s.opts.DataDir == "" {
		return errors.New("supervisor: a data directory is required to checkpoint")
	}
	open := checkpoint.Open
	if o.Reset {
		open = checkpoint.Recreate
	}
	store, err := open(s.opts.DataDir)
	if err != nil {
		return err
	}
	defer store.Close()
	s.store.s = store // before any pipeline runs; never changed after
	for _, p := range pipes {
		if o.Reset {
			if err := store.Reset(p.Name()); err != nil {
				return err
			}
		}
	}
	errs := make([]error, len(pipes))
	var wg sync.WaitGroup
	for i, p := range pipes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = p.Run(ctx)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Status is the state of one pipeline.
type Status struct {
	Name string `json:"name"`
	pipeline.Status
}

// Status reports every added pipeline, in the order they were added.
func (s *Supervisor) Status() []Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Status, len(s.pipes))
	for i, p := range s.pipes {
		out[i] = Status{Name: p.Name(), Status: p.Status()}
	}
	return out
}

// Close releases what the supervisor holds: the components of pipelines that were added but never
// run, and the WASM host. Call it once, after Run has returned (or instead of Run).
func (s *Supervisor) Close(ctx context.Context) error {
	s.mu.Lock()
	pipes, ran := s.pipes, s.ran
	s.mu.Unlock()
	var errs []error
	if !ran {
		for _, p := range pipes {
			errs = append(errs, p.Discard(ctx))
		}
	}
	errs = append(errs, s.wasm.close(ctx))
	s.m.Registry.Unregister(s.wasm)
	return errors.Join(errs...)
}
