package meter

import (
	"fmt"
	"unicode/utf8"
)

// reader decodes the WebAssembly binary format strictly: LEB128 numbers longer than their type
// allows, or with stray bits in their last byte, are malformed (spec 5.2.2), so the rewriter never
// turns a malformed encoding into a canonical one. Errors panic with *Error; Rewrite recovers them.
type reader struct {
	b    []byte
	p    int
	base int // offset of b[0] in the module, for error messages
}

func (r *reader) fail(format string, args ...any) {
	panic(&Error{Offset: r.base + r.p, Msg: fmt.Sprintf(format, args...)})
}

func (r *reader) done() bool { return r.p >= len(r.b) }

func (r *reader) byte() byte {
	if r.p >= len(r.b) {
		r.fail("unexpected end")
	}
	c := r.b[r.p]
	r.p++
	return c
}

func (r *reader) bytes(n int) []byte {
	if n < 0 || n > len(r.b)-r.p {
		r.fail("unexpected end: %d bytes wanted, %d left", n, len(r.b)-r.p)
	}
	s := r.b[r.p : r.p+n]
	r.p += n
	return s
}

// u32 reads an unsigned LEB128 number of at most 32 bits (5 bytes).
func (r *reader) u32() uint32 {
	var v uint32
	for i := 0; i < 5; i++ {
		c := r.byte()
		if i == 4 {
			if c&0xf0 != 0 {
				r.p--
				r.fail("malformed u32")
			}
			return v | uint32(c)<<28
		}
		v |= uint32(c&0x7f) << (7 * i)
		if c&0x80 == 0 {
			return v
		}
	}
	panic("unreachable")
}

// sleb reads a signed LEB128 number of at most bits bits.
func (r *reader) sleb(bits int) int64 {
	n := (bits + 6) / 7
	var v uint64
	for i := 0; i < n; i++ {
		c := r.byte()
		if i == n-1 {
			if c&0x80 != 0 {
				r.p--
				r.fail("malformed s%d: too long", bits)
			}
			// The bits of the last byte past the type's width must copy its sign bit.
			used := bits - 7*(n-1)
			rest := (c & 0x7f) >> (used - 1)
			if rest != 0 && rest != 0x7f>>(used-1) {
				r.p--
				r.fail("malformed s%d: stray bits", bits)
			}
		}
		v |= uint64(c&0x7f) << (7 * i)
		if c&0x80 == 0 {
			shift := 7 * (i + 1)
			if shift < 64 && c&0x40 != 0 {
				v |= ^uint64(0) << shift
			}
			return int64(v)
		}
	}
	panic("unreachable")
}

// count reads the length of a vector whose entries take at least one byte each: a length beyond
// the bytes left is malformed (and would make a decoder that allocates by it run out of memory).
func (r *reader) count() uint32 {
	at := r.p
	n := r.u32()
	if int64(n) > int64(len(r.b)-r.p) {
		r.p = at
		r.fail("%d entries in %d bytes", n, len(r.b)-r.p)
	}
	return n
}

func (r *reader) name() string {
	n := r.u32()
	b := r.bytes(int(n))
	if !utf8.Valid(b) {
		r.fail("name is not UTF-8")
	}
	return string(b)
}

// appendU32 appends v as unsigned LEB128.
func appendU32(b []byte, v uint32) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

// appendS64 appends v as signed LEB128.
func appendS64(b []byte, v int64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

// reserveU32 appends 5 bytes to hold a u32 written later by putU32 (a padded LEB128, which the
// format allows), and returns their position.
func reserveU32(b []byte) ([]byte, int) {
	return append(b, 0x80, 0x80, 0x80, 0x80, 0x00), len(b)
}

func putU32(b []byte, at int, v uint32) {
	for i := 0; i < 4; i++ {
		b[at+i] = byte(v&0x7f) | 0x80
		v >>= 7
	}
	b[at+4] = byte(v)
}

func appendName(b []byte, s string) []byte {
	b = appendU32(b, uint32(len(s)))
	return append(b, s...)
}
