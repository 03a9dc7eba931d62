package aggregate

import "github.com/sluicehq/sluice/sdk/go/abi"

// input is an aggregation frame (ABI.md 13.2) as the SDK reads it: the header and the slots are
// decoded and checked up front; a record is read from its RecordDesc when it is folded, so that
// a step costs no decoded copy of its records. The checks are those of abi.DecodeAggFrame
// (TestDecodeMatchesABI compares the two).
type input struct {
	frame   []byte
	kind    uint32
	n       int // records
	descOff int
	ds      int // desc_size
	slots   []abi.Slot
}

// frameError is a frame the SDK cannot read: the call returns abi.ErrUnsupported.
type frameError string

func (e frameError) Error() string { return "unsupported input frame: " + string(e) }

// view returns frame[off:off+n], capped, or false when the range lies outside the frame.
func view(frame []byte, off, n uint32) ([]byte, bool) {
	end := uint64(off) + uint64(n)
	if end > uint64(len(frame)) {
		return nil, false
	}
	return frame[off:end:end], true
}

// decode checks the header of frame and decodes its slots into in, reusing in's slices.
func (in *input) decode(frame []byte) error {
	if len(frame) < abi.InHeaderSize {
		return frameError(itoa(len(frame)) + " bytes, shorter than the header")
	}
	if le.Uint32(frame[0:]) != abi.InMagic || le.Uint16(frame[4:]) != abi.Major {
		return frameError("bad magic or ABI major")
	}
	hs := uint64(le.Uint16(frame[8:]))
	ds := uint64(le.Uint16(frame[10:]))
	kind := le.Uint32(frame[12:])
	n := uint64(le.Uint32(frame[16:]))
	ns := uint64(le.Uint32(frame[20:]))
	descOff := uint64(le.Uint32(frame[24:]))
	slotOff := uint64(le.Uint32(frame[28:]))
	if hs < abi.InHeaderSize || ds < abi.DescSize || kind < abi.KindStep || kind > abi.KindEmit {
		return frameError("kind " + itoa(int(kind)) + ", header_size " + itoa(int(hs)) + ", desc_size " + itoa(int(ds)))
	}
	if descOff+n*ds > uint64(len(frame)) || slotOff+ns*abi.SlotDescSize > uint64(len(frame)) {
		return frameError("descriptors outside the " + itoa(len(frame)) + "-byte frame")
	}
	in.frame, in.kind, in.n, in.descOff, in.ds = frame, kind, int(n), int(descOff), int(ds)
	in.slots = in.slots[:0]
	for i := uint64(0); i < ns; i++ {
		d := frame[slotOff+i*abi.SlotDescSize:][:abi.SlotDescSize]
		s := abi.Slot{Start: int64(le.Uint64(d[0:])), End: int64(le.Uint64(d[8:]))}
		var ok1, ok2, ok3 bool
		s.Key, ok1 = view(frame, le.Uint32(d[16:]), le.Uint32(d[20:]))
		s.State, ok2 = view(frame, le.Uint32(d[24:]), le.Uint32(d[28:]))
		ok3 = true
		if ol := le.Uint32(d[36:]); ol > 0 {
			s.Other, ok3 = view(frame, le.Uint32(d[32:]), ol)
		}
		if !ok1 || !ok2 || !ok3 {
			return frameError("slot " + itoa(int(i)) + ": a range lies outside the frame")
		}
		f := le.Uint32(d[40:])
		s.Final, s.KeyNull = f&abi.SlotFinal != 0, f&abi.SlotKeyNull != 0
		in.slots = append(in.slots, s)
	}
	return nil
}

// record reads record i into r and returns its slot index.
func (in *input) record(i int, r *Record) (int, error) {
	d := in.frame[in.descOff+i*in.ds:][:abi.DescSize]
	slot := le.Uint32(d[40:])
	var ok1, ok2 bool
	r.Key, ok1 = view(in.frame, le.Uint32(d[16:]), le.Uint32(d[20:]))
	r.Value, ok2 = view(in.frame, le.Uint32(d[24:]), le.Uint32(d[28:]))
	if !ok1 || !ok2 || uint64(slot) >= uint64(len(in.slots)) {
		return 0, frameError("record " + itoa(i) + ": a range or its slot lies outside the frame")
	}
	r.Time = int64(le.Uint64(d[0:]))
	r.Seq = le.Uint64(d[8:])
	r.Index = i
	r.KeyNull = le.Uint32(d[44:])&abi.FlagKeyNull != 0
	if r.KeyNull {
		r.Key = nil
	}
	return int(slot), nil
}
