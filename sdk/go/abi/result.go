package abi

import (
	"errors"
	"fmt"
)

// ErrInvalidResult marks a result frame that breaks ABI.md section 7; errors of DecodeResult wrap
// it, with the prefix "invalid result frame: " once.
var ErrInvalidResult = errors.New("invalid result frame")

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }

// span returns b[off:off+n] or an error when the range falls outside b.
func span(b []byte, off, n uint32, what string) ([]byte, error) {
	end := uint64(off) + uint64(n)
	if end > uint64(len(b)) {
		return nil, fmt.Errorf("%s [%d,%d) outside the %d-byte frame", what, off, end, len(b))
	}
	return b[off:end], nil
}

// Output is one OutDesc of a result frame with its byte ranges resolved. Its slices are views
// into the frame.
type Output struct {
	Port           uint32 // index into the module's ports
	TimeMs         int64  // Unix ms; NoTimestamp: the input's time
	Key            []byte // nil when KeyNull or KeyInherit
	KeyInherit     bool   // the input's key (and its null flag)
	KeyNull        bool
	Value          []byte // nil when ValueInherit
	ValueInherit   bool   // the input's value (ABI 1.1, section 13.4)
	Headers        []byte // encoded header list (see EachHeader); nil for none
	HeadersInherit bool   // the input's headers
}

// Disposition is what the guest decided for one EMIT or REJECT input record. Reason (Reject) and
// Outputs (Emit) are views into the frame; Outputs is only valid during the DecodeResult callback.
type Disposition struct {
	Action  Action
	Code    uint16
	Reason  []byte
	Outputs []Output
}

// DecodeResult checks the result frame res against ABI.md section 7, for an input frame of nIn
// records and a module with nPorts output ports. It appends the nIn actions to actions, in input
// order, and calls f for each EMIT and REJECT disposition with its outputs or reason (PASS and
// DROP need nothing more, and cost no call). Every range and field is checked; reasons are not
// truncated or cleaned (the caller applies MaxReasonBytes). On an error, which wraps
// ErrInvalidResult, part of the actions may have been appended and f may have been called:
// discard what it kept.
//
// The outputs of all EMIT dispositions together, counting an OutDesc once per disposition that
// names it, must be at most MaxOutRecords records and MaxResultBytes bytes of keys, values and
// headers, each header costing HeaderCost bytes more than its encoding (inherited keys and
// headers do not count); an output may have at most MaxOutHeaders headers. Overlapping EMIT
// ranges and OutDescs that share bytes cannot make the caller copy more than a frame without
// repeats could hold. The totals are checked before f is first called.
func DecodeResult(res []byte, nIn, nPorts int, actions []Action, f func(i int, d *Disposition)) ([]Action, error) {
	return DecodeResultWithin(res, nIn, nPorts, MaxResultBytes, actions, f)
}

// DecodeResultWithin is DecodeResult with maxCopy, instead of MaxResultBytes, as the bound on the
// bytes the outputs reference in total (a host passes its guest's memory size when smaller).
func DecodeResultWithin(res []byte, nIn, nPorts, maxCopy int, actions []Action, f func(i int, d *Disposition)) ([]Action, error) {
	actions, err := decodeResult(res, nIn, nPorts, maxCopy, actions, f)
	if err != nil {
		return actions, fmt.Errorf("%w: %v", ErrInvalidResult, err)
	}
	return actions, nil
}

func decodeResult(res []byte, nIn, nPorts, maxCopy int, actions []Action, f func(i int, d *Disposition)) ([]Action, error) {
	if len(res) < OutHeaderSize {
		return actions, errorf("%d bytes, shorter than the %d-byte header", len(res), OutHeaderSize)
	}
	if m := le.Uint32(res[0:]); m != OutMagic {
		return actions, errorf("bad magic 0x%08x", m)
	}
	hs := le.Uint16(res[4:])
	ods := uint32(le.Uint16(res[6:]))
	n := le.Uint32(res[8:])
	dispOff := le.Uint32(res[12:])
	nOut := le.Uint32(res[16:])
	outOff := le.Uint32(res[20:])
	if hs < OutHeaderSize {
		return actions, errorf("header_size %d < %d", hs, OutHeaderSize)
	}
	if int(n) != nIn {
		return actions, errorf("n_in %d, want %d", n, nIn)
	}
	if nOut > MaxOutRecords {
		return actions, errorf("n_out %d over the limit of %d", nOut, MaxOutRecords)
	}
	disps, err := span(res, dispOff, n*DispSize, "dispositions")
	if err != nil {
		return actions, err
	}
	var outs []byte
	if nOut > 0 {
		if ods < DescSize {
			return actions, errorf("out_desc_size %d < %d", ods, DescSize)
		}
		if outs, err = span(res, outOff, nOut*ods, "output descriptors"); err != nil {
			return actions, err
		}
	}
	if err := checkTotals(res, disps, outs, n, nOut, ods, maxCopy); err != nil {
		return actions, err
	}
	var d Disposition
	var scratch []Output
	for i := uint32(0); i < n; i++ {
		p := disps[i*DispSize : (i+1)*DispSize : (i+1)*DispSize]
		a := Action(p[0])
		switch a {
		case Pass, Drop:
			actions = append(actions, a)
			continue
		case Reject:
			d = Disposition{Action: a, Code: le.Uint16(p[2:])}
			if d.Reason, err = span(res, le.Uint32(p[4:]), le.Uint32(p[8:]), "reject reason"); err != nil {
				return actions, errorf("record %d: %v", i, err)
			}
		case Emit:
			first, count := le.Uint32(p[4:]), le.Uint32(p[8:])
			if uint64(first)+uint64(count) > uint64(nOut) {
				return actions, errorf("record %d: emit range [%d,%d) outside n_out %d", i, first, uint64(first)+uint64(count), nOut)
			}
			scratch = scratch[:0]
			for j := first; j < first+count; j++ {
				o, err := decodeOut(res, outs[j*ods:j*ods+DescSize], nPorts)
				if err != nil {
					return actions, errorf("record %d, output %d: %v", i, j, err)
				}
				scratch = append(scratch, o)
			}
			d = Disposition{Action: a, Code: le.Uint16(p[2:]), Outputs: scratch}
		default:
			return actions, errorf("record %d: unknown action %d", i, p[0])
		}
		actions = append(actions, a)
		f(int(i), &d)
	}
	return actions, nil
}

func decodeOut(res, d []byte, nPorts int) (Output, error) {
	var o Output
	o.Port = le.Uint32(d[40:])
	if int64(o.Port) >= int64(nPorts) {
		return o, errorf("port %d, module declares %d", o.Port, nPorts)
	}
	o.TimeMs = int64(le.Uint64(d[0:]))
	var err error
	if kl := le.Uint32(d[20:]); kl == Inherit {
		o.KeyInherit = true
	} else if le.Uint32(d[44:])&FlagKeyNull != 0 {
		o.KeyNull = true
	} else if o.Key, err = span(res, le.Uint32(d[16:]), kl, "key"); err != nil {
		return o, err
	}
	if vl := le.Uint32(d[28:]); vl == Inherit {
		o.ValueInherit = true
	} else if o.Value, err = span(res, le.Uint32(d[24:]), vl, "value"); err != nil {
		return o, err
	}
	switch hl := le.Uint32(d[36:]); hl {
	case Inherit:
		o.HeadersInherit = true
	case 0:
	default:
		if o.Headers, err = span(res, le.Uint32(d[32:]), hl, "headers"); err != nil {
			return o, err
		}
		if c := headerCount(o.Headers); c > MaxOutHeaders {
			return o, errorf("%d headers, over the limit of %d", c, MaxOutHeaders)
		}
		if err := EachHeader(o.Headers, func(_, _ []byte) {}); err != nil {
			return o, err
		}
	}
	return o, nil
}

// headerCount is the count of the encoded header list b, 0 when b is too short to hold one.
func headerCount(b []byte) uint32 {
	if len(b) < 4 {
		return 0
	}
	return le.Uint32(b)
}

// checkTotals bounds what the EMIT dispositions make the caller copy: records and bytes, counting
// repeats and HeaderCost per header (section 7.2). Ranges outside n_out, and header lists outside
// the frame, are left to the main loop.
func checkTotals(res, disps, outs []byte, n, nOut, ods uint32, maxCopy int) error {
	var records uint64
	for i := uint32(0); i < n; i++ {
		p := disps[i*DispSize:]
		if Action(p[0]) != Emit {
			continue
		}
		first, count := le.Uint32(p[4:]), le.Uint32(p[8:])
		if uint64(first)+uint64(count) > uint64(nOut) {
			break // the main loop fails here, before f sees anything past it
		}
		records += uint64(count)
		if records > MaxOutRecords {
			return errorf("record %d: emitted records over the limit of %d (EMIT ranges counted once per disposition)", i, MaxOutRecords)
		}
	}
	var bytes uint64
	for i := uint32(0); i < n; i++ {
		p := disps[i*DispSize:]
		if Action(p[0]) != Emit {
			continue
		}
		first, count := le.Uint32(p[4:]), le.Uint32(p[8:])
		if uint64(first)+uint64(count) > uint64(nOut) {
			break
		}
		for j := first; j < first+count; j++ {
			d := outs[j*ods:]
			if kl := le.Uint32(d[20:]); kl != Inherit && le.Uint32(d[44:])&FlagKeyNull == 0 {
				bytes += uint64(kl)
			}
			if vl := le.Uint32(d[28:]); vl != Inherit {
				bytes += uint64(vl)
			}
			if hl := le.Uint32(d[36:]); hl != Inherit && hl != 0 {
				bytes += uint64(hl)
				if h, err := span(res, le.Uint32(d[32:]), hl, "headers"); err == nil {
					c := headerCount(h)
					if c > MaxOutHeaders {
						return errorf("record %d, output %d: %d headers, over the limit of %d", i, j, c, MaxOutHeaders)
					}
					bytes += uint64(c) * HeaderCost
				}
			}
		}
		if bytes > uint64(maxCopy) {
			return errorf("record %d: emitted bytes over the limit of %d (outputs counted once per disposition that names them)", i, maxCopy)
		}
	}
	return nil
}
