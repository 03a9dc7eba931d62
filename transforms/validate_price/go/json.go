package main

// A minimal allocation-free JSON scanner for SPEC section 3. The caller checks UTF-8 validity of
// the whole text first (utf8.Valid), so the scanner treats bytes >= 0x80 inside strings as opaque.

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
}

func (p *parser) peek() byte {
	if p.i < len(p.s) {
		return p.s[p.i]
	}
	return 0
}

func (p *parser) ws() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
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

// str scans a string at p.i and returns the offsets of its raw contents (between the quotes).
func (p *parser) str() (start, end int, ok bool) {
	if p.peek() != '"' {
		return 0, 0, false
	}
	p.i++
	start = p.i
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == '"':
			end = p.i
			p.i++
			return start, end, true
		case c == '\\':
			if p.i+1 >= len(p.s) {
				return 0, 0, false
			}
			switch p.s[p.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				p.i += 2
			case 'u':
				if p.i+6 > len(p.s) {
					return 0, 0, false
				}
				for _, h := range p.s[p.i+2 : p.i+6] {
					if hexVal(h) < 0 {
						return 0, 0, false
					}
				}
				p.i += 6
			default:
				return 0, 0, false
			}
		case c < 0x20:
			return 0, 0, false
		default:
			p.i++
		}
	}
	return 0, 0, false
}

func (p *parser) number() bool {
	s, i := p.s, p.i
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	default:
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		d := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == d {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		d := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
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
	if len(raw) <= len(want) {
		return false // no escapes and different, or too short to decode to want
	}
	var buf [16]byte
	d, ok := decodeASCII(raw, buf[:0])
	return ok && string(d) == want
}
