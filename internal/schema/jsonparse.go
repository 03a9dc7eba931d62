package schema

import (
	"encoding/json"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// jsonObject is a JSON object as parseJSON returns it: its members in document order (a key given
// twice counts with its last value, as encoding/json has it).
type jsonObject []jsonMember

type jsonMember struct {
	key string
	val any
}

// maxJSONDepth bounds the nesting parseJSON follows.
const maxJSONDepth = 1000

// parseJSON reads one JSON value (RFC 8259, whitespace around it allowed) into nil, bool, string,
// json.Number, []any and jsonObject. It copies the document once and slices its strings and numbers
// from that copy, so that only objects, arrays and escaped strings allocate.
func parseJSON(b []byte) (any, error) {
	p := jsonParser{s: string(b)}
	p.space()
	v, err := p.value(0)
	if err != nil {
		return nil, fmt.Errorf("value is not JSON: %v", err)
	}
	p.space()
	if p.i != len(p.s) {
		return nil, fmt.Errorf("value is not JSON: %s after the value", p.what())
	}
	return v, nil
}

type jsonParser struct {
	s string
	i int
}

func (p *jsonParser) space() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// what describes the input at the current offset, for errors.
func (p *jsonParser) what() string {
	if p.i >= len(p.s) {
		return "unexpected end"
	}
	r, _ := utf8.DecodeRuneInString(p.s[p.i:])
	return fmt.Sprintf("invalid character %q at offset %d", r, p.i)
}

func (p *jsonParser) value(depth int) (any, error) {
	if p.i >= len(p.s) {
		return nil, fmt.Errorf("unexpected end")
	}
	switch c := p.s[p.i]; {
	case c == '{':
		return p.object(depth)
	case c == '[':
		return p.array(depth)
	case c == '"':
		return p.str()
	case c == '-' || c >= '0' && c <= '9':
		return p.number()
	case c == 't':
		return true, p.literal("true")
	case c == 'f':
		return false, p.literal("false")
	case c == 'n':
		return nil, p.literal("null")
	}
	return nil, fmt.Errorf("%s", p.what())
}

func (p *jsonParser) literal(lit string) error {
	if len(p.s)-p.i < len(lit) || p.s[p.i:p.i+len(lit)] != lit {
		return fmt.Errorf("%s", p.what())
	}
	p.i += len(lit)
	return nil
}

func (p *jsonParser) object(depth int) (any, error) {
	if depth >= maxJSONDepth {
		return nil, fmt.Errorf("nested deeper than %d", maxJSONDepth)
	}
	p.i++ // {
	p.space()
	obj := jsonObject{}
	if p.i < len(p.s) && p.s[p.i] == '}' {
		p.i++
		return obj, nil
	}
	for {
		if p.i >= len(p.s) || p.s[p.i] != '"' {
			return nil, fmt.Errorf("%s (want a key)", p.what())
		}
		k, err := p.str()
		if err != nil {
			return nil, err
		}
		p.space()
		if p.i >= len(p.s) || p.s[p.i] != ':' {
			return nil, fmt.Errorf("%s (want ':')", p.what())
		}
		p.i++
		p.space()
		v, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		obj = append(obj, jsonMember{k, v})
		p.space()
		if p.i >= len(p.s) {
			return nil, fmt.Errorf("unexpected end")
		}
		switch p.s[p.i] {
		case ',':
			p.i++
			p.space()
		case '}':
			p.i++
			return obj, nil
		default:
			return nil, fmt.Errorf("%s (want ',' or '}')", p.what())
		}
	}
}

func (p *jsonParser) array(depth int) (any, error) {
	if depth >= maxJSONDepth {
		return nil, fmt.Errorf("nested deeper than %d", maxJSONDepth)
	}
	p.i++ // [
	p.space()
	arr := []any{}
	if p.i < len(p.s) && p.s[p.i] == ']' {
		p.i++
		return arr, nil
	}
	for {
		v, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		arr = append(arr, v)
		p.space()
		if p.i >= len(p.s) {
			return nil, fmt.Errorf("unexpected end")
		}
		switch p.s[p.i] {
		case ',':
			p.i++
			p.space()
		case ']':
			p.i++
			return arr, nil
		default:
			return nil, fmt.Errorf("%s (want ',' or ']')", p.what())
		}
	}
}

func (p *jsonParser) number() (any, error) {
	start := p.i
	s := p.s
	i := p.i
	if s[i] == '-' {
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
		p.i = i
		return nil, fmt.Errorf("%s (in a number)", p.what())
	}
	if i < len(s) && s[i] == '.' {
		i++
		d := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == d {
			p.i = i
			return nil, fmt.Errorf("%s (in a number)", p.what())
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
			p.i = i
			return nil, fmt.Errorf("%s (in a number)", p.what())
		}
	}
	p.i = i
	return json.Number(s[start:i]), nil
}

// str reads a string; p.i is at its opening quote.
func (p *jsonParser) str() (string, error) {
	s := p.s
	start := p.i + 1
	for i := start; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			p.i = i + 1
			return s[start:i], nil
		case c == '\\':
			return p.unescape(start, i)
		case c < 0x20:
			p.i = i
			return "", fmt.Errorf("control character %#02x in a string at offset %d", c, i)
		}
	}
	p.i = len(s)
	return "", fmt.Errorf("unexpected end (in a string)")
}

// unescape reads the rest of a string that has escapes; esc is the offset of the first.
func (p *jsonParser) unescape(start, esc int) (string, error) {
	s := p.s
	buf := make([]byte, 0, esc-start+16)
	buf = append(buf, s[start:esc]...)
	i := esc
	for i < len(s) {
		c := s[i]
		switch {
		case c == '"':
			p.i = i + 1
			return string(buf), nil
		case c < 0x20:
			return "", fmt.Errorf("control character %#02x in a string at offset %d", c, i)
		case c != '\\':
			buf = append(buf, c)
			i++
			continue
		}
		if i+1 >= len(s) {
			break
		}
		switch e := s[i+1]; e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r, ok := hex4(s, i+2)
			if !ok {
				return "", fmt.Errorf("invalid \\u escape at offset %d", i)
			}
			i += 6
			if utf16.IsSurrogate(r) {
				if r2, ok := hex4(s, i+2); ok && i+1 < len(s) && s[i] == '\\' && s[i+1] == 'u' {
					if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
						buf = utf8.AppendRune(buf, d)
						i += 6
						continue
					}
				}
				r = utf8.RuneError
			}
			buf = utf8.AppendRune(buf, r)
			continue
		default:
			return "", fmt.Errorf("invalid escape '\\%c' at offset %d", e, i)
		}
		i += 2
	}
	p.i = len(s)
	return "", fmt.Errorf("unexpected end (in a string)")
}

func hex4(s string, i int) (rune, bool) {
	if i+4 > len(s) {
		return 0, false
	}
	v, err := strconv.ParseUint(s[i:i+4], 16, 32)
	return rune(v), err == nil
}
