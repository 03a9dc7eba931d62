package protocol

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"time"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

// BatchSize returns the packed size of recs, to size a buffer.
func BatchSize(recs []connector.Record) int {
	n := uvarintLen(uint64(len(recs)))
	for i := range recs {
		r := &recs[i]
		var ts int64
		if !r.Time.IsZero() {
			ts = r.Time.UnixNano()
		}
		n += bytesLen(len(r.Key)) + bytesLen(len(r.Value)) + varintLen(ts) + bytesLen(len(r.Position.Partition)) +
			varintLen(r.Position.Offset) + bytesLen(len(r.Position.Cursor)) + uvarintLen(uint64(len(r.Headers)))
		for _, h := range r.Headers {
			n += bytesLen(len(h.Key)) + bytesLen(len(h.Value))
		}
	}
	return n
}

func uvarintLen(v uint64) int { return (bits.Len64(v|1) + 6) / 7 }
func varintLen(v int64) int   { return uvarintLen(uint64(v<<1) ^ uint64(v>>63)) }
func bytesLen(l int) int      { return uvarintLen(uint64(l)) + l }

// AppendBatch packs recs in the batch layout of plugin.proto and appends them to buf.
func AppendBatch(buf []byte, recs []connector.Record) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(recs)))
	for i := range recs {
		r := &recs[i]
		buf = appendBytes(buf, r.Key)
		buf = appendBytes(buf, r.Value)
		var ts int64
		if !r.Time.IsZero() {
			ts = r.Time.UnixNano()
		}
		buf = binary.AppendVarint(buf, ts)
		buf = binary.AppendUvarint(buf, uint64(len(r.Position.Partition)))
		buf = append(buf, r.Position.Partition...)
		buf = binary.AppendVarint(buf, r.Position.Offset)
		buf = appendBytes(buf, r.Position.Cursor)
		buf = binary.AppendUvarint(buf, uint64(len(r.Headers)))
		for _, h := range r.Headers {
			buf = binary.AppendUvarint(buf, uint64(len(h.Key)))
			buf = append(buf, h.Key...)
			buf = appendBytes(buf, h.Value)
		}
	}
	return buf
}

func appendBytes(buf, b []byte) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(b)))
	return append(buf, b...)
}

// ErrMalformedBatch is returned by DecodeBatch for data that does not follow the layout.
var ErrMalformedBatch = errors.New("malformed record batch")

// DecodeBatch unpacks a batch. The records' byte slices alias data, which the caller must
// therefore not reuse; empty fields are nil. Empty data is an empty batch. It allocates the
// record slice, a string per change of partition and the headers; everything else references
// data.
func DecodeBatch(data []byte) ([]connector.Record, error) { return DecodeBatchInto(nil, data) }

// DecodeBatchInto is DecodeBatch decoding into dst's memory when it is large enough, so a caller
// that is done with the previous batch saves allocating (and collecting) a record slice per
// batch.
func DecodeBatchInto(dst []connector.Record, data []byte) ([]connector.Record, error) {
	if len(data) == 0 {
		return nil, nil
	}
	n, pos, ok := readUvarint(data, 0)
	// Every record takes at least 7 bytes; refuse counts the data cannot hold.
	if !ok || n > uint64(len(data)/7+1) {
		return nil, fmt.Errorf("%w: bad record count", ErrMalformedBatch)
	}
	out := dst[:0]
	if uint64(cap(out)) < n {
		out = make([]connector.Record, n)
	} else {
		out = out[:n] // every field of every record is set below
	}
	var lastPart string
	for i := range out {
		r := &out[i]
		var p []byte
		var ts int64
		var hn uint64
		var ok1, ok2, ok3, ok4, ok5, ok6, ok7 bool
		// The common record (key and value shorter than 128 bytes, no time) read without
		// calls; anything else, including every malformed case, by the general readers.
		if pos+3 <= len(data) && data[pos] < 0x80 && int(data[pos]) < len(data)-pos-2 &&
			data[pos+1+int(data[pos])] < 0x80 {
			kl := int(data[pos])
			vp := pos + 1 + kl
			vl := int(data[vp])
			if end := vp + 1 + vl; end < len(data) && data[end] == 0 {
				r.Key, r.Value = nil, nil
				if kl > 0 {
					r.Key = data[pos+1 : vp : vp]
				}
				if vl > 0 {
					r.Value = data[vp+1 : end : end]
				}
				pos, ok1, ok2, ok3 = end+1, true, true, true
			}
		}
		if !ok1 {
			r.Key, pos, ok1 = readBytes(data, pos)
			r.Value, pos, ok2 = readBytes(data, pos)
			ts, pos, ok3 = readVarint(data, pos)
		}
		p, pos, ok4 = readBytes(data, pos)
		r.Position.Offset, pos, ok5 = readVarint(data, pos)
		r.Position.Cursor, pos, ok6 = readBytes(data, pos)
		hn, pos, ok7 = readUvarint(data, pos)
		if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && ok7) {
			return nil, fmt.Errorf("%w: record %d: truncated or past the end", ErrMalformedBatch, i)
		}
		r.Time, r.Position.Partition, r.Headers = time.Time{}, "", nil
		if ts != 0 {
			r.Time = time.Unix(0, ts)
		}
		if len(p) > 0 {
			if string(p) != lastPart { // no allocation for the comparison
				lastPart = string(p)
			}
			r.Position.Partition = lastPart
		}
		if hn > 0 {
			if hn > uint64(len(data)-pos) {
				return nil, fmt.Errorf("%w: record %d: bad header count", ErrMalformedBatch, i)
			}
			r.Headers = make([]connector.Header, hn)
			for j := range r.Headers {
				var k, v []byte
				k, pos, ok1 = readBytes(data, pos)
				v, pos, ok2 = readBytes(data, pos)
				if !ok1 || !ok2 {
					return nil, fmt.Errorf("%w: record %d: truncated header", ErrMalformedBatch, i)
				}
				r.Headers[j] = connector.Header{Key: string(k), Value: v}
			}
		}
	}
	if pos != len(data) {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrMalformedBatch, len(data)-pos)
	}
	return out, nil
}

// readUvarint reads the varint at data[pos:], the one-byte case without calling
// binary.Uvarint. (It is not inlined: the compiler's budget is exceeded by the call to the slow
// path, and so are readBytes and readVarint.)
func readUvarint(data []byte, pos int) (uint64, int, bool) {
	if pos < len(data) && data[pos] < 0x80 {
		return uint64(data[pos]), pos + 1, true
	}
	return readUvarintSlow(data, pos)
}

func readUvarintSlow(data []byte, pos int) (uint64, int, bool) {
	if pos >= len(data) {
		return 0, pos, false
	}
	v, n := binary.Uvarint(data[pos:])
	if n <= 0 {
		return 0, pos, false
	}
	return v, pos + n, true
}

func readVarint(data []byte, pos int) (int64, int, bool) {
	u, pos, ok := readUvarint(data, pos)
	return int64(u>>1) ^ -int64(u&1), pos, ok // zigzag, as binary.Varint
}

// readBytes reads a length-prefixed field as a full slice of data (nil when empty).
func readBytes(data []byte, pos int) ([]byte, int, bool) {
	l, pos, ok := readUvarint(data, pos)
	if !ok || l > uint64(len(data)-pos) {
		return nil, pos, false
	}
	if l == 0 {
		return nil, pos, true
	}
	end := pos + int(l)
	return data[pos:end:end], end, true
}
