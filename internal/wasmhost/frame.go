package wasmhost

import (
	"fmt"
	"strings"
	"time"

	"github.com/sluicehq/sluice/runtime/transform"
	"github.com/sluicehq/sluice/sdk/go/abi"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// The frame layout, its codec and its limits are sdk/go/abi's; this file adapts them to
// connector.Record and transform.Result.

// frameCap bounds one input frame (ABI.md section 11).
type frameCap struct {
	maxBytes   int
	maxRecords int
}

var defaultFrameCap = frameCap{maxBytes: abi.MaxFrameBytes, maxRecords: abi.MaxFrameRecords}

func headersLen(hs []connector.Header) int {
	if len(hs) == 0 {
		return 0
	}
	kv := 0
	for _, h := range hs {
		kv += len(h.Key) + len(h.Value)
	}
	return abi.HeadersSize(len(hs), kv)
}

// recordFrameBytes is what one record adds to a frame: its descriptor and its bytes.
func recordFrameBytes(r *connector.Record) int {
	return abi.RecordSize(len(r.Key), len(r.Value), headersLen(r.Headers))
}

// splitFrames returns the end index of each frame of in, respecting c. A record larger than the
// byte cap gets a frame of its own.
func splitFrames(in []connector.Record, c frameCap, ends []int) []int {
	ends = ends[:0]
	size, count := abi.InHeaderSize, 0
	for i := range in {
		rb := recordFrameBytes(&in[i])
		if count > 0 && (count >= c.maxRecords || size+rb > c.maxBytes) {
			ends = append(ends, i)
			size, count = abi.InHeaderSize, 0
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
	n := abi.InHeaderSize
	for i := range recs {
		n += recordFrameBytes(&recs[i])
	}
	return n
}

func timeToMillis(t time.Time) int64 {
	if t.IsZero() {
		return abi.NoTimestamp
	}
	return t.UnixMilli()
}

// encodeFrame writes the TFB1 frame of recs into dst, which must be frameLen(recs) bytes.
func encodeFrame(dst []byte, recs []connector.Record) {
	abi.PutFrameHeader(dst, len(recs), len(dst))
	pos := abi.DataOffset(len(recs))
	for i := range recs {
		r := &recs[i]
		pos = abi.PutRecord(dst, i, pos, r.Key, r.Value, timeToMillis(r.Time), len(r.Headers),
			func(k int) (string, []byte) { return r.Headers[k].Key, r.Headers[k].Value })
	}
}

// decodeResult parses the TFR1 frame res (a view of guest memory) for the input records recs and
// appends to out, shifting input indexes by base. Every byte kept is copied out of res; the bytes
// of all outputs together, counting repeats, must be at most maxCopy (ABI.md section 7.2). A frame
// that breaks the ABI leaves out as it was. It returns the host size (connector.Record.Size) of
// the records it appended to out.Emitted, summed as they are built, for the batch's output budget.
func decodeResult(res []byte, recs []connector.Record, base int, ports []string, maxCopy int, out *transform.Result) (int64, error) {
	startA, startE, startR := len(out.Actions), len(out.Emitted), len(out.Rejected)
	var size int64
	var err error
	out.Actions, err = abi.DecodeResultWithin(res, len(recs), len(ports), maxCopy, out.Actions, func(i int, d *abi.Disposition) {
		if d.Action == abi.Emit {
			in := &recs[i]
			for k := range d.Outputs {
				out.Emitted = append(out.Emitted, emitted(&d.Outputs[k], in, base+i, ports))
				size += int64(out.Emitted[len(out.Emitted)-1].Record.Size())
			}
			return
		}
		reason := cleanText(d.Reason, abi.MaxReasonBytes)
		if reason == "" {
			reason = fmt.Sprintf("rejected with code %d", d.Code)
		}
		out.Rejected = append(out.Rejected, transform.Rejected{Input: base + i, Code: d.Code, Reason: reason})
	})
	if err != nil {
		out.Actions = out.Actions[:startA]
		out.Emitted = out.Emitted[:startE]
		out.Rejected = out.Rejected[:startR]
		return 0, err
	}
	return size, nil
}

// emitted builds the record of one output of input in, copying its bytes out of guest memory.
func emitted(o *abi.Output, in *connector.Record, input int, ports []string) transform.Emitted {
	e := transform.Emitted{Input: input, Port: ports[o.Port]}
	r := &e.Record
	r.Position = in.Position
	if o.TimeMs == abi.NoTimestamp {
		r.Time = in.Time
	} else {
		r.Time = time.UnixMilli(o.TimeMs).UTC()
	}
	switch {
	case o.KeyInherit:
		r.Key = in.Key
	case !o.KeyNull:
		r.Key = append(make([]byte, 0, len(o.Key)), o.Key...)
	}
	if o.ValueInherit {
		r.Value = in.Value
	} else {
		r.Value = append(make([]byte, 0, len(o.Value)), o.Value...)
	}
	switch {
	case o.HeadersInherit:
		r.Headers = in.Headers
	case o.Headers != nil:
		_ = abi.EachHeader(o.Headers, func(k, v []byte) { // checked by DecodeResult
			r.Headers = append(r.Headers, connector.Header{Key: string(k), Value: append([]byte(nil), v...)})
		})
	}
	return e
}

// cleanText copies b as valid UTF-8 of at most max bytes; invalid sequences become U+FFFD.
func cleanText(b []byte, max int) string {
	if len(b) > max {
		b = b[:max]
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}
