package wasmhost

import (
	"github.com/sluicehq/sluice/sdk/go/abi"

	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"

	"github.com/sluicehq/sluice/runtime/pipeline"
	"github.com/sluicehq/sluice/runtime/transform"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// Defaults for StageConfig's zero values (ABI.md section 11): runtime/pipeline's, defined there once.
const (
	DefaultMemoryBytes = pipeline.DefaultTransformMemory
	DefaultTimeout     = pipeline.DefaultTransformTimeout
	MaxInstances       = pipeline.MaxTransformInstances
	defaultPages       = DefaultMemoryBytes / 65536
	initTimeout        = 30 * time.Second
)

// Host reject codes for records isolated as poison (ABI.md section 10.2).
const (
	CodeTrap          = abi.CodeTrap
	CodeDeadline      = abi.CodeDeadline
	CodeMemory        = abi.CodeMemory
	CodeGuestError    = abi.CodeGuestError
	CodeInvalidResult = abi.CodeInvalidResult
)

// Mode says how guest calls are interrupted.
type Mode string

// Modes.
const (
	// Metered runs a rewritten module (package meter) that counts its work and calls the host
	// each time a grant of about a millisecond of work is used up; the host then ends the call
	// when its deadline passed, ctx ended, the stage is closing or the call used its fuel budget
	// (StageConfig.Fuel). Within about 10% of Trusted's speed, and a running call lets the
	// process's garbage collection through at each refill. A module the rewriter cannot handle
	// cannot run in this mode (Module.Check says why). The default.
	Metered Mode = pipeline.ModeMetered
	// Strict runs guests interruptibly with wazero's own mechanism (WithCloseOnContextDone): the
	// per-batch deadline, ctx cancellation and Close stop a runaway guest, at the price of a call
	// into the host at every loop iteration (5-15x slower than Trusted on real validators).
	Strict Mode = pipeline.ModeStrict
	// Trusted runs guests without interruption checks: several times faster, but compiled guest
	// code cannot be preempted, so a running call delays the process's garbage collection until
	// it returns, and a guest that never returns freezes the whole process at the next
	// collection. A watchdog logs overruns and Stage.Err reports them when it can. Only for
	// modules you wrote or reviewed (runtime/RATIONALE.md, "WASM host").
	Trusted Mode = pipeline.ModeTrusted
)

// StageConfig configures one transform stage. Zero values take the defaults.
type StageConfig struct {
	// Name is the stage's name in the manifest, used in logs and errors.
	Name string
	// Config is the JSON object passed to tf_init. Empty means {}.
	Config []byte
	// MemoryBytes caps each instance's linear memory; rounded up to 64 KiB pages. Default 64 MiB.
	MemoryBytes int64
	// Timeout is the deadline of one guest call (one frame). Default 5s.
	Timeout time.Duration
	// Mode is Metered (default), Strict or Trusted.
	Mode Mode
	// Fuel, in metered mode, bounds the work of a guest call to Fuel units per record of its
	// frame (a unit is at most one WebAssembly instruction, or 16 bytes of a bulk memory
	// instruction): a call that needs more fails like one that overran its deadline, whatever
	// the machine's speed. 0 means no bound. Stats.Fuel says what the calls used.
	Fuel int64
	// Instances is the pool size. Default min(GOMAXPROCS, 4); at most 64.
	Instances int
	// StateBytes bounds one state blob of an aggregate module (ABI.md section 13.2). Default
	// abi.DefaultMaxState.
	StateBytes int
	// Logger receives the stage's and the guest's logs, e.g. scoped to the pipeline. Nil means
	// the host's logger. The stage adds transform, module and module_version attributes.
	Logger *slog.Logger
}

// Stats are a stage's cumulative counters.
type Stats struct {
	Batches          uint64 // Process calls that returned
	Frames           uint64 // successful guest calls
	RecordsIn        uint64 // input records of returned Process calls
	RecordsOut       uint64 // passed plus emitted records
	RecordsRejected  uint64 // rejected by the guest or isolated as poison
	Poison           uint64 // records rejected by the host after bisection
	Traps            uint64 // failed guest calls: traps and exits
	Timeouts         uint64 // failed guest calls: deadline exceeded
	MemoryFaults     uint64 // failed guest calls: memory limit reached
	GuestErrors      uint64 // failed guest calls: negative tf_process return
	InvalidResults   uint64 // failed guest calls: result frame broke the ABI
	InstanceRestarts uint64 // instances discarded and replaced
	Overruns         uint64 // trusted mode: calls that ran past their deadline
	Broken           uint64 // Process calls that failed with transform.ErrBroken
	Fuel             uint64 // metered mode: units the successful tf_process calls used
}

type stageStats struct {
	batches, frames, in, out, rejected, poison, traps, timeouts, memory, guestErrors, invalid, restarts, overruns, broken, fuel atomic.Uint64
}

// Stage is a transform stage backed by a pool of instances of one module. It implements
// runtime/transform.Stage. Process may be called concurrently from several goroutines: each call
// takes one instance from the pool per frame (waiting when all are busy), so at most Instances
// calls run at once. Instances are never shared between goroutines and never created per batch;
// a failed instance is closed at once and its replacement created by the next call that needs
// the slot.
type Stage struct {
	host    *Host
	name    string
	log     *slog.Logger
	glog    *guestLogger
	m       *Module
	group   *group
	cm      wazero.CompiledModule
	cfg     StageConfig
	cfgJSON []byte
	limit   uint64 // memory limit in bytes
	fcap    frameCap

	pool   chan *instance
	done   chan struct{}
	closed atomic.Bool
	stats  stageStats
	// dryCalls counts the failed guest calls in a row, with no successful call between them,
	// made while their batch had no successful call (dryCallLimit).
	dryCalls atomic.Int64
	// perRecord is a moving average of a frame's time per record, in nanoseconds (see
	// Process: a batch is split for several instances only into frames worth it).
	perRecord atomic.Int64
	// aggShardMin overrides the fewest records of a step frame split over two instances (tests).
	aggShardMin int
	// stepScratch holds *stepScratch: the slices a step call builds its frame from, reused.
	stepScratch sync.Pool

	mu      sync.Mutex
	all     map[*instance]struct{}
	metrics map[string]*atomic.Int64
	overrun error
}

var _ transform.Stage = (*Stage)(nil)

// NewStage validates cfg.Config against the module's config schema, then builds and pre-warms
// the pool: every instance is created, started (_initialize) and initialised (tf_init) before
// NewStage returns. It fails when the config is invalid, an instance cannot be created, or
// tf_init fails (with the guest's tf_last_error message). Creating one instance may take at most
// 30s or until ctx ends, whichever comes first; in trusted mode a guest that loops in
// _initialize or tf_init cannot be interrupted, so NewStage then does not return. Its errors, like
// Process's, do not name the stage: the caller does ("init: ...", "config does not match ...").
func (h *Host) NewStage(ctx context.Context, m *Module, cfg StageConfig) (*Stage, error) {
	if cfg.Name == "" {
		cfg.Name = m.meta.Name
	}
	fail := func(err error) (*Stage, error) { return nil, err } // the caller names the stage
	if len(strings.TrimSpace(string(cfg.Config))) == 0 {
		cfg.Config = []byte("{}")
	}
	if err := m.validateConfig(cfg.Config); err != nil {
		return fail(err)
	}
	if cfg.Mode == "" {
		cfg.Mode = pipeline.DefaultTransformMode
	}
	if !cfg.Mode.valid() {
		return fail(fmt.Errorf("mode %q: want metered, strict or trusted", cfg.Mode))
	}
	if cfg.Fuel < 0 || (cfg.Fuel > 0 && cfg.Mode != Metered) {
		return fail(fmt.Errorf("fuel %d: a positive number of units per record, in metered mode only", cfg.Fuel))
	}
	bin, key := m.bin, m.meta.Digest
	if cfg.Mode == Metered {
		if m.meterErr != nil {
			return fail(m.meterErr)
		}
		bin, key = m.metered, m.meta.Digest+"/metered"
	}
	if cfg.MemoryBytes <= 0 {
		cfg.MemoryBytes = DefaultMemoryBytes
	}
	pages := (cfg.MemoryBytes + 65535) / 65536
	if pages > 65536 {
		return fail(fmt.Errorf("memory limit %d bytes is over the 4 GiB of wasm32", cfg.MemoryBytes))
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Instances <= 0 {
		cfg.Instances = pipeline.DefaultTransformInstances()
	}
	if cfg.Instances > MaxInstances {
		return fail(fmt.Errorf("instances %d: at most %d", cfg.Instances, MaxInstances))
	}
	g, err := h.group(ctx, groupKey{pages: uint32(pages), strict: cfg.Mode == Strict})
	if err != nil {
		return fail(err)
	}
	cm, err := g.compile(ctx, key, bin)
	if err != nil {
		return fail(fmt.Errorf("compile: %w", err))
	}
	base := cfg.Logger
	if base == nil {
		base = h.log
	}
	log := base.With("transform", cfg.Name, "module", m.meta.Name, "module_version", m.meta.Version)
	s := &Stage{
		host: h, name: cfg.Name, log: log, glog: newGuestLogger(log), m: m, group: g, cm: cm, cfg: cfg,
		cfgJSON: cfg.Config, limit: uint64(pages) * 65536, fcap: frameCapFor(uint64(pages) * 65536),
		pool: make(chan *instance, cfg.Instances), done: make(chan struct{}),
		all: map[*instance]struct{}{}, metrics: map[string]*atomic.Int64{},
	}
	for i := 0; i < cfg.Instances; i++ {
		in, err := s.newReadyInstance(ctx)
		if err != nil {
			_ = s.Close(ctx)
			return fail(err)
		}
		s.pool <- in
	}
	if err := h.track(s); err != nil {
		_ = s.Close(ctx)
		return fail(err)
	}
	if cfg.Mode == Trusted {
		go s.watchdog()
	}
	return s, nil
}

// Name returns the stage's name.
func (s *Stage) Name() string { return s.name }

// Stats returns a snapshot of the stage's counters. Safe for concurrent use.
func (s *Stage) Stats() Stats {
	c := &s.stats
	return Stats{
		Batches: c.batches.Load(), Frames: c.frames.Load(), RecordsIn: c.in.Load(), RecordsOut: c.out.Load(),
		RecordsRejected: c.rejected.Load(), Poison: c.poison.Load(), Traps: c.traps.Load(),
		Timeouts: c.timeouts.Load(), MemoryFaults: c.memory.Load(), GuestErrors: c.guestErrors.Load(),
		InvalidResults: c.invalid.Load(), InstanceRestarts: c.restarts.Load(), Overruns: c.overruns.Load(),
		Broken: c.broken.Load(), Fuel: c.fuel.Load(),
	}
}

// GuestCounters returns the counters the guest reported through tf_host_v1.metric_add.
func (s *Stage) GuestCounters() map[string]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int64, len(s.metrics))
	for k, v := range s.metrics {
		out[k] = v.Load()
	}
	return out
}

// Err reports a trusted-mode call that ran past its deadline (its goroutine cannot be reclaimed;
// restart the process). Nil otherwise.
func (s *Stage) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.overrun
}

func (s *Stage) addGuestMetric(name string, delta int64) {
	if !metricName.MatchString(name) {
		return
	}
	s.mu.Lock()
	c := s.metrics[name]
	if c == nil {
		if len(s.metrics) >= maxGuestMetric {
			s.mu.Unlock()
			return
		}
		c = new(atomic.Int64)
		s.metrics[name] = c
	}
	s.mu.Unlock()
	c.Add(delta)
}

// Close closes every instance. In strict mode it interrupts running calls; in metered mode it
// makes them end at their next refill (within about a millisecond of guest work) and waits for
// them, until ctx ends; in trusted mode running calls finish on their own and their instances
// are closed when they return. Idempotent.
func (s *Stage) Close(ctx context.Context) error {
	if s.closed.Swap(true) {
		return nil
	}
	close(s.done)
	if s.host != nil {
		s.host.untrack(s)
	}
	s.mu.Lock()
	var victims, running []*instance
	for in := range s.all {
		if s.cfg.Mode == Strict || !in.busy.Load() {
			victims = append(victims, in)
			delete(s.all, in)
		} else {
			running = append(running, in)
		}
	}
	s.mu.Unlock()
	for _, in := range victims {
		_ = in.mod.Close(ctx)
	}
	if s.cfg.Mode == Metered {
		// The calls see the stage closed at their next refill; their instances are closed when
		// they return (release, discard).
		for _, in := range running {
			for in.busy.Load() && ctx.Err() == nil {
				time.Sleep(time.Millisecond)
			}
		}
	}
	s.glog.endCall(true)
	return nil
}

// frameCapFor keeps frames to a quarter of the instance's memory (at most 4 MiB), so that the
// input frame, the guest's result and its own data fit; a small memory cap gets smaller frames
// instead of failed tf_reserve calls.
func frameCapFor(limit uint64) frameCap {
	c := defaultFrameCap
	if q := int(limit / 4); q < c.maxBytes {
		c.maxBytes = max(q, 64<<10)
	}
	return c
}

// A frame Process splits off to run on another instance has at least parallelMinRecords
// records and, by the stage's recent time per record, at least parallelMinWork of guest work:
// handing a frame to another instance costs a goroutine, its scheduling and a merge of the
// results, and cheap frames run in parallel compete for the cores with the rest of the pipeline
// (the source, the sinks), which on a 2-core machine made a 1,024-record batch of a fast
// validator slower split in two than whole (runtime/RATIONALE.md, WASM host).
const (
	parallelMinRecords = 256
	parallelMinWork    = 500 * time.Microsecond
)

// minParallelFrame is the fewest records of a frame split off for another instance.
func (s *Stage) minParallelFrame() int {
	ns := s.perRecord.Load()
	if ns <= 0 {
		return parallelMinRecords
	}
	return max(parallelMinRecords, int(int64(parallelMinWork)/ns))
}

// notePerRecord folds the time of a frame of n records into the moving average.
func (s *Stage) notePerRecord(d time.Duration, n int) {
	if n <= 0 {
		return
	}
	x := max(1, int64(d)/int64(n))
	old := s.perRecord.Load()
	if old > 0 {
		x = old + (x-old)/8
	}
	s.perRecord.Store(x)
}

// Process runs the batch through the guest: frames of at most 4 MiB / 4,096 records, one guest
// call each. When the stage has several instances and the batch is large enough, the frames are
// cut smaller (each at least 256 records and, by the stage's recent time per record, 0.5 ms of
// guest work) and run on several instances at once; the result is in input order either way. A failed call (trap, deadline, memory limit, guest error,
// invalid result) discards the instance and is retried once on a fresh one; if it fails again the
// frame is bisected and records that fail alone come back as Rejected with a host code
// (CodeTrap, ...). An error means the batch could not be processed at all: ctx was cancelled, the
// stage was closed, no replacement instance could be created, or the module is broken (an error
// wrapping transform.ErrBroken: with no call of the batch succeeding, 8 single records spread
// evenly over it all failed alone; 64 failed calls in a row were made in batches without a
// successful call; or the batch's calls overran their deadline more than 16·(2+⌈log2 n⌉) times;
// see probes). Safe for concurrent use.
func (s *Stage) Process(ctx context.Context, batch []connector.Record) (transform.Result, error) {
	if s.m.meta.IsAggregate() {
		return transform.Result{}, fmt.Errorf("module %s is an aggregate module: it runs in an aggregate stage (ABI.md section 13), not as a transform", s.m.meta.Name)
	}
	if s.closed.Load() {
		return transform.Result{}, fmt.Errorf("stage: %w", ErrClosed)
	}
	var endsBuf [8]int
	ends := splitFrames(batch, s.fcap, endsBuf[:0])
	if k := s.cfg.Instances; k > 1 && len(ends) < k {
		if least := s.minParallelFrame(); len(batch) >= 2*least {
			ends = subdivide(ends, k, least)
		}
	}
	bf := newBatchFailures(batch, BatchOutputBytes(int64(s.limit)))
	var res transform.Result
	if len(ends) <= 1 || s.cfg.Instances == 1 {
		res.Actions = make([]transform.Action, 0, len(batch))
		lo := 0
		for _, hi := range ends {
			if err := s.processChunk(ctx, batch[lo:hi], lo, &res, bf); err != nil {
				return transform.Result{}, err
			}
			lo = hi
		}
	} else {
		parts := make([]transform.Result, len(ends))
		errs := make([]error, len(ends))
		sem := make(chan struct{}, s.cfg.Instances)
		var wg sync.WaitGroup
		lo := 0
		for i, hi := range ends {
			wg.Add(1)
			sem <- struct{}{}
			go func(i, lo, hi int) {
				defer func() { <-sem; wg.Done() }()
				parts[i].Actions = make([]transform.Action, 0, hi-lo)
				errs[i] = s.processChunk(ctx, batch[lo:hi], lo, &parts[i], bf)
			}(i, lo, hi)
			lo = hi
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				return transform.Result{}, err
			}
		}
		res.Actions = make([]transform.Action, 0, len(batch))
		for i := range parts {
			res.Actions = append(res.Actions, parts[i].Actions...)
			res.Emitted = append(res.Emitted, parts[i].Emitted...)
			res.Rejected = append(res.Rejected, parts[i].Rejected...)
		}
	}
	passed := 0
	for _, a := range res.Actions {
		if a == transform.Pass {
			passed++
		}
	}
	s.stats.batches.Add(1)
	s.stats.in.Add(uint64(len(batch)))
	s.stats.out.Add(uint64(passed + len(res.Emitted)))
	s.stats.rejected.Add(uint64(len(res.Rejected)))
	return res, nil
}

// subdivide cuts frames (given by their end indexes) into about k frames of at least least records.
func subdivide(ends []int, k, least int) []int {
	per := (k + len(ends) - 1) / len(ends)
	out := make([]int, 0, k+len(ends))
	lo := 0
	for _, hi := range ends {
		n := hi - lo
		p := max(1, min(per, n/least))
		for j := 1; j < p; j++ {
			out = append(out, lo+n*j/p)
		}
		out = append(out, hi)
		lo = hi
	}
	return out
}
