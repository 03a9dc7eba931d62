package wasmhost

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/sluicehq/sluice/runtime/transform"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// Frame layout constants of ABI v1.0 (sdk/abi/v1/ABI.md, sections 6 and 7).
const (
	inMagic         = 0x31424654 // "TFB1"
	outMagic        = 0x31524654 // "TFR1"
	inHeaderSize    = 40
	descSize        = 48
	outHeaderSize   = 32
	dispSize        = 12
	kindRecords     = 1
	flagKeyNull     = 1
	inheritU32      = 0xFFFFFFFF
	tsNone          = math.MinInt64
	maxReasonBytes  = 1024
	maxResultBytes  = 64 << 20
	maxOutRecords   = 65536
	actionPass      = 0
	actionDrop      = 1
	actionEmit      = 2
	actionReject    = 3
	abiMajor        = 1
	abiMinor        = 0
	abiVersionValue = abiMajor<<16 | abiMinor
)

// frameCap bounds one input frame (ABI.md section 11).
type frameCap struct {
	maxBytes   int
	maxRecords int
}

var defaultFrameCap = frameCap{maxBytes: 4 << 20, maxRecords: 4096}

func headersLen(hs []connector.Header) int {
	if len(hs) == 0 {
		return 0
	}
	n := 4
	for _, h := range hs {
		n += 8 + len(h.Key) + len(h.Value)
	}
	return n
}

// recordFrameBytes is what one record adds to a frame: its descriptor and its bytes.
func recordFrameBytes(r *connector.Record) int {
	return descSize + len(r.Key) + len(r.Value) + headersLen(r.Headers)
}

// splitFrames returns the end index of each frame of in, respecting c. A record larger than the
// byte cap gets a frame of its own.
func splitFrames(in []connector.Record, c frameCap, ends []int) []int {
	ends = ends[:0]
	size, count := inHeaderSize, 0
	for i := range in {
		rb := recordFrameBytes(&in[i])
		if count > 0 && (count >= c.maxRecords || size+rb > c.maxBytes) {
			ends = append(ends, i)
			size, count = inHeaderSize, 0
		}
		size += rb
		count++
	}
	if count > 0 {
		ends = append(ends, len(in))
	}
	return ends
}

// frameLen is the encoded length of a frame holding recs.
func frameLen(recs []connector.Record) int {
	n := inHeaderSize
	for i := range recs {
		n += recordFrameBytes(&recs[i])
	}
	return n
}

func timeToMillis(t time.Time) int64 {
	if t.IsZero() {
		return tsNone
	}
	return t.UnixMilli()
}

// encodeFrame writes the TFB1 frame of recs into dst, which must be frameLen(recs) bytes.
func encodeFrame(dst []byte, recs []connector.Record) {
	le := binary.LittleEndian
	n := len(recs)
	dataOff := inHeaderSize + n*descSize
	le.PutUint32(dst[0:], inMagic)
	le.PutUint16(dst[4:], abiMajor)
	le.PutUint16(dst[6:], abiMinor)
	le.PutUint16(dst[8:], inHeaderSize)
	le.PutUint16(dst[10:], descSize)
	le.PutUint32(dst[12:], kindRecords)
	le.PutUint32(dst[16:], uint32(n))
	le.PutUint32(dst[20:], 0)
	le.PutUint32(dst[24:], inHeaderSize)
	le.PutUint32(dst[28:], 0)
	le.PutUint32(dst[32:], uint32(dataOff))
	le.PutUint32(dst[36:], uint32(len(dst)))
	pos := dataOff
	for i := range recs {
		r := &recs[i]
		d := dst[inHeaderSize+i*descSize : inHeaderSize+(i+1)*descSize]
		le.PutUint64(d[0:], uint64(timeToMillis(r.Time)))
		le.PutUint64(d[8:], uint64(i))
		var flags uint32
		if r.Key == nil {
			flags |= flagKeyNull
		}
		le.PutUint32(d[16:], uint32(pos))
		le.PutUint32(d[20:], uint32(len(r.Key)))
		pos += copy(dst[pos:], r.Key)
		le.PutUint32(d[24:], uint32(pos))
		le.PutUint32(d[28:], uint32(len(r.Value)))
		pos += copy(dst[pos:], r.Value)
		hl := headersLen(r.Headers)
		le.PutUint32(d[32:], uint32(pos))
		le.PutUint32(d[36:], uint32(hl))
		if hl > 0 {
			le.PutUint32(dst[pos:], uint32(len(r.Headers)))
			pos += 4
			for _, h := range r.Headers {
				le.PutUint32(dst[pos:], uint32(len(h.Key)))
				pos += 4
				pos += copy(dst[pos:], h.Key)
				le.PutUint32(dst[pos:], uint32(len(h.Value)))
				pos += 4
				pos += copy(dst[pos:], h.Value)
			}
		}
		le.PutUint32(d[40:], 0)
		le.PutUint32(d[44:], flags)
	}
}

// errInvalidResult marks a result frame that breaks ABI.md section 7.
var errInvalidResult = errors.New("invalid result frame")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errInvalidResult, fmt.Sprintf(format, args...))
}

// span returns b[off:off+n] or an error when the range falls outside b. Its errors, like
// decodeOut's, are wrapped by decodeResult with invalid, once.
func span(b []byte, off, n uint32, what string) ([]byte, error) {
	end := uint64(off) + uint64(n)
	if end > uint64(len(b)) {
		return nil, fmt.Errorf("%s [%d,%d) outside the %d-byte frame", what, off, end, len(b))
	}
	return b[off:end], nil
}

// decodeResult parses the TFR1 frame res (a view of guest memory) for the input records recs and
// appends to out, shifting input indexes by base. Every byte kept is copied out of res.
func decodeResult(res []byte, recs []connector.Record, base int, ports []string, out *transform.Result) error {
	le := binary.LittleEndian
	if len(res) < outHeaderSize {
		return invalid("%d bytes, shorter than the %d-byte header", len(res), outHeaderSize)
	}
	if m := le.Uint32(res[0:]); m != outMagic {
		return invalid("bad magic 0x%08x", m)
	}
	hs := le.Uint16(res[4:])
	ods := uint32(le.Uint16(res[6:]))
	nIn := le.Uint32(res[8:])
	dispOff := le.Uint32(res[12:])
	nOut := le.Uint32(res[16:])
	outOff := le.Uint32(res[20:])
	if hs < outHeaderSize {
		return invalid("header_size %d < %d", hs, outHeaderSize)
	}
	if int(nIn) != len(recs) {
		return invalid("n_in %d, want %d", nIn, len(recs))
	}
	if nOut > maxOutRecords {
		return invalid("n_out %d over the limit of %d", nOut, maxOutRecords)
	}
	disps, err := span(res, dispOff, nIn*dispSize, "dispositions")
	if err != nil {
		return invalid("%v", err)
	}
	var outs []byte
	if nOut > 0 {
		if ods < descSize {
			return invalid("out_desc_size %d < %d", ods, descSize)
		}
		if outs, err = span(res, outOff, nOut*ods, "output descriptors"); err != nil {
			return invalid("%v", err)
		}
	}
	// Validate everything before appending anything, so a bad frame leaves out untouched.
	startA, startE, startR := len(out.Actions), len(out.Emitted), len(out.Rejected)
	fail := func(e error) error {
		out.Actions = out.Actions[:startA]
		out.Emitted = out.Emitted[:startE]
		out.Rejected = out.Rejected[:startR]
		return e
	}
	for i := uint32(0); i < nIn; i++ {
		d := disps[i*dispSize : (i+1)*dispSize]
		action, code, a, b := d[0], le.Uint16(d[2:]), le.Uint32(d[4:]), le.Uint32(d[8:])
		in := &recs[i]
		idx := base + int(i)
		switch action {
		case actionPass:
			out.Actions = append(out.Actions, transform.Pass)
		case actionDrop:
			out.Actions = append(out.Actions, transform.Drop)
		case actionEmit:
			if uint64(a)+uint64(b) > uint64(nOut) {
				return fail(invalid("record %d: emit range [%d,%d) outside n_out %d", i, a, uint64(a)+uint64(b), nOut))
			}
			out.Actions = append(out.Actions, transform.Emit)
			for j := a; j < a+b; j++ {
				e, err := decodeOut(res, outs[j*ods:j*ods+descSize], in, ports)
				if err != nil {
					return fail(invalid("record %d, output %d: %v", i, j, err))
				}
				e.Input = idx
				out.Emitted = append(out.Emitted, e)
			}
		case actionReject:
			msg, err := span(res, a, b, "reject reason")
			if err != nil {
				return fail(invalid("record %d: %v", i, err))
			}
			out.Actions = append(out.Actions, transform.Reject)
			reason := cleanText(msg, maxReasonBytes)
			if reason == "" {
				reason = fmt.Sprintf("rejected with code %d", code)
			}
			out.Rejected = append(out.Rejected, transform.Rejected{Input: idx, Code: code, Reason: reason})
		default:
			return fail(invalid("record %d: unknown action %d", i, action))
		}
	}
	return nil
}

func decodeOut(res, d []byte, in *connector.Record, ports []string) (transform.Emitted, error) {
	le := binary.LittleEndian
	var e transform.Emitted
	port := le.Uint32(d[40:])
	if int(port) >= len(ports) {
		return e, fmt.Errorf("port %d, module declares %d", port, len(ports))
	}
	e.Port = ports[port]
	r := &e.Record
	r.Position = in.Position
	if ts := int64(le.Uint64(d[0:])); ts == tsNone {
		r.Time = in.Time
	} else {
		r.Time = time.UnixMilli(ts).UTC()
	}
	if kl := le.Uint32(d[20:]); kl == inheritU32 {
		r.Key = in.Key
	} else if le.Uint32(d[44:])&flagKeyNull == 0 {
		k, err := span(res, le.Uint32(d[16:]), kl, "key")
		if err != nil {
			return e, err
		}
		r.Key = append(make([]byte, 0, len(k)), k...)
	}
	v, err := span(res, le.Uint32(d[24:]), le.Uint32(d[28:]), "value")
	if err != nil {
		return e, err
	}
	r.Value = append(make([]byte, 0, len(v)), v...)
	switch hl := le.Uint32(d[36:]); hl {
	case inheritU32:
		r.Headers = in.Headers
	case 0:
	default:
		hb, err := span(res, le.Uint32(d[32:]), hl, "headers")
		if err != nil {
			return e, err
		}
		if r.Headers, err = decodeHeaders(hb); err != nil {
			return e, err
		}
	}
	return e, nil
}

func decodeHeaders(b []byte) ([]connector.Header, error) {
	le := binary.LittleEndian
	if len(b) < 4 {
		return nil, errors.New("headers shorter than their count")
	}
	n := le.Uint32(b)
	if uint64(n)*8 > uint64(len(b)) {
		return nil, fmt.Errorf("header count %d does not fit %d bytes", n, len(b))
	}
	hs := make([]connector.Header, 0, n)
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
			return nil, err
		}
		v, err := next()
		if err != nil {
			return nil, err
		}
		hs = append(hs, connector.Header{Key: string(k), Value: append([]byte(nil), v...)})
	}
	return hs, nil
}

// cleanText copies b as valid UTF-8 of at most max bytes; invalid sequences become U+FFFD.
func cleanText(b []byte, max int) string {
	if len(b) > max {
		b = b[:max]
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}
