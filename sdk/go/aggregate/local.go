//go:build !wasip1

package aggregate

import (
	"errors"
	"fmt"

	"github.com/sluicehq/sluice/sdk/go/abi"
)

// Outcome is what the module decided for one record of a step frame.
type Outcome struct {
	Action Action
	Code   Code
	Reason string
	// Emitted holds the records emitted for the record, in order (EMIT only).
	Emitted []Emitted
}

// Emitted is one emitted record, as the host decodes it.
type Emitted struct {
	// Slot is the index of the slot the record was emitted for (RunEmit); the record's index in
	// its frame in a step.
	Slot int
	Port string
	// Key is the emitted key unless KeyInherited (the input's key in a step, the slot's in an
	// emit) or KeyNull.
	Key          []byte
	KeyInherited bool
	KeyNull      bool
	// Value is the emitted value unless ValueInherited (the input's value, ABI.md 13.4).
	Value          []byte
	ValueInherited bool
	// Time is the emitted time, or NoTimestamp when it is inherited (the input's in a step,
	// window_end - 1 in an emit).
	Time int64
	// Headers are the emitted headers unless HeadersInherited (the input's in a step, none in an
	// emit).
	Headers          [][2]string
	HeadersInherited bool
}

// StateChange is one StateOut of a result: the new state of a slot, or its deletion.
type StateChange struct {
	Slot   int
	Delete bool
	State  []byte
}

// StepResult is a decoded step result: one outcome per record and the slots' new states.
type StepResult struct {
	Outcomes []Outcome
	States   []StateChange
}

// EmitResult is a decoded emit result: the emitted records, in order, and new states (early
// updates only).
type EmitResult struct {
	Emitted []Emitted
	States  []StateChange
}

// MergeResult is a decoded merge result.
type MergeResult struct {
	States []StateChange
}

// Apply writes the changes into slots as the host keeps them: a new State, or nil for a deleted
// slot. Slots without a change keep theirs.
func Apply(slots []abi.Slot, changes []StateChange) {
	for _, c := range changes {
		if c.Delete {
			slots[c.Slot].State = nil
		} else {
			slots[c.Slot].State = c.State
		}
	}
}

// RunStep runs the registered module natively, without WebAssembly: it initialises it with config
// (a JSON object; nil means "{}"), encodes slots and records as one kind 2 frame with
// abi.PutAggFrame, runs tf_agg_step's code, and checks and decodes the result as the host does
// (abi.DecodeResult and abi.DecodeStates). States are bounded as a stage's default limits.state
// (abi.DefaultMaxState), or the module's StateLimit when larger. For unit tests of package main of
// a module; the WebAssembly build does not include it. Not safe for concurrent use.
func RunStep(config []byte, slots []abi.Slot, records []abi.AggRecord) (*StepResult, error) {
	res, err := run(config, abi.KindStep, records, slots)
	if err != nil {
		return nil, err
	}
	r := &StepResult{Outcomes: make([]Outcome, len(records))}
	actions, err := abi.DecodeResult(res, len(records), len(mod.ports), nil, func(i int, d *abi.Disposition) {
		o := Outcome{Code: d.Code, Reason: string(d.Reason)}
		for k := range d.Outputs {
			o.Emitted = append(o.Emitted, emitted(i, &d.Outputs[k]))
		}
		r.Outcomes[i] = o
	})
	if err != nil {
		return nil, err
	}
	for i, a := range actions {
		r.Outcomes[i].Action = a
	}
	if r.States, err = states(res, len(slots)); err != nil {
		return nil, err
	}
	return r, nil
}

// RunEmit is RunStep for a kind 4 frame (tf_agg_emit): set Final in the slots of a closing window.
// The result is decoded with abi.DecodeEmitResult and abi.DecodeStates.
func RunEmit(config []byte, slots []abi.Slot) (*EmitResult, error) {
	res, err := run(config, abi.KindEmit, nil, slots)
	if err != nil {
		return nil, err
	}
	r := &EmitResult{}
	if err := abi.DecodeEmitResult(res, len(slots), len(mod.ports), abi.MaxResultBytes, func(slot int, o *abi.Output) {
		r.Emitted = append(r.Emitted, emitted(slot, o))
	}); err != nil {
		return nil, err
	}
	if r.States, err = states(res, len(slots)); err != nil {
		return nil, err
	}
	return r, nil
}

// RunMerge is RunStep for a kind 3 frame (tf_agg_merge): each slot's Other is folded into its
// State.
func RunMerge(config []byte, slots []abi.Slot) (*MergeResult, error) {
	res, err := run(config, abi.KindMerge, nil, slots)
	if err != nil {
		return nil, err
	}
	if n := le.Uint32(res[8:]); n != 0 || le.Uint32(res[16:]) != 0 {
		return nil, fmt.Errorf("%w: a merge result has n_in %d and n_out %d, want 0", abi.ErrInvalidResult, n, le.Uint32(res[16:]))
	}
	r := &MergeResult{}
	if r.States, err = states(res, len(slots)); err != nil {
		return nil, err
	}
	return r, nil
}

// MetaJSON returns the metadata JSON the module reports through tf_meta.
func MetaJSON() []byte { return mod.meta }

func run(config []byte, kind uint32, recs []abi.AggRecord, slots []abi.Slot) ([]byte, error) {
	if config == nil {
		config = []byte("{}")
	}
	copy(reserve(uint32(len(config))), config)
	if initialize(uint32(len(config))) != 0 {
		return nil, errors.New("init: " + string(mod.lastErr))
	}
	frame := make([]byte, abi.AggFrameSize(recs, slots))
	n := abi.PutAggFrame(frame, kind, recs, slots)
	copy(reserve(uint32(n)), frame[:n])
	res, code := call(kind, uint32(n))
	if code != 0 {
		return nil, fmt.Errorf("%s: batch error %d: %s", kindNames[kind], code, mod.lastErr)
	}
	// Copy, as the host does: the next call reuses the buffer.
	return append([]byte(nil), res...), nil
}

func maxState() int {
	return max(abi.DefaultMaxState, mod.declaredLimit)
}

func states(res []byte, nSlots int) ([]StateChange, error) {
	var out []StateChange
	err := abi.DecodeStates(res, nSlots, maxState(), func(s abi.StateOut) {
		out = append(out, StateChange{Slot: int(s.Slot), Delete: s.Delete, State: append([]byte(nil), s.State...)})
	})
	return out, err
}

func emitted(slot int, x *abi.Output) Emitted {
	e := Emitted{Slot: slot, Port: mod.ports[x.Port], Time: x.TimeMs, KeyInherited: x.KeyInherit, KeyNull: x.KeyNull,
		ValueInherited: x.ValueInherit, HeadersInherited: x.HeadersInherit}
	if !x.KeyInherit && !x.KeyNull {
		e.Key = append([]byte{}, x.Key...)
	}
	if !x.ValueInherit {
		e.Value = append([]byte{}, x.Value...)
	}
	if x.Headers != nil {
		_ = abi.EachHeader(x.Headers, func(k, v []byte) { // checked by the decoder
			e.Headers = append(e.Headers, [2]string{string(k), string(v)})
		})
	}
	return e
}

// LocalSlot names a slot for Local: a key in a window. Start and End both 0 stand for a stage
// without windows (NoWindowStart and NoWindowEnd in the frames).
type LocalSlot struct {
	Key        string
	KeyNull    bool
	Start, End int64
}

func (s LocalSlot) abi(state []byte) abi.Slot {
	a := abi.Slot{Start: s.Start, End: s.End, KeyNull: s.KeyNull, State: state}
	if !s.KeyNull {
		a.Key = []byte(s.Key)
	}
	if s.Start == 0 && s.End == 0 {
		a.Start, a.End = abi.NoWindowStart, abi.NoWindowEnd
	}
	return a
}

// LocalRecord is a record for Local.Step: the slot it folds into and the record itself (a nil Key
// is a null key).
type LocalRecord struct {
	Slot  LocalSlot
	Key   []byte
	Value []byte
	Time  int64
}

// Local is a minimal host for tests over many frames: it keeps each slot's state between calls as
// the host does, and runs every frame through RunStep or RunEmit. Windows, timers and expiry are
// the test's: it names the slot of each record and says when to emit. The zero value is ready to
// use with the config "{}".
type Local struct {
	// Config is the module's config (nil: "{}").
	Config []byte
	states map[LocalSlot][]byte
}

// Step folds recs as one kind 2 frame, whose slots are the distinct slots of recs in order of
// first appearance, each with the state Local holds for it, and keeps the new states.
func (l *Local) Step(recs []LocalRecord) ([]Outcome, error) {
	if l.states == nil {
		l.states = map[LocalSlot][]byte{}
	}
	var slots []abi.Slot
	index := map[LocalSlot]int{}
	var names []LocalSlot
	frame := make([]abi.AggRecord, len(recs))
	for i, r := range recs {
		k, ok := index[r.Slot]
		if !ok {
			k = len(slots)
			index[r.Slot] = k
			names = append(names, r.Slot)
			slots = append(slots, r.Slot.abi(l.states[r.Slot]))
		}
		frame[i] = abi.AggRecord{Slot: uint32(k), Seq: uint64(i), TimeMs: r.Time, Key: r.Key, KeyNull: r.Key == nil, Value: r.Value}
	}
	res, err := RunStep(l.Config, slots, frame)
	if err != nil {
		return nil, err
	}
	l.apply(names, res.States)
	return res.Outcomes, nil
}

// Emit runs one kind 4 frame over slots (final: the windows close, and Local forgets the slots).
// An Emitted's Slot indexes slots.
func (l *Local) Emit(final bool, slots ...LocalSlot) ([]Emitted, error) {
	frame := make([]abi.Slot, len(slots))
	for i, s := range slots {
		frame[i] = s.abi(l.states[s])
		frame[i].Final = final
	}
	res, err := RunEmit(l.Config, frame)
	if err != nil {
		return nil, err
	}
	if final {
		for _, s := range slots {
			delete(l.states, s)
		}
	} else {
		l.apply(slots, res.States)
	}
	return res.Emitted, nil
}

// State returns the state Local holds for s (nil for none).
func (l *Local) State(s LocalSlot) []byte { return l.states[s] }

// Len returns the number of slots Local holds.
func (l *Local) Len() int { return len(l.states) }

func (l *Local) apply(names []LocalSlot, changes []StateChange) {
	if l.states == nil {
		l.states = map[LocalSlot][]byte{}
	}
	for _, c := range changes {
		if c.Delete {
			delete(l.states, names[c.Slot])
		} else {
			l.states[names[c.Slot]] = c.State
		}
	}
}
