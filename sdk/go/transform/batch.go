package transform

import (
	"errors"
	"strconv"

	"github.com/sluicehq/sluice/sdk/go/abi"
)

// Batch is one input frame being processed: a view of its records plus the dispositions the
// transform has decided so far. Every record starts as PASS; the last call among Pass, Drop, Emit and
// Reject for an index decides its disposition (Emit calls for the same index accumulate).
//
// A Batch is valid only during the Process call that received it, and is not safe for concurrent
// use (guests are single-threaded). An index out of range panics, as slice indexing does; the SDK
// turns a panic into a batch error (the host retries and then bisects the batch).
type Batch struct {
	frame    []byte
	n        int
	descOff  int
	descSize int

	disp     []disposition
	outs     []outRecord
	tmp      []outRecord // scratch for sorting outs
	pos      []int       // scratch for sorting outs
	unsorted bool
	lastOut  int

	// out is the result frame under construction: a 32-byte header, then data (reasons and emitted
	// bytes, appended as they come), then, at finish, dispositions and output descriptors.
	out   []byte
	ports []string
	err   error
}

type disposition struct {
	action Action
	code   uint16
	a, b   uint32
}

type outRecord struct {
	input            int
	port             uint32
	keyOff, keyLen   uint32
	valOff, valLen   uint32
	flags            uint32
	ts               int64
	hdrOff, hdrLen   uint32
	inheritedHeaders bool
}

var errBadFrame = errors.New("unsupported input frame")

// frameError is an unsupported-input-frame error with details; errors.Is(err, errBadFrame) holds.
type frameError struct{ detail string }

func (e *frameError) Error() string { return errBadFrame.Error() + ": " + e.detail }
func (e *frameError) Unwrap() error { return errBadFrame }

func badFrame(detail string) error { return &frameError{detail} }

func itoa(n int) string { return strconv.Itoa(n) }

// reset prepares b to process frame, reusing its buffers. out is the reusable output buffer.
func (b *Batch) reset(frame []byte, out []byte, ports []string) error {
	b.frame = frame
	b.ports = ports
	b.err = nil
	b.unsorted = false
	b.lastOut = 0
	b.outs = b.outs[:0]
	if len(frame) < inHeaderSize {
		return badFrame(itoa(len(frame)) + " bytes is shorter than the header")
	}
	if le.Uint32(frame) != inMagic {
		return badFrame("bad magic")
	}
	if major := le.Uint16(frame[4:]); major != abiMajor {
		return badFrame("ABI major " + itoa(int(major)))
	}
	hs := int(le.Uint16(frame[8:]))
	ds := int(le.Uint16(frame[10:]))
	if kind := le.Uint32(frame[12:]); kind != kindRecords {
		return badFrame("kind " + itoa(int(kind)))
	}
	n := uint64(le.Uint32(frame[16:]))
	descOff := uint64(le.Uint32(frame[24:]))
	if hs < inHeaderSize || ds < descSize || descOff < uint64(hs) || descOff+n*uint64(ds) > uint64(len(frame)) {
		return badFrame("inconsistent header (header_size " + itoa(hs) + ", desc_size " + itoa(ds) +
			", n_records " + itoa(int(n)) + ", desc_off " + itoa(int(descOff)) + ", " + itoa(len(frame)) + " bytes)")
	}
	b.n, b.descOff, b.descSize = int(n), int(descOff), ds
	for i := 0; i < b.n; i++ {
		d := frame[b.descOff+i*ds:]
		for _, f := range [3]int{16, 24, 32} {
			off, l := uint64(le.Uint32(d[f:])), uint64(le.Uint32(d[f+4:]))
			if l != 0 && off+l > uint64(len(frame)) {
				return badFrame("record " + itoa(i) + ": a range lies outside the frame")
			}
		}
	}
	if cap(b.disp) < b.n {
		b.disp = make([]disposition, b.n)
	}
	b.disp = b.disp[:b.n]
	clear(b.disp)
	b.out = append(out[:0], make([]byte, outHeaderSize)...)
	return nil
}

// Len returns the number of records in the batch.
func (b *Batch) Len() int { return b.n }

// Record returns a zero-copy view of record i.
func (b *Batch) Record(i int) Record {
	if uint(i) >= uint(b.n) {
		panic("transform: record index " + itoa(i) + " out of range [0," + itoa(b.n) + ")")
	}
	d := b.frame[b.descOff+i*b.descSize:]
	r := Record{Timestamp: int64(le.Uint64(d)), Index: i}
	r.Value = b.view(le.Uint32(d[24:]), le.Uint32(d[28:]))
	r.headers = b.view(le.Uint32(d[32:]), le.Uint32(d[36:]))
	if le.Uint32(d[44:])&flagKeyIsNull == 0 {
		r.Key = b.view(le.Uint32(d[16:]), le.Uint32(d[20:]))
		if r.Key == nil {
			r.Key = b.frame[0:0:0]
		}
	}
	return r
}

// Value returns a zero-copy view of the value of record i: Record(i).Value without decoding the
// rest of the descriptor.
func (b *Batch) Value(i int) []byte {
	if uint(i) >= uint(b.n) {
		panic("transform: record index " + itoa(i) + " out of range [0," + itoa(b.n) + ")")
	}
	d := b.frame[b.descOff+i*b.descSize:]
	return b.view(le.Uint32(d[24:]), le.Uint32(d[28:]))
}

func (b *Batch) view(off, l uint32) []byte {
	if l == 0 {
		return nil
	}
	end := uint64(off) + uint64(l)
	return b.frame[off:end:end]
}

// Pass keeps record i unchanged (the default).
func (b *Batch) Pass(i int) { b.disp[i] = disposition{action: ActionPass} }

// Drop removes record i; it counts as delivered.
func (b *Batch) Drop(i int) { b.disp[i] = disposition{action: ActionDrop} }

// Reject refuses record i with a code and a reason (truncated to 1,024 bytes). The record goes to
// the dead-letter sink, or is dropped or stops the pipeline, as the manifest's on_reject says.
func (b *Batch) Reject(i int, code Code, reason string) {
	if len(reason) > maxReasonBytes {
		reason = reason[:maxReasonBytes]
	}
	off := len(b.out)
	b.out = append(b.out, reason...)
	b.disp[i] = disposition{action: ActionReject, code: code, a: uint32(off), b: uint32(len(reason))}
}

// Emit adds one output record for input i on the named port ("" or "main" for the default port;
// other names must be listed in Meta.Ports). A nil key inherits the input's key (pass []byte{}
// for an empty key); the timestamp and headers are inherited from the input. The bytes are copied
// into the result frame, so key and value may be reused right after the call. Emit may be called
// any number of times for the same index; calling Pass, Drop or Reject afterwards discards them.
// An unknown port makes the whole batch fail with an error.
func (b *Batch) Emit(i int, port string, key, value []byte) {
	b.AppendEmit(i, port, key, func(dst []byte) []byte { return append(dst, value...) })
}

// AppendEmit is Emit for values built in place: build appends the value to dst and returns the
// extended slice, so the value is written straight into the result frame without an intermediate
// buffer. build must not retain dst.
func (b *Batch) AppendEmit(i int, port string, key []byte, build func(dst []byte) []byte) {
	b.emit(i, Out{Port: port, Key: key}, build)
}

// Header is one record header of an emitted record.
type Header struct {
	Key, Value []byte
}

// Out describes an emitted record fully, for EmitRecord. The zero value (besides Value) inherits
// the input's key, time and headers and goes to port main.
type Out struct {
	// Port names the output port; "" means main.
	Port string
	// Key is the record key; nil inherits the input's key, unless KeyNull is set.
	Key []byte
	// KeyNull emits a null (absent) key.
	KeyNull bool
	// Value is the record value.
	Value []byte
	// Timestamp replaces the input's time (Unix milliseconds) when HasTimestamp is set.
	Timestamp    int64
	HasTimestamp bool
	// Headers replace the input's headers when non-nil; an empty non-nil slice emits none.
	Headers []Header
}

// EmitRecord is Emit with control over the key (including a null key), the time and the headers.
func (b *Batch) EmitRecord(i int, o Out) {
	b.emit(i, o, func(dst []byte) []byte { return append(dst, o.Value...) })
}

func (b *Batch) emit(i int, out Out, build func(dst []byte) []byte) {
	if uint(i) >= uint(b.n) {
		panic("transform: record index " + itoa(i) + " out of range [0," + itoa(b.n) + ")")
	}
	p, ok := b.portIndex(out.Port)
	if !ok {
		if b.err == nil {
			b.err = errors.New("emit: unknown port " + strconv.Quote(out.Port) + " (declare it in Meta.Ports)")
		}
		return
	}
	o := outRecord{input: i, port: p, ts: noTimestamp, hdrLen: inherit32, keyLen: inherit32}
	switch {
	case out.KeyNull:
		o.keyLen, o.flags = 0, flagKeyIsNull
	case out.Key != nil:
		o.keyOff, o.keyLen = uint32(len(b.out)), uint32(len(out.Key))
		b.out = append(b.out, out.Key...)
	}
	if out.HasTimestamp {
		o.ts = out.Timestamp
	}
	if out.Headers != nil {
		start := len(b.out)
		b.out = le.AppendUint32(b.out, uint32(len(out.Headers)))
		for _, h := range out.Headers {
			b.out = le.AppendUint32(b.out, uint32(len(h.Key)))
			b.out = append(b.out, h.Key...)
			b.out = le.AppendUint32(b.out, uint32(len(h.Value)))
			b.out = append(b.out, h.Value...)
		}
		o.hdrOff, o.hdrLen = uint32(start), uint32(len(b.out)-start)
		if len(out.Headers) == 0 {
			o.hdrOff, o.hdrLen = 0, 0
		}
	}
	start := len(b.out)
	b.out = build(b.out)
	o.valOff, o.valLen = uint32(start), uint32(len(b.out)-start)
	if i < b.lastOut {
		b.unsorted = true
	}
	b.lastOut = i
	b.outs = append(b.outs, o)
	if b.disp[i].action != ActionEmit {
		b.disp[i] = disposition{action: ActionEmit}
	}
}

func (b *Batch) portIndex(port string) (uint32, bool) {
	if port == "" || port == "main" {
		return 0, true
	}
	for j, p := range b.ports {
		if p == port {
			return uint32(j), true
		}
	}
	return 0, false
}

// finish appends the dispositions and output descriptors and fills in the result header.
// It returns the complete result frame (a view of the output buffer).
func (b *Batch) finish() []byte {
	if b.unsorted {
		// Stable counting sort by input index (O(n_in + n_out)).
		if cap(b.pos) < b.n+1 {
			b.pos = make([]int, b.n+1)
		}
		pos := b.pos[:b.n+1]
		clear(pos)
		for _, o := range b.outs {
			pos[o.input+1]++
		}
		for k := 1; k < len(pos); k++ {
			pos[k] += pos[k-1]
		}
		sorted := append(b.tmp[:0], b.outs...)
		for _, o := range b.outs {
			sorted[pos[o.input]] = o
			pos[o.input]++
		}
		b.outs, b.tmp = sorted, b.outs
	}
	for len(b.out)%8 != 0 {
		b.out = append(b.out, 0)
	}
	dispOff := len(b.out)
	b.out = append(b.out, make([]byte, dispSize*b.n)...)
	for len(b.out)%8 != 0 {
		b.out = append(b.out, 0)
	}
	outDescOff := len(b.out)
	nOut := 0
	for k := 0; k < len(b.outs); {
		o := b.outs[k]
		d := &b.disp[o.input]
		j := k
		for j < len(b.outs) && b.outs[j].input == o.input {
			j++
		}
		if d.action == ActionEmit {
			d.a, d.b = uint32(nOut), uint32(j-k)
			for _, e := range b.outs[k:j] {
				var desc [descSize]byte
				abi.PutDesc(desc[:], &abi.Desc{TimeMs: e.ts, Seq: uint64(e.input), KeyOff: e.keyOff, KeyLen: e.keyLen,
					ValOff: e.valOff, ValLen: e.valLen, HdrOff: e.hdrOff, HdrLen: e.hdrLen, Port: e.port, Flags: e.flags})
				b.out = append(b.out, desc[:]...)
				nOut++
			}
		}
		k = j
	}
	for i, d := range b.disp {
		p := b.out[dispOff+i*dispSize:]
		p[0] = byte(d.action)
		p[1] = 0
		le.PutUint16(p[2:], d.code)
		le.PutUint32(p[4:], d.a)
		le.PutUint32(p[8:], d.b)
	}
	h := b.out[:outHeaderSize]
	le.PutUint32(h[0:], outMagic)
	le.PutUint16(h[4:], outHeaderSize)
	le.PutUint16(h[6:], descSize)
	le.PutUint32(h[8:], uint32(b.n))
	le.PutUint32(h[12:], uint32(dispOff))
	le.PutUint32(h[16:], uint32(nOut))
	le.PutUint32(h[20:], uint32(outDescOff))
	le.PutUint32(h[24:], 0)
	le.PutUint32(h[28:], 0)
	return b.out
}
