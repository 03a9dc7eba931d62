package aggregate

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strconv"

	"github.com/sluicehq/sluice/sdk/go/abi"
)

var le = binary.LittleEndian

type errorString string

func (e errorString) Error() string { return string(e) }

func itoa(n int) string { return strconv.Itoa(n) }

func panicError(prefix string, p any) error {
	switch v := p.(type) {
	case error:
		return errors.New(prefix + ": panic: " + v.Error())
	case string:
		return errors.New(prefix + ": panic: " + v)
	}
	return errors.New(prefix + ": panic")
}

// pooledState is the largest per-slot state buffer kept from one frame to the next; larger ones
// are left to the garbage collector, so that the buffers kept stay small whatever the states.
const pooledState = 1 << 10

// module is the guest's single instance state. A WebAssembly instance runs one call at a time, so
// it needs no locks. The buffers live here, referenced from a package-level variable, so the Go
// garbage collector (which does not move objects) keeps them at a fixed address while the host
// writes into and reads from them.
type module struct {
	registered bool
	meta       []byte
	ports      []string
	funcs      Funcs
	onInit     func() error
	stateLimit int // the bound Accumulate, Merge and Emit are held to
	// declaredLimit is what StateLimit set, 0 without it (the local runner bounds states with it
	// when it is over the stage default).
	declaredLimit int

	config  []byte
	in      []byte // the tf_reserve buffer
	out     []byte // the result frame buffer, reused for every call
	lastErr []byte
	err     error // a failure of the current call found by an Emit (unknown port)

	frame   input
	slots   []Slot
	state   [][]byte // per slot of the frame: its current state (a view of bufs[i] while touched)
	bufs    [][]byte // per slot index: a buffer the SDK owns, reused across frames
	touched []bool   // per slot of the frame: state holds the slot's current state
	disp    []byte   // the dispositions of a step, written in place, copied into out at the end
	outs    []byte   // the OutDescs, written as they come, copied into out at the end
	step    Step
	emitter Emitter
}

var mod module

const maxReserve = 1 << 30

// reserve makes sure the input buffer holds at least n bytes and returns it (nil when it cannot).
func reserve(n uint32) []byte {
	if uint64(n) > maxReserve {
		return nil
	}
	if n == 0 {
		n = 1
	}
	if uint32(cap(mod.in)) < n {
		c := (uint64(n) + 0xFFFF) &^ 0xFFFF // whole 64 KiB steps: fewer reserve calls
		mod.in = make([]byte, c)
	}
	mod.in = mod.in[:cap(mod.in)]
	return mod.in
}

func setLastError(err error) {
	msg := err.Error()
	if len(msg) > abi.MaxReasonBytes {
		msg = msg[:abi.MaxReasonBytes]
	}
	mod.lastErr = append(mod.lastErr[:0], msg...)
}

// initialize handles tf_init with the config already in the input buffer. It returns 0 or a
// non-zero error code with the message in lastErr.
func initialize(n uint32) (code int32) {
	mod.lastErr = mod.lastErr[:0]
	if uint64(n) > uint64(len(mod.in)) {
		setLastError(errors.New("init: config length " + itoa(int(n)) + " exceeds the reserved " + itoa(len(mod.in)) + " bytes"))
		return 1
	}
	mod.config = append(mod.config[:0:0], mod.in[:n]...)
	if !mod.registered {
		setLastError(errors.New("init: no aggregation registered (call aggregate.Register in an init function)"))
		return 1
	}
	if mod.onInit != nil {
		defer func() {
			if p := recover(); p != nil {
				setLastError(panicError("init", p))
				code = 1
			}
		}()
		if err := mod.onInit(); err != nil {
			setLastError(err)
			return 1
		}
	}
	return 0
}

// process handles tf_process: an aggregate module has no plain records to process.
func process() int32 {
	setLastError(errors.New("aggregate module: frames of kind 1 are not supported; it takes tf_agg_step, tf_agg_emit and tf_agg_merge (ABI 1.1)"))
	return abi.ErrUnsupported
}

var kindNames = [...]string{abi.KindStep: "step", abi.KindMerge: "merge", abi.KindEmit: "emit"}

// call handles tf_agg_step (kind 2), tf_agg_merge (kind 3) and tf_agg_emit (kind 4) with a frame
// of n bytes in the input buffer. It returns the result frame, or a negative batch error code with
// the message in lastErr.
func call(kind uint32, n uint32) (res []byte, code int32) {
	m := &mod
	m.lastErr = m.lastErr[:0]
	name := kindNames[kind]
	if uint64(n) > uint64(len(m.in)) {
		setLastError(errors.New(name + ": frame length " + itoa(int(n)) + " exceeds the reserved " + itoa(len(m.in)) + " bytes"))
		return nil, abi.ErrUnsupported
	}
	if !m.registered {
		setLastError(errors.New(name + ": no aggregation registered"))
		return nil, abi.ErrGeneric
	}
	if err := m.frame.decode(m.in[:n]); err != nil {
		setLastError(errors.New(name + ": " + err.Error()))
		return nil, abi.ErrUnsupported
	}
	if m.frame.kind != kind {
		setLastError(errors.New(name + ": unsupported input frame: kind " + itoa(int(m.frame.kind)) + ", want " + itoa(int(kind))))
		return nil, abi.ErrUnsupported
	}
	if kind == abi.KindStep && m.frame.n == 0 || kind != abi.KindStep && m.frame.n != 0 || len(m.frame.slots) == 0 {
		setLastError(errors.New(name + ": unsupported input frame: " + itoa(m.frame.n) + " records, " + itoa(len(m.frame.slots)) + " slots"))
		return nil, abi.ErrUnsupported
	}
	if kind == abi.KindMerge && m.funcs.Merge == nil {
		setLastError(errors.New("merge: the module has no Merge (session windows need one)"))
		return nil, abi.ErrGeneric
	}
	m.reset()
	defer func() {
		if p := recover(); p != nil {
			setLastError(panicError(name, p))
			res, code = nil, abi.ErrGeneric
		}
		m.release()
	}()
	var err error
	switch kind {
	case abi.KindStep:
		err = m.runStep()
	case abi.KindMerge:
		err = m.runMerge()
	case abi.KindEmit:
		err = m.runEmit()
	}
	if err == nil {
		err = m.err
	}
	if err != nil {
		setLastError(errors.New(name + ": " + err.Error()))
		if _, ok := err.(frameError); ok {
			return nil, abi.ErrUnsupported
		}
		return nil, abi.ErrGeneric
	}
	return m.out, 0
}

// reset prepares the per-frame buffers for the decoded frame.
func (m *module) reset() {
	ns := len(m.frame.slots)
	m.err = nil
	m.out = append(m.out[:0], make([]byte, abi.OutHeaderSize)...)
	m.outs = m.outs[:0]
	m.disp = m.disp[:0]
	if cap(m.slots) < ns {
		m.slots = make([]Slot, ns)
		m.state = make([][]byte, ns)
		m.touched = make([]bool, ns)
	}
	m.slots, m.state, m.touched = m.slots[:ns], m.state[:ns], m.touched[:ns]
	clear(m.touched)
	for len(m.bufs) < ns {
		m.bufs = append(m.bufs, nil)
	}
	for i := range m.frame.slots {
		s := &m.frame.slots[i]
		d := &m.slots[i]
		*d = Slot{Start: s.Start, End: s.End, Final: s.Final, KeyNull: s.KeyNull, Index: i}
		if !s.KeyNull {
			d.Key = s.Key[:len(s.Key):len(s.Key)]
		}
	}
}

// release drops the references the frame left and the state buffers too large to keep.
func (m *module) release() {
	for i := range m.state {
		if b := m.bufs[i]; cap(b) > pooledState {
			m.bufs[i] = nil
		}
		m.state[i] = nil
		m.slots[i] = Slot{}
	}
	m.step = Step{}
	m.emitter.Slot, m.emitter.m = nil, nil
}

// open makes slot i's state its own buffer, a copy of the frame's state, on first use in a frame.
func (m *module) open(i int) []byte {
	if !m.touched[i] {
		m.touched[i] = true
		m.bufs[i] = append(m.bufs[i][:0], m.frame.slots[i].State...)
		m.state[i] = m.bufs[i]
	}
	return m.state[i]
}

// keep makes st, what a function returned for slot i, the slot's current state: adopted when it
// is the slot's buffer (possibly re-sliced within its capacity), copied into it otherwise.
func (m *module) keep(i int, st []byte) {
	b := m.bufs[i]
	if len(st) > 0 && cap(b) > 0 && &st[:1][0] == &b[:1][0] {
		m.state[i] = st
		return
	}
	m.bufs[i] = append(b[:0], st...)
	m.state[i] = m.bufs[i]
}

func (m *module) runStep() error {
	n := m.frame.n
	if cap(m.disp) < n*abi.DispSize {
		m.disp = make([]byte, n*abi.DispSize)
	}
	m.disp = m.disp[:n*abi.DispSize]
	s := &m.step
	*s = Step{m: m}
	acc := m.funcs.Accumulate
	for i := 0; i < n; i++ {
		slot, err := m.frame.record(i, &s.Record)
		if err != nil {
			return err
		}
		s.Slot, s.action = &m.slots[slot], abi.Drop
		prev := m.open(slot)
		st, err := acc(s, prev)
		if err != nil {
			code, reason := rejectOf(err)
			s.Reject(code, reason)
		}
		if s.action != abi.Reject {
			if len(st) > m.stateLimit {
				s.Reject(CodeOutOfRange, "aggregate: the slot's state would grow to "+itoa(len(st))+
					" bytes, over the module's limit of "+itoa(m.stateLimit)+" bytes")
				m.state[slot] = prev
			} else {
				m.keep(slot, st)
			}
		} else {
			m.state[slot] = prev
		}
		p := m.disp[i*abi.DispSize : (i+1)*abi.DispSize : (i+1)*abi.DispSize]
		var code uint16
		var a, b uint32
		switch s.action {
		case abi.Reject:
			reason := s.reason
			if len(reason) > abi.MaxReasonBytes {
				reason = reason[:abi.MaxReasonBytes]
			}
			code, a, b = s.code, uint32(len(m.out)), uint32(len(reason))
			m.out = append(m.out, reason...)
			s.reason = ""
		case abi.Emit:
			a, b = uint32(s.outMark), uint32(len(m.outs)/abi.DescSize-s.outMark)
		}
		p[0], p[1] = byte(s.action), 0
		le.PutUint16(p[2:], code)
		le.PutUint32(p[4:], a)
		le.PutUint32(p[8:], b)
	}
	m.finish(n, false)
	return nil
}

func (m *module) runMerge() error {
	for i := range m.frame.slots {
		o := m.frame.slots[i].Other
		if len(o) == 0 {
			return errors.New("slot " + itoa(i) + " has no other state")
		}
		st, err := m.funcs.Merge(&m.slots[i], m.open(i), o[:len(o):len(o)])
		if err != nil {
			return err
		}
		if len(st) > m.stateLimit {
			return errors.New("slot " + itoa(i) + ": the merged state has " + itoa(len(st)) + " bytes, over the module's limit of " + itoa(m.stateLimit) + " bytes")
		}
		m.keep(i, st)
	}
	m.finish(0, true)
	return nil
}

func (m *module) runEmit() error {
	e := &m.emitter
	for i := range m.frame.slots {
		st := m.frame.slots[i].State
		e.Slot, e.m, e.setState = &m.slots[i], m, false
		if err := m.funcs.Emit(e, st[:len(st):len(st)]); err != nil {
			return err
		}
		if e.setState {
			if len(e.state) > m.stateLimit {
				return errors.New("slot " + itoa(i) + ": the new state has " + itoa(len(e.state)) + " bytes, over the module's limit of " + itoa(m.stateLimit) + " bytes")
			}
			m.open(i)
			m.keep(i, e.state)
		}
	}
	m.finish(0, false)
	return nil
}

// finish writes the new states, the dispositions of n records, the output descriptors and the
// StateOuts after the data in the result buffer, then the header (ABI.md sections 7 and 13.3).
// Tables are 8-byte aligned. A slot used in the frame gets a StateOut when its state differs from
// the frame's (its bytes, or a delete when it became empty; nothing for a new slot that stayed
// empty), and in a merge (all) always: the host loses the other state of a slot without one.
func (m *module) finish(n int, all bool) {
	nState := 0
	stateStart := len(m.out)
	for i := range m.state {
		if !m.touched[i] {
			continue
		}
		st := m.state[i]
		if !all && bytes.Equal(st, m.frame.slots[i].State) {
			m.touched[i] = false // unchanged: the host keeps the state the frame carried
			continue
		}
		nState++
		m.out = append(m.out, st...)
	}
	m.align()
	dispOff := len(m.out)
	m.out = append(m.out, m.disp[:n*abi.DispSize]...)
	m.align()
	outOff := len(m.out)
	m.out = append(m.out, m.outs...)
	stateOff := len(m.out)
	pos := uint32(stateStart)
	for i := range m.state {
		if !m.touched[i] {
			continue
		}
		st := m.state[i]
		m.out = le.AppendUint32(m.out, uint32(i))
		if len(st) == 0 {
			m.out = le.AppendUint32(m.out, abi.StateDelete)
			m.out = le.AppendUint64(m.out, 0)
			continue
		}
		m.out = le.AppendUint32(m.out, 0)
		m.out = le.AppendUint32(m.out, pos)
		m.out = le.AppendUint32(m.out, uint32(len(st)))
		pos += uint32(len(st))
	}
	if nState == 0 {
		stateOff = 0
	}
	h := m.out[:abi.OutHeaderSize]
	le.PutUint32(h[0:], abi.OutMagic)
	le.PutUint16(h[4:], abi.OutHeaderSize)
	le.PutUint16(h[6:], abi.DescSize)
	le.PutUint32(h[8:], uint32(n))
	le.PutUint32(h[12:], uint32(dispOff))
	le.PutUint32(h[16:], uint32(len(m.outs)/abi.DescSize))
	le.PutUint32(h[20:], uint32(outOff))
	le.PutUint32(h[24:], uint32(nState))
	le.PutUint32(h[28:], uint32(stateOff))
}

func (m *module) align() {
	for len(m.out)%8 != 0 {
		m.out = append(m.out, 0)
	}
}
