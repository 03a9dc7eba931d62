package wasmhost

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"

	"github.com/sluicehq/sluice/runtime/transform"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// Defaults for StageConfig's zero values (ABI.md section 11).
const (
	DefaultMemoryBytes = 64 << 20
	DefaultTimeout     = 5 * time.Second
	MaxInstances       = 64
	defaultPages       = DefaultMemoryBytes / 65536
	initTimeout        = 30 * time.Second
)

// Host reject codes for records isolated as poison (ABI.md section 10.2).
const (
	CodeTrap          uint16 = 0xFF01
	CodeDeadline      uint16 = 0xFF02
	CodeMemory        uint16 = 0xFF03
	CodeGuestError    uint16 = 0xFF04
	CodeInvalidResult uint16 = 0xFF05
)

// Mode says whether guest calls can be interrupted.
type Mode string

// Modes.
const (
	// Strict runs guests interruptibly (wazero WithCloseOnContextDone): the per-batch deadline,
	// ctx cancellation and Close stop a runaway guest. The default.
	Strict Mode = "strict"
	// Trusted runs guests without interruption checks: several times faster, but compiled guest
	// code cannot be preempted, so a running call delays the process's garbage collection until
	// it returns, and a guest that never returns freezes the whole process at the next
	// collection. A watchdog logs overruns and Stage.Err reports them when it can. Only for
	// modules you wrote or reviewed (runtime/RATIONALE.md, "WASM host").
	Trusted Mode = "trusted"
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
	// Mode is Strict (default) or Trusted.
	Mode Mode
	// Instances is the pool size. Default min(GOMAXPROCS, 4); at most 64.
	Instances int
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
}

type stageStats struct {
	batches, frames, in, out, rejected, poison, traps, timeouts, memory, guestErrors, invalid, restarts, overruns atomic.Uint64
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
// _initialize or tf_init cannot be interrupted, so NewStage then does not return.
func (h *Host) NewStage(ctx context.Context, m *Module, cfg StageConfig) (*Stage, error) {
	if cfg.Name == "" {
		cfg.Name = m.meta.Name
	}
	fail := func(err error) (*Stage, error) { return nil, fmt.Errorf("transform %q: %w", cfg.Name, err) }
	if len(strings.TrimSpace(string(cfg.Config))) == 0 {
		cfg.Config = []byte("{}")
	}
	if err := m.validateConfig(cfg.Config); err != nil {
		return fail(err)
	}
	if cfg.Mode == "" {
		cfg.Mode = Strict
	}
	if cfg.Mode != Strict && cfg.Mode != Trusted {
		return fail(fmt.Errorf("mode %q: want strict or trusted", cfg.Mode))
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
		cfg.Instances = min(runtime.GOMAXPROCS(0), 4)
	}
	if cfg.Instances > MaxInstances {
		return fail(fmt.Errorf("instances %d: at most %d", cfg.Instances, MaxInstances))
	}
	g, err := h.group(ctx, groupKey{pages: uint32(pages), strict: cfg.Mode == Strict})
	if err != nil {
		return fail(err)
	}
	cm, err := g.compile(ctx, m.meta.Digest, m.bin)
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

// Module returns the module the stage runs.
func (s *Stage) Module() *Module { return s.m }

// Ports returns the module's output port names; index 0 is "main".
func (s *Stage) Ports() []string { return s.m.Meta().Ports }

// Stats returns a snapshot of the stage's counters. Safe for concurrent use.
func (s *Stage) Stats() Stats {
	c := &s.stats
	return Stats{
		Batches: c.batches.Load(), Frames: c.frames.Load(), RecordsIn: c.in.Load(), RecordsOut: c.out.Load(),
		RecordsRejected: c.rejected.Load(), Poison: c.poison.Load(), Traps: c.traps.Load(),
		Timeouts: c.timeouts.Load(), MemoryFaults: c.memory.Load(), GuestErrors: c.guestErrors.Load(),
		InvalidResults: c.invalid.Load(), InstanceRestarts: c.restarts.Load(), Overruns: c.overruns.Load(),
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

// Close closes every instance. In strict mode it interrupts running calls; in trusted mode
// running calls finish on their own and their instances are closed when they return. Idempotent.
func (s *Stage) Close(ctx context.Context) error {
	if s.closed.Swap(true) {
		return nil
	}
	close(s.done)
	if s.host != nil {
		s.host.untrack(s)
	}
	s.mu.Lock()
	var victims []*instance
	for in := range s.all {
		if s.cfg.Mode == Strict || !in.busy.Load() {
			victims = append(victims, in)
			delete(s.all, in)
		}
	}
	s.mu.Unlock()
	for _, in := range victims {
		_ = in.mod.Close(ctx)
	}
	return nil
}

// instance is one guest instance; used by one goroutine at a time.
type instance struct {
	stage       *Stage
	mod         api.Module
	mem         api.Memory
	lm          *linearMemory // nil when the module defines no memory
	fns         map[string]api.Function
	process     api.Function
	abi         uint32
	inPtr       uint32
	inCap       uint32
	stack       [2]uint64
	oom         bool
	memBefore   uint32 // memory size when the current call started
	stderrFirst string // first stderr line of the current call, for trap reasons
	stdout      lineWriter
	stderr      lineWriter
	envCtx      context.Context // background context carrying the instance for host functions
	busy        atomic.Bool
	calls       atomic.Uint64 // trusted mode: guest calls started
	started     atomic.Int64  // trusted mode: start of the running call (unix nanos), 0 when idle
	reported    atomic.Uint64 // trusted mode: the last call reported as an overrun
}

// enter and exit bracket every guest call and host access to the instance's memory (see
// linearMemory); enter fails when the instance was closed.
func (in *instance) enter() error {
	if in.lm != nil && !in.lm.enter() {
		return fmt.Errorf("instance: %w", ErrClosed)
	}
	return nil
}

func (in *instance) exit() {
	if in.lm != nil {
		in.lm.exit()
	}
}

// instantiate creates and starts an instance and checks its ABI version; it does not run tf_init.
func (s *Stage) instantiate(ctx context.Context, cm wazero.CompiledModule) (_ *instance, err error) {
	in := &instance{stage: s}
	defer func() {
		// The memory is busy from its allocation on (see newLinearMemory). When instantiation
		// failed before wazero owned a module, nothing else will free it.
		if in.lm != nil {
			in.lm.exit()
			if in.mod == nil {
				in.lm.Free()
			}
		}
	}()
	in.stdout = lineWriter{g: s.glog, level: slog.LevelInfo, source: "stdout", oom: &in.oom}
	in.stderr = lineWriter{g: s.glog, level: slog.LevelWarn, source: "stderr", oom: &in.oom, first: &in.stderrFirst}
	in.envCtx = context.WithValue(context.Background(), callEnvKey{}, in)
	mc := wazero.NewModuleConfig().WithName("").WithStartFunctions("_initialize").
		WithStdout(&in.stdout).WithStderr(&in.stderr)
	mod, err := s.group.rt.InstantiateModule(withMemoryAllocator(context.WithValue(ctx, callEnvKey{}, in), in), cm, mc)
	in.stdout.flush()
	in.stderr.flush()
	if err != nil {
		return nil, fmt.Errorf("instantiate: %s", describeCallError(err))
	}
	in.mod = mod
	in.mem = mod.Memory()
	if in.mem == nil {
		_ = mod.Close(ctx)
		return nil, fmt.Errorf("%w: no exported memory", ErrNotTransform)
	}
	in.fns = map[string]api.Function{}
	for _, r := range requiredExport {
		in.fns[r.name] = mod.ExportedFunction(r.name)
	}
	in.process = in.fns["tf_process"]
	v, err := in.call(ctx, "tf_abi_version")
	if err != nil {
		_ = mod.Close(ctx)
		return nil, fmt.Errorf("tf_abi_version: %s", describeCallError(err))
	}
	in.abi = uint32(v)
	if major, minor := in.abi>>16, in.abi&0xffff; major != abiMajor {
		_ = mod.Close(ctx)
		return nil, fmt.Errorf("%w %d.%d (host supports %d.%d)", ErrABIVersion, major, minor, abiMajor, abiMinor)
	} else if minor > abiMinor {
		_ = mod.Close(ctx)
		return nil, fmt.Errorf("%w: module needs ABI %d.%d, host supports %d.%d", ErrABIVersion, major, minor, abiMajor, abiMinor)
	}
	return in, nil
}

// call runs a no-argument or one-argument export and returns its single result.
func (in *instance) call(ctx context.Context, name string, args ...uint64) (uint64, error) {
	copy(in.stack[:], args)
	err := in.fns[name].CallWithStack(context.WithValue(ctx, callEnvKey{}, in), in.stack[:])
	in.stdout.flush()
	in.stderr.flush()
	return in.stack[0], err
}

// callPtrLen calls an export returning ptrlen and copies the bytes out (at most max).
func (in *instance) callPtrLen(ctx context.Context, name string, max uint32) ([]byte, error) {
	v, err := in.call(ctx, name)
	if err != nil {
		return nil, errors.New(describeCallError(err))
	}
	return in.readPtrLen(v, max)
}

func (in *instance) readPtrLen(v uint64, max uint32) ([]byte, error) {
	ptr, n := uint32(v>>32), uint32(v)
	if n > max {
		return nil, fmt.Errorf("%d bytes, at most %d", n, max)
	}
	b, ok := in.mem.Read(ptr, n)
	if !ok {
		return nil, fmt.Errorf("range [%d,%d) outside guest memory", ptr, uint64(ptr)+uint64(n))
	}
	return append([]byte(nil), b...), nil
}

// lastError returns the guest's tf_last_error message, or a note why it could not be read.
func (in *instance) lastError(ctx context.Context) string {
	b, err := in.callPtrLen(ctx, "tf_last_error", 1<<20)
	if err != nil {
		return "(tf_last_error failed: " + err.Error() + ")"
	}
	if len(b) == 0 {
		return "(no message)"
	}
	return cleanText(b, maxReasonBytes)
}

// reserve makes sure the input buffer holds n bytes.
func (in *instance) reserve(ctx context.Context, n int) error {
	if uint32(n) <= in.inCap && in.inPtr != 0 {
		return nil
	}
	if n < 1 {
		n = 1
	}
	v, err := in.call(ctx, "tf_reserve", uint64(uint32(n)))
	if err != nil {
		return err
	}
	ptr := uint32(v)
	if ptr == 0 {
		return errGuest{code: -3, msg: fmt.Sprintf("tf_reserve(%d) returned 0", n)}
	}
	if _, ok := in.mem.Read(ptr, uint32(n)); !ok {
		return errGuest{code: -3, msg: fmt.Sprintf("tf_reserve(%d) returned %d, outside guest memory", n, ptr)}
	}
	in.inPtr, in.inCap = ptr, uint32(n)
	return nil
}

// errGuest is a failure the guest reported (or an unusable tf_reserve answer).
type errGuest struct {
	code int32
	msg  string
}

func (e errGuest) Error() string { return fmt.Sprintf("guest error %d: %s", e.code, e.msg) }

// newReadyInstance creates an instance and runs tf_init with the stage's config.
func (s *Stage) newReadyInstance(ctx context.Context) (*instance, error) {
	ictx, cancel := context.WithTimeout(ctx, initTimeout)
	defer cancel()
	in, err := s.instantiate(ictx, s.cm)
	if err != nil {
		return nil, err
	}
	err = func() error {
		if err := in.enter(); err != nil {
			return err
		}
		defer in.exit()
		if err := in.reserve(ictx, len(s.cfgJSON)); err != nil {
			return fmt.Errorf("init: %s", describeCallError(err))
		}
		view, _ := in.mem.Read(in.inPtr, uint32(len(s.cfgJSON)))
		copy(view, s.cfgJSON)
		rc, err := in.call(ictx, "tf_init", uint64(len(s.cfgJSON)))
		if err != nil {
			return fmt.Errorf("init: %s", describeCallError(err))
		}
		if int32(rc) != 0 {
			return fmt.Errorf("init: %s", in.lastError(ictx))
		}
		return nil
	}()
	if err != nil {
		_ = in.mod.Close(ctx)
		return nil, err
	}
	s.mu.Lock()
	if s.closed.Load() {
		s.mu.Unlock()
		_ = in.mod.Close(ctx)
		return nil, fmt.Errorf("stage: %w", ErrClosed)
	}
	s.all[in] = struct{}{}
	s.mu.Unlock()
	return in, nil
}

// acquire takes an instance from the pool. A slot emptied by a failed instance holds nil and is
// refilled here, so a replacement that cannot be created fails this call instead of shrinking
// the pool (which could leave later calls waiting forever).
func (s *Stage) acquire(ctx context.Context) (*instance, error) {
	var in *instance
	select {
	case in = <-s.pool:
	default:
		select {
		case in = <-s.pool:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-s.done:
			return nil, fmt.Errorf("stage: %w", ErrClosed)
		}
	}
	if s.closed.Load() {
		s.pool <- in
		return nil, fmt.Errorf("stage: %w", ErrClosed)
	}
	if in != nil {
		return in, nil
	}
	in, err := s.newReadyInstance(ctx)
	if err != nil {
		s.pool <- nil
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		s.log.Error("cannot create a wasm instance to replace a failed one", "err", err)
		return nil, fmt.Errorf("replace instance: %w", err)
	}
	return in, nil
}

func (s *Stage) release(in *instance) {
	if s.closed.Load() {
		s.mu.Lock()
		delete(s.all, in)
		s.mu.Unlock()
		_ = in.mod.Close(context.Background())
		return
	}
	s.pool <- in
}

// discard closes a failed instance and empties its pool slot; the next acquire refills it.
func (s *Stage) discard(old *instance) {
	s.mu.Lock()
	delete(s.all, old)
	s.mu.Unlock()
	_ = old.mod.Close(context.Background())
	s.stats.restarts.Add(1)
	s.pool <- nil
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

// failure is why one guest call failed; it becomes the reject of a poison record.
type failure struct {
	code   uint16
	reason string
}

// parallelMinRecords is the smallest frame Process splits off to run on another instance.
const parallelMinRecords = 256

// Process runs the batch through the guest: frames of at most 4 MiB / 4,096 records, one guest
// call each. When the stage has several instances and the batch has at least 512 records, the
// frames are cut smaller (at least 256 records each) and run on several instances at once; the
// result is in input order either way. A failed call (trap, deadline, memory limit, guest error,
// invalid result) discards the instance and is retried once on a fresh one; if it fails again the
// frame is bisected and records that fail alone come back as Rejected with a host code
// (CodeTrap, ...). An error means the batch could not be processed at all: ctx was cancelled, the
// stage was closed, or no replacement instance could be created. Safe for concurrent use.
func (s *Stage) Process(ctx context.Context, batch []connector.Record) (transform.Result, error) {
	if s.closed.Load() {
		return transform.Result{}, fmt.Errorf("transform %q: %w", s.name, ErrClosed)
	}
	var endsBuf [8]int
	ends := splitFrames(batch, s.fcap, endsBuf[:0])
	if k := s.cfg.Instances; k > 1 && len(batch) >= 2*parallelMinRecords && len(ends) < k {
		ends = subdivide(ends, k, parallelMinRecords)
	}
	var res transform.Result
	if len(ends) <= 1 || s.cfg.Instances == 1 {
		res.Actions = make([]transform.Action, 0, len(batch))
		lo := 0
		for _, hi := range ends {
			if err := s.processChunk(ctx, batch[lo:hi], lo, &res); err != nil {
				return transform.Result{}, fmt.Errorf("transform %q: %w", s.name, err)
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
				errs[i] = s.processChunk(ctx, batch[lo:hi], lo, &parts[i])
			}(i, lo, hi)
			lo = hi
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				return transform.Result{}, fmt.Errorf("transform %q: %w", s.name, err)
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

func (s *Stage) processChunk(ctx context.Context, recs []connector.Record, base int, out *transform.Result) error {
	f, err := s.runFrame(ctx, recs, base, out)
	if err != nil || f == nil {
		return err
	}
	s.log.Warn("wasm call failed; retrying the frame on a fresh instance", "records", len(recs), "reason", f.reason)
	if f, err = s.runFrame(ctx, recs, base, out); err != nil || f == nil {
		return err
	}
	s.log.Warn("wasm call failed twice; bisecting the frame to isolate poison records", "records", len(recs), "reason", f.reason)
	return s.bisect(ctx, recs, base, out, f)
}

func (s *Stage) bisect(ctx context.Context, recs []connector.Record, base int, out *transform.Result, f *failure) error {
	if len(recs) == 1 {
		out.Actions = append(out.Actions, transform.Reject)
		out.Rejected = append(out.Rejected, transform.Rejected{Input: base, Code: f.code, Reason: f.reason})
		s.stats.poison.Add(1)
		return nil
	}
	mid := len(recs) / 2
	for _, h := range [2][2]int{{0, mid}, {mid, len(recs)}} {
		part := recs[h[0]:h[1]]
		hf, err := s.runFrame(ctx, part, base+h[0], out)
		if err != nil {
			return err
		}
		if hf != nil {
			if err := s.bisect(ctx, part, base+h[0], out, hf); err != nil {
				return err
			}
		}
	}
	return nil
}

// runFrame runs one guest call on a pooled instance. It returns a failure when the guest failed
// (the instance has then been replaced) and an error when the call could not be made or ctx ended.
func (s *Stage) runFrame(ctx context.Context, recs []connector.Record, base int, out *transform.Result) (*failure, error) {
	in, err := s.acquire(ctx)
	if err != nil {
		return nil, err
	}
	f, err := in.runFrame(ctx, recs, base, out)
	if f == nil && err == nil {
		s.stats.frames.Add(1)
		s.release(in)
		return nil, nil
	}
	s.discard(in)
	if err != nil {
		return nil, err
	}
	if s.closed.Load() {
		// The call failed because Close (or Host.Close) closed the instance under it: not the
		// records' fault, so no bisection.
		return nil, fmt.Errorf("stage: %w", ErrClosed)
	}
	switch f.code {
	case CodeTrap:
		s.stats.traps.Add(1)
	case CodeDeadline:
		s.stats.timeouts.Add(1)
	case CodeMemory:
		s.stats.memory.Add(1)
	case CodeGuestError:
		s.stats.guestErrors.Add(1)
	case CodeInvalidResult:
		s.stats.invalid.Add(1)
	}
	return f, nil
}

func (in *instance) runFrame(ctx context.Context, recs []connector.Record, base int, out *transform.Result) (*failure, error) {
	s := in.stage
	if err := in.enter(); err != nil {
		return nil, err
	}
	defer in.exit()
	in.busy.Store(true)
	defer in.busy.Store(false)
	n := frameLen(recs)
	in.memBefore = in.mem.Size()
	in.stderrFirst = ""
	var cctx context.Context = in.envCtx
	if s.cfg.Mode == Strict {
		var cancel context.CancelFunc
		cctx, cancel = context.WithTimeout(context.WithValue(ctx, callEnvKey{}, in), s.cfg.Timeout)
		defer cancel()
	} else {
		call := in.calls.Add(1)
		start := time.Now()
		in.started.Store(start.UnixNano())
		defer func() {
			in.started.Store(0)
			if d := time.Since(start); d > s.cfg.Timeout {
				s.noteOverrun(in, call, d)
			}
		}()
	}
	if err := in.reserve(cctx, n); err != nil {
		return in.classify(ctx, err)
	}
	view, _ := in.mem.Read(in.inPtr, uint32(n))
	encodeFrame(view, recs)
	in.stack[0] = uint64(uint32(n))
	err := in.process.CallWithStack(cctx, in.stack[:])
	if in.stdout.buf != nil || in.stderr.buf != nil {
		in.stdout.flush()
		in.stderr.flush()
	}
	if err != nil {
		return in.classify(ctx, err)
	}
	v := in.stack[0]
	if uint32(v>>32) == 0xFFFFFFFF {
		return in.classify(ctx, errGuest{code: int32(uint32(v)), msg: in.lastError(cctx)})
	}
	ptr, rlen := uint32(v>>32), uint32(v)
	if rlen > maxResultBytes {
		return &failure{code: CodeInvalidResult, reason: fmt.Sprintf("invalid result frame: %d bytes, at most %d", rlen, maxResultBytes)}, nil
	}
	res, ok := in.mem.Read(ptr, rlen)
	if !ok {
		return &failure{code: CodeInvalidResult, reason: fmt.Sprintf("invalid result frame: [%d,%d) outside guest memory", ptr, uint64(ptr)+uint64(rlen))}, nil
	}
	if err := decodeResult(res, recs, base, s.m.meta.Ports, out); err != nil {
		return &failure{code: CodeInvalidResult, reason: err.Error()}, nil
	}
	return nil, nil
}

// classify turns a failed call into a failure (the guest's fault) or an error (ctx ended).
func (in *instance) classify(ctx context.Context, err error) (*failure, error) {
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	var ge errGuest
	if errors.As(err, &ge) {
		if in.nearMemoryLimit() {
			return &failure{code: CodeMemory, reason: "memory limit exceeded"}, nil
		}
		return &failure{code: CodeGuestError, reason: cleanText([]byte(ge.Error()), maxReasonBytes)}, nil
	}
	var ee *sys.ExitError
	if errors.As(err, &ee) {
		switch ee.ExitCode() {
		case sys.ExitCodeDeadlineExceeded:
			return &failure{code: CodeDeadline, reason: "deadline exceeded"}, nil
		case sys.ExitCodeContextCanceled:
			return nil, fmt.Errorf("guest call cancelled: %w", context.Canceled)
		}
	}
	desc := describeCallError(err)
	if in.nearMemoryLimit() || strings.Contains(strings.ToLower(desc), "out of memory") {
		return &failure{code: CodeMemory, reason: "memory limit exceeded"}, nil
	}
	if in.stderrFirst != "" {
		desc += " (stderr: " + in.stderrFirst + ")"
	}
	return &failure{code: CodeTrap, reason: cleanText([]byte(desc), maxReasonBytes)}, nil
}

// nearMemoryLimit says whether a failure is best explained by the memory cap. wazero refuses a
// memory.grow past the cap without telling the host, and the guest then fails in its own way (Go
// prints "out of memory" and exits, C and Rust abort), so this is a heuristic: the guest said it
// ran out of memory, or its memory grew during the failed call to at least half the cap.
func (in *instance) nearMemoryLimit() bool {
	if in.oom {
		return true
	}
	limit := in.stage.limit
	if max, ok := in.mem.Definition().Max(); ok && uint64(max)*65536 < limit {
		limit = uint64(max) * 65536
	}
	size := uint64(in.mem.Size())
	return size > uint64(in.memBefore) && size >= limit/2
}

// describeCallError renders a wazero call error as one line: "wasm trap: out of bounds memory
// access", "abort: ... at f.ts:1:2", "guest exited with code 2", "deadline exceeded".
func describeCallError(err error) string {
	var ee *sys.ExitError
	if errors.As(err, &ee) {
		switch ee.ExitCode() {
		case sys.ExitCodeDeadlineExceeded:
			return "deadline exceeded"
		case sys.ExitCodeContextCanceled:
			return "cancelled"
		}
		return fmt.Sprintf("guest exited with code %d", ee.ExitCode())
	}
	var ae *abortError
	if errors.As(err, &ae) {
		return ae.msg
	}
	var ge errGuest
	if errors.As(err, &ge) {
		return ge.Error()
	}
	msg := err.Error()
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i]
	}
	msg = strings.TrimSpace(msg)
	msg = strings.TrimSuffix(msg, " (recovered by wazero)")
	if rest, ok := strings.CutPrefix(msg, "wasm error: "); ok {
		if strings.HasPrefix(rest, "abort: ") {
			return rest
		}
		return "wasm trap: " + rest
	}
	return msg
}

// noteOverrun records a trusted-mode call that ran past its deadline, once per call.
func (s *Stage) noteOverrun(in *instance, call uint64, running time.Duration) {
	if in.reported.Swap(call) == call {
		return
	}
	s.stats.overruns.Add(1)
	s.mu.Lock()
	s.overrun = fmt.Errorf("transform %q: a trusted-mode guest call overran its %s deadline; it cannot be interrupted, so run the module in strict mode", s.name, s.cfg.Timeout)
	s.mu.Unlock()
	s.log.Error("trusted-mode guest call overran its deadline; it cannot be interrupted", "deadline", s.cfg.Timeout, "running_for", running.Round(time.Millisecond))
}

// watchdog reports trusted-mode calls that overrun their deadline while they run; calls that
// overran are also reported when they return. It cannot stop them, and it cannot run at all while
// a garbage collection waits for a running trusted call (see runtime/RATIONALE.md).
func (s *Stage) watchdog() {
	tick := min(max(s.cfg.Timeout/4, 10*time.Millisecond), time.Second)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case now := <-t.C:
			s.mu.Lock()
			var late []*instance
			for in := range s.all {
				if st := in.started.Load(); st != 0 && now.UnixNano()-st > int64(s.cfg.Timeout) {
					late = append(late, in)
				}
			}
			s.mu.Unlock()
			for _, in := range late {
				if st := in.started.Load(); st != 0 {
					s.noteOverrun(in, in.calls.Load(), time.Duration(now.UnixNano()-st))
				}
			}
		}
	}
}
