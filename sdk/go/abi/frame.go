package abi

// Input frames (TFB1, ABI.md section 6). A host sizes a frame with RecordSize and HeadersSize,
// writes its header with PutFrameHeader, then each record with PutRecord, whose bytes go after the
// RecordDescs, from DataOffset(n) on.

// RecordSize is what one record adds to an input frame: its RecordDesc and its bytes, with
// headersLen from HeadersSize.
func RecordSize(keyLen, valueLen, headersLen int) int {
	return DescSize + keyLen + valueLen + headersLen
}

// HeadersSize is the encoded size of n headers whose keys and values total kvLen bytes; 0 when
// there are none.
func HeadersSize(n, kvLen int) int {
	if n == 0 {
		return 0
	}
	return 4 + 8*n + kvLen
}

// DataOffset is where the records' bytes start in a frame of n records (after the header and
// the RecordDescs).
func DataOffset(n int) int { return InHeaderSize + n*DescSize }

// PutFrameHeader writes the FrameHeader of a frame of n records, frameLen bytes in all.
func PutFrameHeader(dst []byte, n, frameLen int) {
	le.PutUint32(dst[0:], InMagic)
	le.PutUint16(dst[4:], Major)
	le.PutUint16(dst[6:], HostMinor)
	le.PutUint16(dst[8:], InHeaderSize)
	le.PutUint16(dst[10:], DescSize)
	le.PutUint32(dst[12:], KindRecords)
	le.PutUint32(dst[16:], uint32(n))
	le.PutUint32(dst[20:], 0)
	le.PutUint32(dst[24:], InHeaderSize)
	le.PutUint32(dst[28:], 0)
	le.PutUint32(dst[32:], uint32(DataOffset(n)))
	le.PutUint32(dst[36:], uint32(frameLen))
}

// Desc is a RecordDesc (input frame, section 6.2) or an OutDesc (result frame, section 7.3): the
// two share one layout.
type Desc struct {
	TimeMs         int64  // Unix ms; NoTimestamp: none (input) or the input's (output)
	Seq            uint64 // index of the (originating) input record in its frame
	KeyOff, KeyLen uint32 // KeyLen Inherit (output): the input's key
	ValOff, ValLen uint32
	HdrOff, HdrLen uint32 // HdrLen 0: no headers; Inherit (output): the input's
	Port           uint32 // output port index (OutDesc); 0 in a RecordDesc
	Flags          uint32 // FlagKeyNull
}

// PutDesc writes d at p[:DescSize].
func PutDesc(p []byte, d *Desc) {
	p = p[:DescSize]
	le.PutUint64(p[0:], uint64(d.TimeMs))
	le.PutUint64(p[8:], d.Seq)
	le.PutUint32(p[16:], d.KeyOff)
	le.PutUint32(p[20:], d.KeyLen)
	le.PutUint32(p[24:], d.ValOff)
	le.PutUint32(p[28:], d.ValLen)
	le.PutUint32(p[32:], d.HdrOff)
	le.PutUint32(p[36:], d.HdrLen)
	le.PutUint32(p[40:], d.Port)
	le.PutUint32(p[44:], d.Flags)
}

// PutRecord writes record i of an input frame: its key (nil for a null key), value and n headers
// (header(k) gives the k-th) at frame[pos:], and its RecordDesc. timeMs is the record's time in
// Unix ms, NoTimestamp for none. It returns the position after the record's bytes.
func PutRecord(frame []byte, i, pos int, key, value []byte, timeMs int64, n int, header func(k int) (string, []byte)) int {
	off := InHeaderSize + i*DescSize
	p := frame[off : off+DescSize : off+DescSize]
	le.PutUint64(p[0:], uint64(timeMs))
	le.PutUint64(p[8:], uint64(i))
	var flags uint32
	if key == nil {
		flags = FlagKeyNull
	}
	le.PutUint32(p[16:], uint32(pos))
	le.PutUint32(p[20:], uint32(len(key)))
	pos += copy(frame[pos:], key)
	le.PutUint32(p[24:], uint32(pos))
	le.PutUint32(p[28:], uint32(len(value)))
	pos += copy(frame[pos:], value)
	hdrOff := pos
	if n > 0 {
		pos += PutHeaders(frame[pos:], n)
		for k := 0; k < n; k++ {
			hk, hv := header(k)
			pos += PutHeader(frame[pos:], hk, hv)
		}
	}
	le.PutUint32(p[32:], uint32(hdrOff))
	le.PutUint32(p[36:], uint32(pos-hdrOff))
	le.PutUint32(p[40:], 0)
	le.PutUint32(p[44:], flags)
	return pos
}

// PutHeaders writes the count of an encoded header list and returns the bytes written (4).
func PutHeaders(dst []byte, n int) int {
	le.PutUint32(dst, uint32(n))
	return 4
}

// PutHeader writes one header of an encoded header list and returns the bytes written.
func PutHeader(dst []byte, key string, value []byte) int {
	le.PutUint32(dst, uint32(len(key)))
	n := 4 + copy(dst[4:], key)
	le.PutUint32(dst[n:], uint32(len(value)))
	n += 4
	return n + copy(dst[n:], value)
}

// EachHeader calls f with each header of the encoded header list b (section 6.2), in order, and
// reports a list that does not fit b. f gets views into b.
func EachHeader(b []byte, f func(key, value []byte)) error {
	if len(b) < 4 {
		return errorf("headers: %d bytes, shorter than their count", len(b))
	}
	n := le.Uint32(b)
	if uint64(n)*8 > uint64(len(b)) {
		return errorf("headers: count %d does not fit %d bytes", n, len(b))
	}
	p := uint32(4)
	next := func() ([]byte, error) {
		l, err := span(b, p, 4, "header length")
		if err != nil {
			return nil, err
		}
		p += 4
		s, err := span(b, p, le.Uint32(l), "header bytes")
		if err != nil {
			return nil, err
		}
		p += uint32(len(s))
		return s, nil
	}
	for i := uint32(0); i < n; i++ {
		k, err := next()
		if err != nil {
			return err
		}
		v, err := next()
		if err != nil {
			return err
		}
		f(k, v)
	}
	return nil
}

// Aggregation (ABI.md section 13, ABI 1.1) follows. It lives at the end of this file rather than
// in a file of its own: a new file in this package changes the binary of every Go guest (the
// linker's file table), which would change the committed first-party modules.

// Versions of aggregation (ABI.md sections 12 and 13).
const (
	// MinorAggregate is the minor that brought aggregation: 1.1.
	MinorAggregate = 1
	// VersionAggregate is what an aggregate module's tf_abi_version returns.
	VersionAggregate = Major<<16 | MinorAggregate
	// HostMinor is the highest minor a host built with this package supports, and the minor it
	// writes in its frames.
	HostMinor = MinorAggregate
)

// Aggregation frames (ABI.md section 13, ABI 1.1).
const (
	KindStep  = 2 // tf_agg_step: fold records into slots
	KindMerge = 3 // tf_agg_merge: fold one slot's state into another's
	KindEmit  = 4 // tf_agg_emit: records from slots

	SlotDescSize = 48 // SlotDesc
	StateOutSize = 16 // StateOut

	SlotFinal   = 1 // SlotDesc flags: the window closes (kind 4)
	SlotKeyNull = 2 // SlotDesc flags: the slot's key is null

	StateDelete = 1 // StateOut flags: forget the slot

	// NoWindowStart and NoWindowEnd bound the slot of a stage without windows.
	NoWindowStart = -1 << 63
	NoWindowEnd   = 1<<63 - 1

	// DefaultMaxState is the default bound of one state blob (limits.state); MaxStateLimit the
	// largest a manifest may set.
	DefaultMaxState = 64 << 10
	MaxStateLimit   = 16 << 20

	// KindAggregate is the meta kind of an aggregate module.
	KindAggregate = "aggregate"
)

// Host reject codes of aggregation stages (ABI.md section 13.5).
const (
	CodeAggregateInput uint16 = 0xFF06 // the record has no key or time the stage can use
	CodeLate           uint16 = 0xFF07 // every window of the record is closed
)

// Slot is one (key, window) of an aggregation frame.
type Slot struct {
	Start, End int64 // window bounds in Unix ms; NoWindowStart/NoWindowEnd without a window
	Key        []byte
	KeyNull    bool
	State      []byte // nil or empty: a new slot
	Other      []byte // kind 3: the state to fold into State
	Final      bool   // kind 4: the window closes
}

// AggRecord is one record of a kind 2 frame.
type AggRecord struct {
	Slot    uint32
	Seq     uint64 // index of the input record in the batch (copies of one record share it)
	TimeMs  int64
	Key     []byte
	KeyNull bool
	Value   []byte
}

// AggFrameSize is the size of the aggregation frame holding recs and slots.
func AggFrameSize(recs []AggRecord, slots []Slot) int {
	n := InHeaderSize + len(recs)*DescSize + len(slots)*SlotDescSize
	for i := range recs {
		n += len(recs[i].Key) + len(recs[i].Value)
	}
	for i := range slots {
		n += len(slots[i].Key) + len(slots[i].State) + len(slots[i].Other)
	}
	return n
}

// PutAggFrame writes an aggregation frame of the given kind (KindStep with records, KindMerge or
// KindEmit without) into dst, which must hold AggFrameSize bytes, and returns its length.
func PutAggFrame(dst []byte, kind uint32, recs []AggRecord, slots []Slot) int {
	n := AggFrameSize(recs, slots)
	dst = dst[:n]
	slotOff := InHeaderSize + len(recs)*DescSize
	pos := slotOff + len(slots)*SlotDescSize
	le.PutUint32(dst[0:], InMagic)
	le.PutUint16(dst[4:], Major)
	le.PutUint16(dst[6:], HostMinor)
	le.PutUint16(dst[8:], InHeaderSize)
	le.PutUint16(dst[10:], DescSize)
	le.PutUint32(dst[12:], kind)
	le.PutUint32(dst[16:], uint32(len(recs)))
	le.PutUint32(dst[20:], uint32(len(slots)))
	le.PutUint32(dst[24:], InHeaderSize)
	le.PutUint32(dst[28:], uint32(slotOff))
	le.PutUint32(dst[32:], uint32(pos))
	le.PutUint32(dst[36:], uint32(n))
	put := func(at int, b []byte) {
		le.PutUint32(dst[at:], uint32(pos))
		le.PutUint32(dst[at+4:], uint32(len(b)))
		pos += copy(dst[pos:], b)
	}
	for i := range recs {
		r := &recs[i]
		d := dst[InHeaderSize+i*DescSize:]
		le.PutUint64(d[0:], uint64(r.TimeMs))
		le.PutUint64(d[8:], r.Seq)
		put(InHeaderSize+i*DescSize+16, r.Key)
		put(InHeaderSize+i*DescSize+24, r.Value)
		le.PutUint64(d[32:], 0)
		le.PutUint32(d[40:], r.Slot)
		var f uint32
		if r.KeyNull {
			f = FlagKeyNull
		}
		le.PutUint32(d[44:], f)
	}
	for i := range slots {
		s := &slots[i]
		at := slotOff + i*SlotDescSize
		d := dst[at:]
		le.PutUint64(d[0:], uint64(s.Start))
		le.PutUint64(d[8:], uint64(s.End))
		put(at+16, s.Key)
		put(at+24, s.State)
		if len(s.Other) > 0 {
			put(at+32, s.Other)
		} else {
			le.PutUint64(d[32:], 0)
		}
		var f uint32
		if s.Final {
			f |= SlotFinal
		}
		if s.KeyNull {
			f |= SlotKeyNull
		}
		le.PutUint32(d[40:], f)
		le.PutUint32(d[44:], 0)
	}
	return n
}

// AggInput is an aggregation frame as a guest reads it: views into the frame.
type AggInput struct {
	Kind    uint32
	Records []AggRecord // Key/Value are views
	Slots   []Slot      // Key/State/Other are views
}

// DecodeAggFrame checks and decodes an aggregation input frame (what a guest SDK does). It reuses
// in's slices.
func DecodeAggFrame(frame []byte, in *AggInput) error {
	if len(frame) < InHeaderSize {
		return errorf("frame of %d bytes, shorter than its header", len(frame))
	}
	if le.Uint32(frame[0:]) != InMagic || le.Uint16(frame[4:]) != Major {
		return errorf("bad magic or major")
	}
	hs := uint32(le.Uint16(frame[8:]))
	ds := uint32(le.Uint16(frame[10:]))
	kind := le.Uint32(frame[12:])
	n := le.Uint32(frame[16:])
	ns := le.Uint32(frame[20:])
	descOff := le.Uint32(frame[24:])
	slotOff := le.Uint32(frame[28:])
	if hs < InHeaderSize || ds < DescSize || kind < KindStep || kind > KindEmit {
		return errorf("unsupported frame (kind %d)", kind)
	}
	if uint64(n)*uint64(ds) > uint64(len(frame)) || uint64(ns)*SlotDescSize > uint64(len(frame)) {
		return errorf("%d records and %d slots do not fit a frame of %d bytes", n, ns, len(frame))
	}
	descs, err := span(frame, descOff, n*ds, "record descriptors")
	if err != nil {
		return err
	}
	sd, err := span(frame, slotOff, ns*SlotDescSize, "slot descriptors")
	if err != nil {
		return err
	}
	in.Kind = kind
	in.Records = in.Records[:0]
	in.Slots = in.Slots[:0]
	for i := uint32(0); i < ns; i++ {
		d := sd[i*SlotDescSize:]
		var s Slot
		s.Start = int64(le.Uint64(d[0:]))
		s.End = int64(le.Uint64(d[8:]))
		if s.Key, err = span(frame, le.Uint32(d[16:]), le.Uint32(d[20:]), "slot key"); err != nil {
			return err
		}
		if s.State, err = span(frame, le.Uint32(d[24:]), le.Uint32(d[28:]), "slot state"); err != nil {
			return err
		}
		if ol := le.Uint32(d[36:]); ol > 0 {
			if s.Other, err = span(frame, le.Uint32(d[32:]), ol, "slot other state"); err != nil {
				return err
			}
		}
		f := le.Uint32(d[40:])
		s.Final, s.KeyNull = f&SlotFinal != 0, f&SlotKeyNull != 0
		in.Slots = append(in.Slots, s)
	}
	for i := uint32(0); i < n; i++ {
		d := descs[i*ds:]
		var r AggRecord
		r.TimeMs = int64(le.Uint64(d[0:]))
		r.Seq = le.Uint64(d[8:])
		if r.Key, err = span(frame, le.Uint32(d[16:]), le.Uint32(d[20:]), "key"); err != nil {
			return err
		}
		if r.Value, err = span(frame, le.Uint32(d[24:]), le.Uint32(d[28:]), "value"); err != nil {
			return err
		}
		r.Slot = le.Uint32(d[40:])
		if r.Slot >= ns {
			return errorf("record %d: slot %d outside %d slots", i, r.Slot, ns)
		}
		r.KeyNull = le.Uint32(d[44:])&FlagKeyNull != 0
		in.Records = append(in.Records, r)
	}
	return nil
}

// StateOut is one new slot state of an aggregation result.
type StateOut struct {
	Slot   uint32
	Delete bool
	State  []byte // view into the result frame
}

// DecodeStates checks and decodes the StateOuts of an aggregation result for a frame of nSlots
// slots, calling f for each; a state longer than maxState, a slot named twice or out of range is
// an error wrapping ErrInvalidResult.
func DecodeStates(res []byte, nSlots, maxState int, f func(s StateOut)) error {
	if err := decodeStates(res, nSlots, maxState, f); err != nil {
		return errorf("%w: %v", ErrInvalidResult, err)
	}
	return nil
}

func decodeStates(res []byte, nSlots, maxState int, f func(s StateOut)) error {
	if len(res) < OutHeaderSize {
		return errorf("%d bytes, shorter than the %d-byte header", len(res), OutHeaderSize)
	}
	n := le.Uint32(res[24:])
	if n == 0 {
		return nil
	}
	if uint64(n) > uint64(nSlots) {
		return errorf("n_state %d for %d slots", n, nSlots)
	}
	tab, err := span(res, le.Uint32(res[28:]), n*StateOutSize, "state outputs")
	if err != nil {
		return err
	}
	seen := make([]bool, nSlots)
	for i := uint32(0); i < n; i++ {
		d := tab[i*StateOutSize:]
		s := StateOut{Slot: le.Uint32(d[0:]), Delete: le.Uint32(d[4:])&StateDelete != 0}
		if int64(s.Slot) >= int64(nSlots) {
			return errorf("state %d: slot %d outside %d slots", i, s.Slot, nSlots)
		}
		if seen[s.Slot] {
			return errorf("state %d: slot %d named twice", i, s.Slot)
		}
		seen[s.Slot] = true
		if !s.Delete {
			l := le.Uint32(d[12:])
			if l == 0 {
				return errorf("state %d: empty state (write a delete)", i)
			}
			if int64(l) > int64(maxState) {
				return errorf("state %d: %d bytes, over the state limit of %d bytes (limits.state)", i, l, maxState)
			}
			if s.State, err = span(res, le.Uint32(d[8:]), l, "state"); err != nil {
				return errorf("state %d: %v", i, err)
			}
		}
		f(s)
	}
	return nil
}

// DecodeEmitResult checks a kind 4 result for a frame of nSlots slots and calls f for each
// OutDesc with the slot it names (its seq), in order. Totals are bounded like section 7.2: at
// most MaxOutRecords outputs and maxCopy bytes of keys, values and headers.
func DecodeEmitResult(res []byte, nSlots, nPorts, maxCopy int, f func(slot int, o *Output)) error {
	if err := decodeEmit(res, nSlots, nPorts, maxCopy, f); err != nil {
		return errorf("%w: %v", ErrInvalidResult, err)
	}
	return nil
}

func decodeEmit(res []byte, nSlots, nPorts, maxCopy int, f func(slot int, o *Output)) error {
	if len(res) < OutHeaderSize {
		return errorf("%d bytes, shorter than the %d-byte header", len(res), OutHeaderSize)
	}
	if m := le.Uint32(res[0:]); m != OutMagic {
		return errorf("bad magic 0x%08x", m)
	}
	if hs := le.Uint16(res[4:]); hs < OutHeaderSize {
		return errorf("header_size %d < %d", hs, OutHeaderSize)
	}
	ods := uint32(le.Uint16(res[6:]))
	if n := le.Uint32(res[8:]); n != 0 {
		return errorf("n_in %d, want 0", n)
	}
	nOut := le.Uint32(res[16:])
	if nOut == 0 {
		return nil
	}
	if nOut > MaxOutRecords {
		return errorf("n_out %d over the limit of %d", nOut, MaxOutRecords)
	}
	if ods < DescSize {
		return errorf("out_desc_size %d < %d", ods, DescSize)
	}
	outs, err := span(res, le.Uint32(res[20:]), nOut*ods, "output descriptors")
	if err != nil {
		return err
	}
	var total uint64
	os := make([]Output, nOut)
	for j := uint32(0); j < nOut; j++ {
		d := outs[j*ods : j*ods+DescSize]
		slot := le.Uint64(d[8:])
		if slot >= uint64(nSlots) {
			return errorf("output %d: seq (slot) %d outside %d slots", j, slot, nSlots)
		}
		if le.Uint32(d[28:]) == Inherit {
			return errorf("output %d: an emitted record cannot inherit a value", j)
		}
		o, err := decodeOut(res, d, nPorts)
		if err != nil {
			return errorf("output %d: %v", j, err)
		}
		total += uint64(len(o.Key) + len(o.Value) + len(o.Headers))
		total += uint64(headerCount(o.Headers)) * HeaderCost
		if total > uint64(maxCopy) {
			return errorf("output %d: emitted bytes over the limit of %d", j, maxCopy)
		}
		os[j] = o
	}
	for j := range os {
		f(int(le.Uint64(outs[uint32(j)*ods+8:])), &os[j])
	}
	return nil
}
