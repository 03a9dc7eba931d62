//go:build !wasip1

package transform

import (
	"errors"
	"fmt"
)

// LocalRecord is an input record for RunLocal.
type LocalRecord struct {
	// Key is the record key; KeyNull marks it absent.
	Key     []byte
	KeyNull bool
	Value   []byte
	// Timestamp in Unix milliseconds; use NoTimestamp for none.
	Timestamp int64
	// Headers as key/value pairs, in order.
	Headers [][2]string
}

// LocalOutcome is what the transform decided for one input record.
type LocalOutcome struct {
	Action Action
	Code   Code
	Reason string
	// Emitted holds the records emitted for this input, in order (EMIT only).
	Emitted []LocalEmitted
}

// LocalEmitted is one emitted record.
type LocalEmitted struct {
	Port string
	// Key is the emitted key unless KeyInherited (the host then uses the input's key) or KeyNull.
	Key          []byte
	KeyInherited bool
	KeyNull      bool
	Value        []byte
	// Timestamp is the emitted time, or NoTimestamp when it is inherited from the input.
	Timestamp int64
	// Headers are the emitted headers unless HeadersInherited.
	Headers          [][2]string
	HeadersInherited bool
}

// RunLocal runs the registered transform natively, without WebAssembly: it initialises it with
// config (a JSON object; nil means "{}"), encodes in as one ABI v1 input frame, processes it, and
// decodes and checks the result frame as the host does. It is meant for unit tests of package main
// of a transform; the WebAssembly build does not include it. Not safe for concurrent use.
func RunLocal(config []byte, in []LocalRecord) ([]LocalOutcome, error) {
	if config == nil {
		config = []byte("{}")
	}
	copy(reserve(uint32(len(config))), config)
	if initialize(uint32(len(config))) != 0 {
		return nil, fmt.Errorf("init: %s", mod.lastErr)
	}
	if len(in) == 0 {
		return nil, nil
	}
	frame := encodeFrame(in)
	copy(reserve(uint32(len(frame))), frame)
	res, code := process(uint32(len(frame)))
	if code != 0 {
		return nil, fmt.Errorf("process: batch error %d: %s", code, mod.lastErr)
	}
	return decodeResult(res, len(in), mod.ports)
}

// MetaJSON returns the metadata JSON the module reports through tf_meta.
func MetaJSON() []byte { return mod.meta }

// encodeFrame builds a TFB1 frame as a v1.0 host does.
func encodeFrame(in []LocalRecord) []byte {
	descOff := inHeaderSize
	dataOff := descOff + len(in)*descSize
	f := make([]byte, dataOff)
	le.PutUint32(f[0:], inMagic)
	le.PutUint16(f[4:], abiMajor)
	le.PutUint16(f[6:], abiMinor)
	le.PutUint16(f[8:], inHeaderSize)
	le.PutUint16(f[10:], descSize)
	le.PutUint32(f[12:], kindRecords)
	le.PutUint32(f[16:], uint32(len(in)))
	le.PutUint32(f[24:], uint32(descOff))
	le.PutUint32(f[32:], uint32(dataOff))
	for i, r := range in {
		d := descOff + i*descSize
		le.PutUint64(f[d:], uint64(r.Timestamp))
		le.PutUint64(f[d+8:], uint64(i))
		le.PutUint32(f[d+16:], uint32(len(f)))
		le.PutUint32(f[d+20:], uint32(len(r.Key)))
		f = append(f, r.Key...)
		le.PutUint32(f[d+24:], uint32(len(f)))
		le.PutUint32(f[d+28:], uint32(len(r.Value)))
		f = append(f, r.Value...)
		if len(r.Headers) > 0 {
			start := len(f)
			f = le.AppendUint32(f, uint32(len(r.Headers)))
			for _, h := range r.Headers {
				f = le.AppendUint32(f, uint32(len(h[0])))
				f = append(f, h[0]...)
				f = le.AppendUint32(f, uint32(len(h[1])))
				f = append(f, h[1]...)
			}
			le.PutUint32(f[d+32:], uint32(start))
			le.PutUint32(f[d+36:], uint32(len(f)-start))
		}
		if r.KeyNull {
			le.PutUint32(f[d+44:], flagKeyIsNull)
		}
	}
	le.PutUint32(f[36:], uint32(len(f)))
	return f
}

var errInvalidResult = errors.New("invalid result frame")

// decodeResult checks a TFR1 frame against ABI section 7 and decodes it.
func decodeResult(res []byte, nIn int, ports []string) ([]LocalOutcome, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", errInvalidResult, fmt.Sprintf(format, args...))
	}
	rng := func(off, n uint32) ([]byte, bool) {
		end := uint64(off) + uint64(n)
		if end > uint64(len(res)) {
			return nil, false
		}
		return res[off:end], true
	}
	if len(res) < outHeaderSize {
		return nil, bad("%d bytes", len(res))
	}
	if le.Uint32(res) != outMagic {
		return nil, bad("magic %#x", le.Uint32(res))
	}
	hs, ods := le.Uint16(res[4:]), le.Uint16(res[6:])
	if hs < outHeaderSize || ods < descSize {
		return nil, bad("header_size %d, out_desc_size %d", hs, ods)
	}
	if n := le.Uint32(res[8:]); int(n) != nIn {
		return nil, bad("n_in %d, want %d", n, nIn)
	}
	dispOff, nOut, outOff := le.Uint32(res[12:]), le.Uint32(res[16:]), le.Uint32(res[20:])
	disps, ok := rng(dispOff, uint32(nIn*dispSize))
	if !ok {
		return nil, bad("dispositions outside the frame")
	}
	var descs []byte
	if nOut > 0 {
		if descs, ok = rng(outOff, nOut*uint32(ods)); !ok {
			return nil, bad("output descriptors outside the frame")
		}
	}
	out := make([]LocalOutcome, nIn)
	for i := range out {
		d := disps[i*dispSize:]
		o := LocalOutcome{Action: Action(d[0]), Code: le.Uint16(d[2:])}
		a, b := le.Uint32(d[4:]), le.Uint32(d[8:])
		switch o.Action {
		case ActionPass, ActionDrop:
		case ActionReject:
			reason, ok := rng(a, b)
			if !ok {
				return nil, bad("record %d: reason outside the frame", i)
			}
			o.Reason = string(reason)
		case ActionEmit:
			if uint64(a)+uint64(b) > uint64(nOut) {
				return nil, bad("record %d: outputs [%d,+%d) beyond n_out %d", i, a, b, nOut)
			}
			for k := a; k < a+b; k++ {
				od := descs[int(k)*int(ods):]
				port := le.Uint32(od[40:])
				if int(port) >= len(ports) {
					return nil, bad("record %d: port %d out of range", i, port)
				}
				e := LocalEmitted{Port: ports[port], Timestamp: int64(le.Uint64(od[0:]))}
				if kl := le.Uint32(od[20:]); kl == inherit32 {
					e.KeyInherited = true
				} else if le.Uint32(od[44:])&flagKeyIsNull != 0 {
					e.KeyNull = true
				} else {
					key, ok := rng(le.Uint32(od[16:]), kl)
					if !ok {
						return nil, bad("record %d: key outside the frame", i)
					}
					e.Key = append([]byte{}, key...)
				}
				if hl := le.Uint32(od[36:]); hl == inherit32 {
					e.HeadersInherited = true
				} else if hl > 0 {
					hb, ok := rng(le.Uint32(od[32:]), hl)
					if !ok {
						return nil, bad("record %d: headers outside the frame", i)
					}
					Record{headers: hb}.EachHeader(func(k, v []byte) bool {
						e.Headers = append(e.Headers, [2]string{string(k), string(v)})
						return true
					})
				}
				val, ok := rng(le.Uint32(od[24:]), le.Uint32(od[28:]))
				if !ok {
					return nil, bad("record %d: value outside the frame", i)
				}
				e.Value = append([]byte{}, val...)
				o.Emitted = append(o.Emitted, e)
			}
		default:
			return nil, bad("record %d: action %d", i, d[0])
		}
		out[i] = o
	}
	return out, nil
}
