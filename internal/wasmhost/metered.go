package wasmhost

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"

	"github.com/sluicehq/sluice/internal/wasmhost/meter"
)

// Metered mode: the module is rewritten at load (package meter) to count its work in a global and
// call sluice_meter.refill when the count runs out; refill checks the call's deadline, its
// context, the stage's closing and the fuel budget, then grants the next amount or ends the call.
// The module is compiled without wazero's interruption checks.

// Grants: about refillTarget of guest work each, by the rate the instance ran at so far.
const (
	refillTarget = time.Millisecond
	minGrant     = 1 << 12
	maxGrant     = 1 << 26
)

// meterState is the metering of one instance; like the instance, used by one goroutine at a time.
type meterState struct {
	fuel api.MutableGlobal // the module's counter; nil while the module is being instantiated
	// ctx and deadline (unix nanos, 0 for ctx's own) of the calls running now
	ctx      context.Context
	deadline int64
	held     bool    // hold: the next calls keep ctx and deadline
	budget   int64   // fuel budget of the running call (0: none)
	granted  int64   // units granted to the running call
	last     int64   // unix nanos of the last refill in this call (0: none yet)
	lastLeft int64   // units granted at the last refill
	nsUnit   float64 // guest time per unit, as last measured
	refused  *refusedGrow
}

// refusedGrow is a memory.grow the host refused during the current call.
type refusedGrow struct {
	from, to, limit uint64 // bytes
}

func newMeterState() *meterState { return &meterState{nsUnit: 1} }

// hold makes the guest calls until release share ctx and a deadline (a frame's tf_reserve,
// tf_process and tf_last_error).
func (ms *meterState) hold(ctx context.Context, deadline time.Time) {
	ms.held, ms.ctx, ms.deadline = true, ctx, deadline.UnixNano()
}

func (ms *meterState) release() { ms.held, ms.ctx, ms.deadline = false, nil, 0 }

// arm starts a guest call: a fresh grant, and the fuel budget (0: none).
func (ms *meterState) arm(ctx context.Context, budget int64) {
	if !ms.held {
		ms.ctx, ms.deadline = ctx, 0
	}
	g := ms.grant(0)
	if budget > 0 {
		g = min(g, budget)
	}
	ms.budget, ms.granted, ms.last, ms.lastLeft = budget, g, 0, g
	ms.fuel.Set(uint64(g))
}

// used returns the units the current (or last) call used.
func (ms *meterState) used() int64 { return ms.granted - int64(ms.fuel.Get()) }

// grant is the next grant: refillTarget of work at the measured rate, and no more than half the
// time left before the deadline (remaining > 0) at one nanosecond a unit.
func (ms *meterState) grant(remaining int64) int64 {
	g := int64(float64(refillTarget) / ms.nsUnit)
	if remaining > 0 {
		g = min(g, remaining/2)
	}
	return max(minGrant, min(g, maxGrant))
}

// fuelError ends a call that used up its fuel budget.
type fuelError struct{ used, budget int64 }

func (e *fuelError) Error() string {
	return fmt.Sprintf("fuel exhausted: the call needed more than its %d units", e.budget)
}

var errStageClosing = errors.New("the stage is closing")

// refill is sluice_meter.refill: counter is the guest's counter, below zero. It returns the next
// grant or panics, which ends the call with the panic value as its error.
func (in *instance) refill(ctx context.Context, counter int64) int64 {
	ms := in.meter
	c := ms.ctx
	if c == nil {
		c = ctx
	}
	if err := c.Err(); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			panic(sys.NewExitError(sys.ExitCodeDeadlineExceeded))
		}
		panic(sys.NewExitError(sys.ExitCodeContextCanceled))
	}
	if in.stage.closed.Load() {
		panic(errStageClosing)
	}
	now := time.Now().UnixNano()
	dl := ms.deadline
	if dl == 0 {
		if d, ok := c.Deadline(); ok {
			dl = d.UnixNano()
		}
	}
	if dl != 0 && now >= dl {
		panic(sys.NewExitError(sys.ExitCodeDeadlineExceeded))
	}
	used := ms.granted - counter
	if ms.budget > 0 && used > ms.budget {
		panic(&fuelError{used: used, budget: ms.budget})
	}
	if spent := ms.lastLeft - counter; ms.last != 0 && spent > 0 {
		ms.nsUnit = max(float64(now-ms.last)/float64(spent), 1e-3)
	}
	var remaining int64
	if dl != 0 {
		remaining = dl - now
	}
	g := ms.grant(remaining)
	if ms.budget > 0 {
		g = min(g, ms.budget-used)
	}
	ms.granted, ms.last, ms.lastLeft = used+g, now, g
	return g
}

// memoryGrow is sluice_meter.memory_grow, which replaces memory.grow: it grows the caller's
// memory and notes a refusal, so that a failed call is known to have hit the memory limit.
func (in *instance) memoryGrow(m api.Module, delta uint32) uint32 {
	mem := m.Memory()
	old, ok := mem.Grow(delta)
	if ok {
		return old
	}
	if in != nil && in.meter != nil && in.meter.refused == nil {
		from := uint64(mem.Size())
		limit := in.stage.limit
		if mx, ok := mem.Definition().Max(); ok && uint64(mx)*65536 < limit {
			limit = uint64(mx) * 65536
		}
		in.meter.refused = &refusedGrow{from: from, to: from + uint64(delta)*65536, limit: limit}
	}
	return 0xffffffff
}

// instantiateMeter links the module meter.ImportModule into rt.
func instantiateMeter(ctx context.Context, rt wazero.Runtime) error {
	i32, i64 := api.ValueTypeI32, api.ValueTypeI64
	_, err := rt.NewHostModuleBuilder(meter.ImportModule).
		NewFunctionBuilder().WithName(meter.RefillName).WithParameterNames("counter").
		WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, m api.Module, stack []uint64) {
			in := instanceFrom(ctx)
			if in == nil || in.meter == nil {
				panic(errors.New("metered module called outside a metered stage"))
			}
			stack[0] = uint64(in.refill(ctx, int64(stack[0])))
		}), []api.ValueType{i64}, []api.ValueType{i64}).Export(meter.RefillName).
		NewFunctionBuilder().WithName(meter.GrowName).WithParameterNames("pages").
		WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, m api.Module, stack []uint64) {
			stack[0] = uint64(instanceFrom(ctx).memoryGrow(m, api.DecodeU32(stack[0])))
		}), []api.ValueType{i32}, []api.ValueType{i32}).Export(meter.GrowName).
		Instantiate(ctx)
	if err != nil {
		return fmt.Errorf("instantiate %s: %w", meter.ImportModule, err)
	}
	return nil
}
