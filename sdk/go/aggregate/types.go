package aggregate

import (
	"strconv"

	"github.com/sluicehq/sluice/sdk/go/abi"
)

// NoTimestamp is the time of a record that carries none (INT64_MIN).
const NoTimestamp int64 = abi.NoTimestamp

// Bounds of the slot of a stage without windows (one slot per key).
const (
	NoWindowStart int64 = abi.NoWindowStart
	NoWindowEnd   int64 = abi.NoWindowEnd
)

// Action is the disposition of one record (ABI.md section 7.2): the ABI's action type.
type Action = abi.Action

// Slot is one key in one window. Its byte slices are views into the input frame, valid during
// the call only (copy what you keep) and not to be written.
type Slot struct {
	// Key is the slot's key: the value at the stage's key path, or the record key (ABI.md 13.5).
	// Nil when KeyNull.
	Key     []byte
	KeyNull bool
	// Start (inclusive) and End (exclusive) bound the window in Unix ms; NoWindowStart and
	// NoWindowEnd when the stage has no window.
	Start, End int64
	// Final is set in Emit when the window closes (the host deletes the slot after the call);
	// clear for an early update, and in Accumulate and Merge.
	Final bool
	// Index is the slot's position in its frame.
	Index int
}

// Windowed reports whether the slot belongs to a window (false for a stage without one).
func (s *Slot) Windowed() bool { return s.Start != NoWindowStart || s.End != NoWindowEnd }

// Record is a read-only view of one record of a step frame, valid during the call only.
type Record struct {
	// Key is the record key; nil when KeyNull.
	Key     []byte
	KeyNull bool
	// Value is the record value.
	Value []byte
	// Time is the record's event time in Unix ms (NoTimestamp for none).
	Time int64
	// Seq is the index of the input record in its batch: copies of one record (hopping windows,
	// one per window) share it.
	Seq uint64
	// Index is the record's position in its frame.
	Index int
}

// Header is one header of an emitted record.
type Header struct {
	Key, Value []byte
}

// Out describes an emitted record fully, for EmitRecord. The zero value (besides Value) goes to
// port main and inherits: in a step, the input record's key, time and headers; in an emit, the
// slot's key and the time window_end - 1, without headers.
type Out struct {
	// Port names the output port; "" means main.
	Port string
	// Key is the record key; nil inherits (see above), unless KeyNull is set.
	Key []byte
	// KeyNull emits a null (absent) key.
	KeyNull bool
	// Value is the record value.
	Value []byte
	// Time replaces the inherited time (Unix ms) when HasTime is set.
	Time    int64
	HasTime bool
	// Headers replace the inherited headers when non-nil; an empty non-nil slice emits none.
	Headers []Header
}

// emitOut appends the key, headers and value (what build appends; nil inherits the input's value)
// of o to the result frame under construction and records its descriptor, with seq the input
// record's index (step) or the slot's (emit). Shared by Step and Emitter: a nil Key and nil
// Headers are written as Inherit, which a step result reads as the input's and an emit result as
// the slot's key and no headers. An unknown port fails the call.
func (m *module) emitOut(seq uint32, o *Out, build func(dst []byte) []byte) bool {
	p, ok := m.portIndex(o.Port)
	if !ok {
		if m.err == nil {
			m.err = errorString("emit: unknown port " + strconv.Quote(o.Port) + " (declare it in Meta.Ports)")
		}
		return false
	}
	d := abi.Desc{TimeMs: abi.NoTimestamp, Seq: uint64(seq), Port: p, KeyLen: abi.Inherit, HdrLen: abi.Inherit}
	switch {
	case o.KeyNull:
		d.KeyLen, d.Flags = 0, abi.FlagKeyNull
	case o.Key != nil:
		d.KeyOff, d.KeyLen = uint32(len(m.out)), uint32(len(o.Key))
		m.out = append(m.out, o.Key...)
	}
	if o.HasTime {
		d.TimeMs = o.Time
	}
	if o.Headers != nil {
		d.HdrOff, d.HdrLen = 0, 0
		if len(o.Headers) > 0 {
			start := len(m.out)
			m.out = le.AppendUint32(m.out, uint32(len(o.Headers)))
			for _, h := range o.Headers {
				m.out = le.AppendUint32(m.out, uint32(len(h.Key)))
				m.out = append(m.out, h.Key...)
				m.out = le.AppendUint32(m.out, uint32(len(h.Value)))
				m.out = append(m.out, h.Value...)
			}
			d.HdrOff, d.HdrLen = uint32(start), uint32(len(m.out)-start)
		}
	}
	if build == nil {
		d.ValLen = abi.Inherit
	} else {
		start := len(m.out)
		m.out = build(m.out)
		d.ValOff, d.ValLen = uint32(start), uint32(len(m.out)-start)
	}
	k := len(m.outs)
	m.outs = append(m.outs, make([]byte, abi.DescSize)...)
	abi.PutDesc(m.outs[k:], &d)
	return true
}

func (m *module) portIndex(port string) (uint32, bool) {
	if port == "" || port == abi.DefaultPort {
		return 0, true
	}
	for j, p := range m.ports {
		if p == port {
			return uint32(j), true
		}
	}
	return 0, false
}

// Step is the context of one Accumulate call: the record, its slot, and the record's disposition
// (DROP unless Accumulate says otherwise). The last of Pass, Drop and Reject decides; Emit calls
// accumulate, and a later Pass, Drop or Reject discards them. A Step is valid during the call only.
type Step struct {
	// Slot is the slot the record folds into.
	Slot *Slot
	// Record is the record.
	Record Record

	m       *module
	action  Action
	code    Code
	reason  string
	mark    int // len(m.out) before the record's emits
	outMark int // len(m.outs) before the record's emits
}

func (s *Step) discard() {
	if s.action == abi.Emit {
		s.m.out = s.m.out[:s.mark]
		s.m.outs = s.m.outs[:s.outMark*abi.DescSize]
	}
}

// Pass forwards the input record unchanged on port main (a filter such as a deduplicator).
func (s *Step) Pass() { s.discard(); s.action = abi.Pass }

// Drop absorbs the record (the default).
func (s *Step) Drop() { s.discard(); s.action = abi.Drop }

// Reject refuses the record with a code and a reason (truncated to 1,024 bytes). The SDK leaves
// the slot's state as it was before the call, whatever Accumulate returns.
func (s *Step) Reject(code Code, reason string) {
	s.discard()
	s.action, s.code, s.reason = abi.Reject, code, reason
}

func (s *Step) emit(o *Out, build func(dst []byte) []byte) {
	if s.action != abi.Emit {
		s.action = abi.Emit
		s.mark, s.outMark = len(s.m.out), len(s.m.outs)/abi.DescSize
	}
	s.m.emitOut(uint32(s.Record.Index), o, build)
}

// Emit emits a record with value on the named port ("" or "main" for port 0, others listed in
// Meta.Ports), with the input record's key, time and headers. The value is copied into the
// result frame. An unknown port fails the call.
func (s *Step) Emit(port string, value []byte) {
	s.emit(&Out{Port: port}, func(dst []byte) []byte { return append(dst, value...) })
}

// AppendEmit is Emit for a value built in place: build appends the value to dst (the result frame)
// and returns the extended slice. build must not retain dst.
func (s *Step) AppendEmit(port string, build func(dst []byte) []byte) {
	s.emit(&Out{Port: port}, build)
}

// EmitInput emits the input record itself on the named port: its value, key, time and headers,
// which the host takes from the input (value inheritance, ABI.md 13.4), so nothing is copied.
// EmitInput("main") next to an Emit on another port forwards the record and adds one beside it.
func (s *Step) EmitInput(port string) {
	s.emit(&Out{Port: port}, nil)
}

// EmitRecord emits o, with control over the key (including a null key), the time and the headers.
func (s *Step) EmitRecord(o Out) {
	s.emit(&o, func(dst []byte) []byte { return append(dst, o.Value...) })
}

// Emitter is the context of one Emit call: the slot and the records emitted for it. It is valid
// during the call only.
type Emitter struct {
	// Slot is the slot whose state is emitted; Slot.Final tells a closing window from an early
	// update.
	Slot *Slot

	m        *module
	state    []byte
	setState bool
}

// Emit emits a record with value on the named port, with the slot's key and the time
// window_end - 1 (the host's clock for a slot without a window). An unknown port fails the call.
func (e *Emitter) Emit(port string, value []byte) {
	e.m.emitOut(uint32(e.Slot.Index), &Out{Port: port}, func(dst []byte) []byte { return append(dst, value...) })
}

// AppendEmit is Emit for a value built in place: build appends the value to dst (the result frame)
// and returns the extended slice. build must not retain dst.
func (e *Emitter) AppendEmit(port string, build func(dst []byte) []byte) {
	e.m.emitOut(uint32(e.Slot.Index), &Out{Port: port}, build)
}

// EmitRecord emits o, with control over the key, the time and the headers.
func (e *Emitter) EmitRecord(o Out) {
	e.m.emitOut(uint32(e.Slot.Index), &o, func(dst []byte) []byte { return append(dst, o.Value...) })
}

// SetState replaces the slot's state after an early update (Slot.Final clear); an empty state
// forgets the slot. The bytes are copied. After a final emit the host deletes the slot and the
// call is ignored.
func (e *Emitter) SetState(state []byte) {
	if e.Slot.Final {
		return
	}
	e.state = append(e.state[:0], state...)
	e.setState = true
}
