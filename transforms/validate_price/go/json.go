package main

import (
	"bytes"
	"unicode/utf8"
)

// A minimal allocation-free JSON scanner for SPEC section 3, UTF-8 validation included.

const (
	kindString byte = 's'
	kindNumber byte = 'n'
	kindObject byte = 'o'
	kindArray  byte = 'a'
	kindLit    byte = 'l'
)

type parser struct {
	s     []byte
	i     int
	depth int
	esc   bool // the last string str scanned holds a backslash escape
}

func (p *parser) peek() byte {
	if p.i < len(p.s) {
		return p.s[p.i]
	}
	return 0
}

// isWS marks JSON whitespace. Table lookups instead of comparison chains: in Go's WebAssembly
// code every branch is a jump through a dispatch table, so fewer branches per byte pay off.
var isWS = [256]bool{' ': true, '\t': true, '\n': true, '\r': true}

func (p *parser) ws() {
	s, i := p.s, p.i
	for i < len(s) && isWS[s[i]] {
		i++
	}
	p.i = i
}

// value scans one JSON value at p.i and reports its kind.
func (p *parser) value() (byte, bool) {
	switch c := p.peek(); {
	case c == '"':
		_, _, ok := p.str()
		return kindString, ok
	case c == '{':
		return kindObject, p.container('}')
	case c == '[':
		return kindArray, p.container(']')
	case c == '-' || (c >= '0' && c <= '9'):
		return kindNumber, p.number()
	case c == 't':
		return kindLit, p.lit("true")
	case c == 'f':
		return kindLit, p.lit("false")
	case c == 'n':
		return kindLit, p.lit("null")
	}
	return 0, false
}

func (p *parser) lit(w string) bool {
	if len(p.s)-p.i >= len(w) && string(p.s[p.i:p.i+len(w)]) == w {
		p.i += len(w)
		return true
	}
	return false
}

// container scans an object or array whose opening byte is at p.i.
func (p *parser) container(closer byte) bool {
	p.depth++
	if p.depth > maxDepth {
		return false
	}
	p.i++
	p.ws()
	if p.peek() == closer {
		p.i++
		p.depth--
		return true
	}
	for {
		if closer == '}' {
			if _, _, ok := p.str(); !ok {
				return false
			}
			p.ws()
			if p.peek() != ':' {
				return false
			}
			p.i++
			p.ws()
		}
		if _, ok := p.value(); !ok {
			return false
		}
		p.ws()
		switch p.peek() {
		case ',':
			p.i++
			p.ws()
		case closer:
			p.i++
			p.depth--
			return true
		default:
			return false
		}
	}
}

// strPlain marks the bytes a string can hold without a closer look: printable ASCII except '"'
// and '\\'. Table lookups instead of comparison chains: in Go's WebAssembly code every branch is
// a jump through a dispatch table, so fewer branches per byte pay off; for the same reason str
// first skips eight bytes at a time (one 64-bit load and a few bit operations, see plain8).
var strPlain = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

func le64(b []byte) uint64 {
	_ = b[7]
	return uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
		uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
}

// plain8 reports whether none of the eight bytes of x is '"', '\\', below 0x20 or above 0x7F.
func plain8(x uint64) bool {
	quote := x ^ (ones * '"')
	slash := x ^ (ones * '\\')
	// A byte b < 0x80 is zero / below 0x20 exactly when b - k borrows into its high bit; bytes with
	// the high bit set are caught by x itself.
	found := (quote - ones) &^ quote
	found |= (slash - ones) &^ slash
	found |= x - ones*0x20
	return (found|x)&highs == 0
}

// str scans a string at p.i and returns the offsets of its raw contents (between the quotes).
// It checks that multi-byte characters are well-formed UTF-8 (RFC 3629); bytes >= 0x80 outside
// strings are syntax errors anyway, so no separate UTF-8 pass is needed.
func (p *parser) str() (start, end int, ok bool) {
	s, i := p.s, p.i
	if i >= len(s) || s[i] != '"' {
		return 0, 0, false
	}
	i++
	start = i
	p.esc = false
	for {
		// Plain bytes, eight at a time first (inlined by hand: a call costs more than this loop).
		for i+8 <= len(s) && plain8(le64(s[i:])) {
			i += 8
		}
		for i < len(s) && strPlain[s[i]] {
			i++
		}
		if i >= len(s) {
			return 0, 0, false
		}
		switch c := s[i]; {
		case c == '"':
			p.i = i + 1
			return start, i, true
		case c == '\\':
			if i+1 >= len(s) {
				return 0, 0, false
			}
			p.esc = true
			switch s[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(s) || hexVal(s[i+2])|hexVal(s[i+3])|hexVal(s[i+4])|hexVal(s[i+5]) < 0 {
					return 0, 0, false
				}
				i += 6
			default:
				return 0, 0, false
			}
		case c < 0x20:
			return 0, 0, false
		default:
			r, size := utf8.DecodeRune(s[i:])
			if r == utf8.RuneError && size <= 1 {
				return 0, 0, false
			}
			i += size
		}
	}
}

func (p *parser) number() bool {
	s, i := p.s, p.i
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && uint(s[i]-'1') < 9:
		for i++; i < len(s) && uint(s[i]-'0') < 10; i++ {
		}
	default:
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		d := i
		for i < len(s) && uint(s[i]-'0') < 10 {
			i++
		}
		if i == d {
			return false
		}
	}
	if i < len(s) && s[i]|0x20 == 'e' {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		d := i
		for i < len(s) && uint(s[i]-'0') < 10 {
			i++
		}
		if i == d {
			return false
		}
	}
	p.i = i
	return true
}

func hexVal(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// decodeASCII decodes the raw contents of a valid JSON string into dst, failing when the decoded
// text is not ASCII or longer than cap(dst).
func decodeASCII(raw, dst []byte) ([]byte, bool) {
	for i := 0; i < len(raw); {
		c := raw[i]
		if c >= 0x80 {
			return nil, false
		}
		if c == '\\' {
			switch raw[i+1] {
			case 'u':
				r := hexVal(raw[i+2])<<12 | hexVal(raw[i+3])<<8 | hexVal(raw[i+4])<<4 | hexVal(raw[i+5])
				if r >= 0x80 {
					return nil, false
				}
				c = byte(r)
				i += 6
			case 'b':
				c, i = '\b', i+2
			case 'f':
				c, i = '\f', i+2
			case 'n':
				c, i = '\n', i+2
			case 'r':
				c, i = '\r', i+2
			case 't':
				c, i = '\t', i+2
			default: // '"', '\\', '/'
				c, i = raw[i+1], i+2
			}
		} else {
			i++
		}
		if len(dst) == cap(dst) {
			return nil, false
		}
		dst = append(dst, c)
	}
	return dst, true
}

// nameIs reports whether the raw contents of a valid JSON string decode to the ASCII name want.
func nameIs(raw []byte, want string) bool {
	if len(raw) == len(want) && string(raw) == want {
		return true
	}
	if len(raw) <= len(want) || bytes.IndexByte(raw, '\\') < 0 {
		return false // different without escapes, or too short to decode to want
	}
	var buf [16]byte
	d, ok := decodeASCII(raw, buf[:0])
	return ok && string(d) == want
}
