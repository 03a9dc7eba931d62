package schema

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math"
	"math/big"
	"strconv"
)

// avroReader reads Avro binary; the first failure sticks in err, and the path of the value it
// happened in gathers as the decoding unwinds.
type avroReader struct {
	b   []byte
	i   int
	err *pathError
}

func (r *avroReader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = &pathError{msg: fmt.Sprintf(format, args...)}
	}
}

func (r *avroReader) truncated() {
	r.fail("payload ends early (truncated, or written with another schema)")
}

func (r *avroReader) long() int64 {
	var v uint64
	for s := uint(0); s < 64; s += 7 {
		if r.i >= len(r.b) {
			r.truncated()
			return 0
		}
		c := r.b[r.i]
		r.i++
		v |= uint64(c&0x7f) << s
		if c < 0x80 {
			return int64(v>>1) ^ -int64(v&1)
		}
	}
	r.fail("malformed varint")
	return 0
}

// take returns the next n bytes.
func (r *avroReader) take(n int64) []byte {
	if n < 0 {
		r.fail("negative length %d", n)
		return nil
	}
	if n > int64(len(r.b)-r.i) {
		r.truncated()
		return nil
	}
	b := r.b[r.i : r.i+int(n)]
	r.i += int(n)
	return b
}

// maxZeroSizeItems bounds arrays and maps of values that take no bytes, which a corrupt count
// could otherwise make endless.
const maxZeroSizeItems = 1 << 20

// decodeAvro appends the JSON form of the Avro binary payload to dst.
func decodeAvro(n *avroNode, payload, dst []byte) ([]byte, error) {
	r := avroReader{b: payload}
	dst = n.decode(&r, dst)
	if r.err != nil {
		return dst, r.err
	}
	if r.i != len(r.b) {
		return dst, fmt.Errorf("%d bytes left after the value (written with another schema?)", len(r.b)-r.i)
	}
	return dst, nil
}

func (n *avroNode) decode(r *avroReader, dst []byte) []byte {
	switch n.kind {
	case avNull:
		return append(dst, "null"...)
	case avBoolean:
		if r.i >= len(r.b) {
			r.truncated()
			return dst
		}
		c := r.b[r.i]
		r.i++
		switch c {
		case 0:
			return append(dst, "false"...)
		case 1:
			return append(dst, "true"...)
		}
		r.fail("invalid boolean byte %#02x", c)
		return dst
	case avInt, avLong:
		v := r.long()
		if n.kind == avInt && (v > math.MaxInt32 || v < math.MinInt32) {
			r.fail("int %d out of range", v)
		}
		return strconv.AppendInt(dst, v, 10)
	case avFloat:
		if len(r.b)-r.i < 4 {
			r.truncated()
			return dst
		}
		f := math.Float32frombits(binary.LittleEndian.Uint32(r.b[r.i:]))
		r.i += 4
		return appendJSONFloat(dst, float64(f), 32)
	case avDouble:
		if len(r.b)-r.i < 8 {
			r.truncated()
			return dst
		}
		f := math.Float64frombits(binary.LittleEndian.Uint64(r.b[r.i:]))
		r.i += 8
		return appendJSONFloat(dst, f, 64)
	case avString:
		s := r.take(r.long())
		if r.err != nil {
			return dst
		}
		return appendJSONString(dst, s)
	case avBytes:
		b := r.take(r.long())
		if r.err != nil {
			return dst
		}
		return appendBase64(dst, b)
	case avFixed:
		b := r.take(int64(n.size))
		if r.err != nil {
			return dst
		}
		return appendBase64(dst, b)
	case avDecimalBytes:
		b := r.take(r.long())
		if r.err != nil {
			return dst
		}
		return appendDecimal(dst, b, n.scale)
	case avDecimalFixed:
		b := r.take(int64(n.size))
		if r.err != nil {
			return dst
		}
		return appendDecimal(dst, b, n.scale)
	case avDuration:
		b := r.take(12)
		if r.err != nil {
			return dst
		}
		dst = append(dst, `{"months":`...)
		dst = strconv.AppendUint(dst, uint64(binary.LittleEndian.Uint32(b)), 10)
		dst = append(dst, `,"days":`...)
		dst = strconv.AppendUint(dst, uint64(binary.LittleEndian.Uint32(b[4:])), 10)
		dst = append(dst, `,"milliseconds":`...)
		dst = strconv.AppendUint(dst, uint64(binary.LittleEndian.Uint32(b[8:])), 10)
		return append(dst, '}')
	case avEnum:
		i := r.long()
		if r.err != nil {
			return dst
		}
		if i < 0 || i >= int64(len(n.symJSON)) {
			r.fail("enum index %d out of range for %s (%d symbols)", i, n.name, len(n.symJSON))
			return dst
		}
		return append(dst, n.symJSON[i]...)
	case avUnion:
		i := r.long()
		if r.err != nil {
			return dst
		}
		if i < 0 || i >= int64(len(n.branches)) {
			r.fail("union index %d out of range (%d branches)", i, len(n.branches))
			return dst
		}
		return n.branches[i].decode(r, dst)
	case avRecord:
		dst = append(dst, '{')
		for i := range n.fields {
			f := &n.fields[i]
			dst = append(dst, f.key...)
			dst = f.node.decode(r, dst)
			if r.err != nil {
				r.err.path = append(r.err.path, f.name)
				return dst
			}
		}
		return append(dst, '}')
	case avArray:
		dst = append(dst, '[')
		k := 0
		for {
			count := r.blockCount(n.elem)
			if r.err != nil || count == 0 {
				break
			}
			for ; count > 0; count-- {
				if k > 0 {
					dst = append(dst, ',')
				}
				dst = n.elem.decode(r, dst)
				if r.err != nil {
					r.err.path = append(r.err.path, "["+strconv.Itoa(k)+"]")
					return dst
				}
				k++
			}
		}
		return append(dst, ']')
	case avMap:
		dst = append(dst, '{')
		k := 0
		for {
			count := r.blockCount(n.elem)
			if r.err != nil || count == 0 {
				break
			}
			for ; count > 0; count-- {
				if k > 0 {
					dst = append(dst, ',')
				}
				key := r.take(r.long())
				if r.err != nil {
					return dst
				}
				dst = appendJSONString(dst, key)
				dst = append(dst, ':')
				dst = n.elem.decode(r, dst)
				if r.err != nil {
					r.err.path = append(r.err.path, string(key))
					return dst
				}
				k++
			}
		}
		return append(dst, '}')
	}
	r.fail("unsupported schema node")
	return dst
}

// blockCount reads the item count of an array or map block (a negative count is followed by the
// block's size in bytes).
func (r *avroReader) blockCount(elem *avroNode) int64 {
	count := r.long()
	if count < 0 {
		count = -count
		r.long()
	}
	if r.err != nil {
		return 0
	}
	if count < 0 || (elem.zeroSize && count > maxZeroSizeItems) || (!elem.zeroSize && count > int64(len(r.b)-r.i)) {
		r.fail("block of %d items does not fit in the payload", count)
		return 0
	}
	return count
}

func appendBase64(dst, b []byte) []byte {
	dst = append(dst, '"')
	dst = base64.StdEncoding.AppendEncode(dst, b)
	return append(dst, '"')
}

// appendDecimal appends the two's-complement big-endian unscaled value b with scale digits after
// the point, as an exact JSON number ("12.50" for 1250 with scale 2).
func appendDecimal(dst, b []byte, scale int) []byte {
	var digits []byte
	var buf [24]byte
	neg := false
	switch {
	case len(b) == 0:
		digits = append(buf[:0], '0')
	case len(b) <= 8:
		v := int64(int8(b[0]))
		for _, c := range b[1:] {
			v = v<<8 | int64(c)
		}
		u := uint64(v)
		if v < 0 {
			neg, u = true, -u
		}
		digits = strconv.AppendUint(buf[:0], u, 10)
	default:
		x := new(big.Int).SetBytes(b)
		if b[0]&0x80 != 0 {
			x.Sub(x, new(big.Int).Lsh(big.NewInt(1), uint(8*len(b))))
			neg = true
			x.Neg(x)
		}
		digits = x.Append(nil, 10)
	}
	if neg {
		dst = append(dst, '-')
	}
	if scale <= 0 {
		return append(dst, digits...)
	}
	if len(digits) > scale {
		dst = append(dst, digits[:len(digits)-scale]...)
		dst = append(dst, '.')
		return append(dst, digits[len(digits)-scale:]...)
	}
	dst = append(dst, '0', '.')
	for range scale - len(digits) {
		dst = append(dst, '0')
	}
	return append(dst, digits...)
}
