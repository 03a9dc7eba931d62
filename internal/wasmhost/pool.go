package wasmhost

import (
	"github.com/sluicehq/sluice/sdk/go/abi"

	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/sluicehq/sluice/internal/wasmhost/meter"
)

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
	meter       *meterState   // metered mode
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
	if s.cfg.Mode == Metered {
		in.meter = newMeterState()
	}
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
	if in.meter != nil {
		fuel, ok := mod.ExportedGlobal(meter.FuelExport).(api.MutableGlobal)
		if !ok {
			_ = mod.Close(ctx)
			return nil, fmt.Errorf("metered module without its counter %q", meter.FuelExport)
		}
		in.meter.fuel = fuel
	}
	in.fns = map[string]api.Function{}
	for _, r := range requiredExport {
		in.fns[r.name] = mod.ExportedFunction(r.name)
	}
	in.process = in.fns["tf_process"]
	for _, name := range aggExports {
		if f := mod.ExportedFunction(name); f != nil {
			in.fns[name] = f
		}
	}
	v, err := in.call(ctx, "tf_abi_version")
	if err != nil {
		_ = mod.Close(ctx)
		return nil, fmt.Errorf("tf_abi_version: %s", describeCallError(err))
	}
	in.abi = uint32(v)
	if major, minor := in.abi>>16, in.abi&0xffff; major != abi.Major {
		_ = mod.Close(ctx)
		return nil, fmt.Errorf("%w %d.%d (host supports %d.%d)", ErrABIVersion, major, minor, abi.Major, abi.HostMinor)
	} else if minor > abi.HostMinor {
		_ = mod.Close(ctx)
		return nil, fmt.Errorf("%w: module needs ABI %d.%d, host supports %d.%d", ErrABIVersion, major, minor, abi.Major, abi.HostMinor)
	}
	return in, nil
}

// call runs a no-argument or one-argument export and returns its single result.
func (in *instance) call(ctx context.Context, name string, args ...uint64) (uint64, error) {
	if in.meter != nil {
		in.meter.arm(ctx, 0)
	}
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
	return cleanText(b, abi.MaxReasonBytes)
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
		defer s.glog.endCall(false)
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
