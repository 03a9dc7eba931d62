package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

// BatchSize returns an upper bound of the packed size of recs, to size a buffer.
func BatchSize(recs []connector.Record) int {
	n := binary.MaxVarintLen64
	for i := range recs {
		r := &recs[i]
		n += 6*binary.MaxVarintLen64 + len(r.Key) + len(r.Value) + len(r.Position.Partition) + len(r.Position.Cursor)
		for _, h := range r.Headers {
			n += 2*binary.MaxVarintLen64 + len(h.Key) + len(h.Value)
		}
	}
	return n
}

// AppendBatch packs recs in the batch layout of sdk/proto/pluginv1 and appends them to buf.
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
// therefore not reuse; empty fields are nil. Empty data is an empty batch.
func DecodeBatch(data []byte) ([]connector.Record, error) {
	if len(data) == 0 {
		return nil, nil
	}
	d := decoder{data: data}
	n := d.uvarint()
	// Every record takes at least 7 bytes; refuse counts the data cannot hold.
	if d.err != nil || n > uint64(len(data)/7+1) {
		return nil, fmt.Errorf("%w: bad record count", ErrMalformedBatch)
	}
	out := make([]connector.Record, n)
	var lastPart string
	for i := range out {
		r := &out[i]
		r.Key = d.bytes()
		r.Value = d.bytes()
		if ts := d.varint(); ts != 0 {
			r.Time = time.Unix(0, ts)
		}
		if p := d.bytes(); len(p) > 0 {
			if string(p) != lastPart { // no allocation for the comparison
				lastPart = string(p)
			}
			r.Position.Partition = lastPart
		}
		r.Position.Offset = d.varint()
		r.Position.Cursor = d.bytes()
		if hn := d.uvarint(); hn > 0 {
			if hn > uint64(len(d.data)) {
				return nil, fmt.Errorf("%w: bad header count", ErrMalformedBatch)
			}
			r.Headers = make([]connector.Header, hn)
			for j := range r.Headers {
				r.Headers[j] = connector.Header{Key: string(d.bytes()), Value: d.bytes()}
			}
		}
		if d.err != nil {
			return nil, fmt.Errorf("%w: record %d: %v", ErrMalformedBatch, i, d.err)
		}
	}
	if len(d.data) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrMalformedBatch, len(d.data))
	}
	return out, nil
}

type decoder struct {
	data []byte
	err  error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.data)
	if n <= 0 {
		d.err = errors.New("truncated varint")
		return 0
	}
	d.data = d.data[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.data)
	if n <= 0 {
		d.err = errors.New("truncated varint")
		return 0
	}
	d.data = d.data[n:]
	return v
}

func (d *decoder) bytes() []byte {
	l := d.uvarint()
	if d.err != nil {
		return nil
	}
	if l > uint64(len(d.data)) {
		d.err = errors.New("length past the end")
		return nil
	}
	if l == 0 {
		return nil
	}
	b := d.data[:l:l]
	d.data = d.data[l:]
	return b
}
