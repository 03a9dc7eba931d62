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
//
// While Run runs, each pipeline has a life of its own (lifecycle.go): a transient failure
// restarts it with backoff (RestartPolicy), a permanent one leaves it failed, and neither
// touches the other pipelines; Pause, Resume and Restart control it by name. Add, Replace and
// Remove change the set of pipelines while Run runs (reload.go), without touching the others.
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
	// Restart says how pipelines are restarted after a transient failure; zero fields take
	// their defaults.
	Restart RestartPolicy
}

// Supervisor builds, runs and reports pipelines. Its methods are safe for concurrent use.
type Supervisor struct {
	opts   Options
	log    *slog.Logger
	m      *metrics.Metrics
	wasm   *wasmStages
	policy RestartPolicy
	rates  *rates

	// store is the checkpoint store the pipelines are built with; Run opens it.
	store *lazyStore

	mu    sync.Mutex
	pipes []*managed
	ran   bool
	// live counts the pipeline loops of Run still going; loops and runCtx are set while Run
	// runs, so that Restart can start an ended pipeline again.
	live   int
	loops  *sync.WaitGroup
	runCtx context.Context
	// runs holds the cancel and end of each pipeline loop going, so that a reload can stop one
	// pipeline (reload.go); changed is closed and replaced whenever a loop ends or a reload
	// step completes, waking Run; pending counts the reload steps under way.
	runs    map[*managed]*launch
	changed chan struct{}
	pending int
	busy    map[string]bool // pipelines a reload step is replacing or removing
	over    bool            // Run has returned (or is returning)
}

// launch is one pipeline loop started by launchLocked.
type launch struct {
	stop context.CancelFunc // a graceful stop of this pipeline only
	done chan struct{}      // closed once the loop has returned
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
	s := &Supervisor{opts: o, log: o.Logger, m: o.Metrics, wasm: newWasmStages(o.DataDir, o.Logger), store: &lazyStore{},
		policy: o.Restart.withDefaults(), runs: map[*managed]*launch{}, changed: make(chan struct{}), busy: map[string]bool{}}
	s.rates = newRates(s)
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
//
// Called while Run runs, Add starts each pipeline it adds at once (from its checkpoint, if it
// has one). A name already added is a problem; so is any Add after Run has returned.
func (s *Supervisor) Add(ctx context.Context, ps ...*pipeline.Pipeline) []Problem {
	var problems []Problem
	for _, cfg := range ps {
		m, pp := s.prepare(ctx, cfg)
		if len(pp) > 0 {
			problems = append(problems, pp...)
			continue
		}
		s.mu.Lock()
		switch {
		case s.findLocked(cfg.Name) != nil:
			problems = append(problems, Problem{Pipeline: cfg.Name, Kind: "pipeline", Err: errors.New("a pipeline of that name is already added"),
				Hint: "pipeline names must be unique within a process; rename one of them"})
		case s.over:
			problems = append(problems, Problem{Pipeline: cfg.Name, Kind: "pipeline", Err: ErrNotRunning})
		default:
			s.pipes = append(s.pipes, m)
			if s.runCtx != nil {
				s.launchLocked(m)
			}
			m = nil
		}
		s.mu.Unlock()
		if m != nil {
			_ = m.cur.Discard(ctx)
		}
	}
	return problems
}

// prepare checks cfg and builds its first engine pipeline, without I/O.
func (s *Supervisor) prepare(ctx context.Context, cfg *pipeline.Pipeline) (*managed, []Problem) {
	if pp := append(checkSelfFeeding(cfg), s.checkPorts(ctx, cfg)...); len(pp) > 0 {
		return nil, pp
	}
	if cfg.StuckAfter == 0 {
		c := *cfg
		c.StuckAfter = s.opts.StuckAfter
		cfg = &c
	}
	m := &managed{s: s, name: cfg.Name, cfg: cfg}
	p, err := s.build(m)
	if err != nil {
		return nil, componentProblems(cfg.Name, err)
	}
	m.cur = p
	return m, nil
}

// build constructs a new engine pipeline for m's configuration: at Add, and for each restart.
func (s *Supervisor) build(m *managed) (*engine.Pipeline, error) {
	return engine.New(m.cfg, engine.Options{Catalog: s.opts.Catalog, Logger: s.log, Metrics: s.m,
		DataDir: s.opts.DataDir, NewStage: s.wasm.newStage, DrainTimeout: s.opts.DrainTimeout, Checkpoints: m.checkpoints(),
		BeforeRead: m.gate, OnRunning: m.onRunning})
}

// RunOptions adjust Run.
type RunOptions struct {
	// Reset forgets the pipelines' checkpoints: their sources start from the beginning. A
	// damaged checkpoint store is set aside and recreated (see checkpoint.Recreate). Pipelines
	// added while Run runs keep theirs.
	Reset bool
	// Reload says the pipelines may be added, replaced and removed while Run runs (reload.go):
	// Run may then start with no pipeline, and it does not return while none is left (all were
	// removed), only once ctx is done. With pipelines left, Run still returns once each of them
	// has ended.
	Reload bool
}

// Run opens the checkpoint store under DataDir and runs every added pipeline until each has
// ended: its bounded source is exhausted and everything delivered, ctx is cancelled (a graceful
// stop: stop reading, drain, checkpoint), or it failed with an error a restart does not cure
// (see RestartPolicy: a transient failure restarts the pipeline). A paused pipeline has not
// ended. One pipeline's failure never stops the others. Run returns the failures of the
// pipelines it holds at the end (not of removed ones), joined; it may be called once. See
// RunOptions.Reload for pipelines added, replaced and removed while it runs.
func (s *Supervisor) Run(ctx context.Context, o RunOptions) error {
	s.mu.Lock()
	if s.ran {
		s.mu.Unlock()
		return errors.New("supervisor: Run was already called")
	}
	s.ran = true
	pipes := append([]*managed(nil), s.pipes...)
	s.mu.Unlock()
	if len(pipes) == 0 && !o.Reload {
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
			if err := store.Reset(p.name); err != nil {
				return err
			}
		}
	}
	stopRates := s.rates.start()
	defer stopRates()
	var wg sync.WaitGroup
	s.mu.Lock()
	s.loops, s.runCtx = &wg, ctx
	for _, m := range s.pipes { // with the pipelines added since the snapshot
		if !s.busy[m.name] { // a reload step launches what it installs
			s.launchLocked(m)
		}
	}
	s.mu.Unlock()
	stopped := ctx.Done()
	for {
		s.mu.Lock()
		// Done once no loop goes on and no reload step is under way, unless reloading keeps an
		// empty supervisor waiting for pipelines until ctx is done.
		done := s.live == 0 && s.pending == 0 && (len(s.pipes) > 0 || !o.Reload || ctx.Err() != nil)
		if done {
			s.runCtx, s.over = nil, true
			pipes = append(pipes[:0], s.pipes...)
		}
		changed := s.changed
		s.mu.Unlock()
		if done {
			break
		}
		select {
		case <-changed:
		case <-stopped:
			stopped = nil // the loops stop on their own; wait for them
		}
	}
	wg.Wait()
	errs := make([]error, len(pipes))
	for i, m := range pipes {
		m.mu.Lock()
		errs[i] = m.err
		m.mu.Unlock()
	}
	return errors.Join(errs...)
}

// launchLocked starts m's loop under a context of its own, so that a reload can stop this
// pipeline alone; s.mu is held.
func (s *Supervisor) launchLocked(m *managed) {
	ctx, stop := context.WithCancel(s.runCtx)
	l := &launch{stop: stop, done: make(chan struct{})}
	s.runs[m] = l
	s.live++
	s.loops.Add(1)
	go func() {
		defer s.loops.Done()
		_ = m.loop(ctx) // the error stays in m.err for Run
		stop()
		s.mu.Lock()
		s.live--
		if s.runs[m] == l {
			delete(s.runs, m)
		}
		close(l.done)
		s.notifyLocked()
		s.mu.Unlock()
	}()
}

// notifyLocked wakes Run to look at the pipelines again; s.mu is held.
func (s *Supervisor) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// Status is the state of one pipeline as the supervisor runs it.
type Status struct {
	Name string `json:"name"`
	pipeline.Status
	// Paused is true between Pause and Resume (also while the pipeline restarts).
	Paused bool `json:"paused"`
	// Restarts counts the runs started after the first one (on failure or on request).
	Restarts int `json:"restarts"`
	// BackoffSeconds is, while the pipeline waits to restart (state degraded), the length of
	// that wait; 0 otherwise.
	BackoffSeconds float64 `json:"backoff_seconds,omitempty"`
	// LastError is the error of the last failed run, if any.
	LastError string `json:"last_error,omitempty"`
}

// Status reports every added pipeline, in the order they were added. A pipeline is Ready while
// it runs (paused or not) with nothing stuck, and once it has finished.
func (s *Supervisor) Status() []Status {
	s.mu.Lock()
	pipes := append([]*managed(nil), s.pipes...)
	s.mu.Unlock()
	out := make([]Status, len(pipes))
	for i, m := range pipes {
		out[i] = m.status()
	}
	return out
}

// lookup returns the pipeline named name.
func (s *Supervisor) lookup(name string) (*managed, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m := s.findLocked(name); m != nil {
		return m, nil
	}
	return nil, fmt.Errorf("pipeline %q: %w", name, ErrUnknownPipeline)
}

// findLocked returns the pipeline named name, or nil; s.mu is held.
func (s *Supervisor) findLocked(name string) *managed {
	for _, m := range s.pipes {
		if m.name == name {
			return m
		}
	}
	return nil
}

// Pause stops reading the named pipeline's source: batches in flight are delivered and
// checkpointed, the components stay open, and the state becomes paused. The pause lasts until
// Resume, across restarts. Pausing a paused pipeline does nothing. It fails with
// ErrUnknownPipeline, or ErrNotRunning when Run is not running the pipeline.
func (s *Supervisor) Pause(name string) error {
	m, err := s.lookup(name)
	if err != nil {
		return err
	}
	if err := m.pause(); err != nil {
		return err
	}
	s.log.Info("pipeline paused", "pipeline", name)
	return nil
}

// Resume reads the named pipeline's source again after Pause. Resuming a pipeline that is not
// paused does nothing. It fails like Pause.
func (s *Supervisor) Resume(name string) error {
	m, err := s.lookup(name)
	if err != nil {
		return err
	}
	if err := m.resume(); err != nil {
		return err
	}
	s.log.Info("pipeline resumed", "pipeline", name)
	return nil
}

// Restart stops the named pipeline gracefully (stop reading, deliver what is in flight,
// checkpoint) and runs it again from its checkpoint; a pipeline waiting to restart after a
// failure restarts now, and one that ended (finished, failed) runs again while Run runs the
// others. It returns once the restart is requested. It fails with ErrUnknownPipeline,
// ErrNotRunning when Run is not running, or ErrReloading while Replace or Remove drains it.
func (s *Supervisor) Restart(name string) error {
	m, err := s.lookup(name)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.runCtx == nil || s.runCtx.Err() != nil || s.live == 0 {
		return fmt.Errorf("pipeline %q: %w", name, ErrNotRunning)
	}
	if s.busy[name] { // Replace or Remove is draining it: it must not be started again
		return fmt.Errorf("pipeline %q: %w", name, ErrReloading)
	}
	ended, err := m.restart()
	if err != nil {
		return err
	}
	if ended {
		s.launchLocked(m)
	}
	s.log.Info("pipeline restart requested", "pipeline", name)
	return nil
}

// Close releases what the supervisor holds: the components of pipelines that were added but never
// run, and the WASM host. Call it once, after Run has returned (or instead of Run).
func (s *Supervisor) Close(ctx context.Context) error {
	s.mu.Lock()
	pipes, ran := s.pipes, s.ran
	s.mu.Unlock()
	var errs []error
	if !ran {
		for _, m := range pipes {
			errs = append(errs, m.cur.Discard(ctx))
		}
	}
	errs = append(errs, s.wasm.close(ctx))
	s.m.Registry.Unregister(s.wasm)
	return errors.Join(errs...)
}

// ErrNoDeadLetterFile is returned by DeadLetterFile for a pipeline whose dead-letter sink is not
// a file of JSON envelopes (a file sink without encode:).
var ErrNoDeadLetterFile = errors.New("the pipeline has no file dead_letter sink")

// DeadLetterFile returns the path of the named pipeline's dead-letter file: the path of its
// dead_letter sink when that is of type file (relative paths are relative to the working
// directory, as the file sink takes them). It fails with ErrUnknownPipeline or
// ErrNoDeadLetterFile.
func (s *Supervisor) DeadLetterFile(name string) (string, error) {
	m, err := s.lookup(name)
	if err != nil {
		return "", err
	}
	dl := m.cfg.DeadLetter
	if dl == nil || dl.Type != "file" || dl.Config.String("path") == "" || dl.Encode != nil {
		return "", fmt.Errorf("pipeline %q: %w", name, ErrNoDeadLetterFile)
	}
	return dl.Config.String("path"), nil
}
