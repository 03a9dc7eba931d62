package template

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// Lookup finds a field of a JSON document by path and returns its raw JSON text (a string with its
// quotes). A path segment names an object member; on an array, a segment that is a number picks an
// element. ok is false when the path does not lead anywhere (a missing member, an index out of
// range, a scalar where an object was needed) or the field is null. err is set when the document
// is not JSON (as far as it had to be read).
//
// It scans the document without decoding what it skips, so a lookup costs a pass over at most the
// bytes before the field.
func Lookup(doc []byte, path []string) (raw []byte, ok bool, err error) {
	s := scanner{b: doc}
	s.ws()
	for _, seg := range path {
		if s.i >= len(s.b) {
			return nil, false, s.fail("unexpected end of the value")
		}
		switch s.b[s.i] {
		case '{':
			found, err := s.member(seg)
			if err != nil || !found {
				return nil, false, err
			}
		case '[':
			n, perr := strconv.Atoi(seg)
			if perr != nil || n < 0 {
				return nil, false, nil
			}
			found, err := s.element(n)
			if err != nil || !found {
				return nil, false, err
			}
		default:
			// A scalar has no fields; check it is JSON at all before saying "missing".
			if _, err := s.value(); err != nil {
				return nil, false, err
			}
			return nil, false, nil
		}
	}
	start := s.i
	end, err := s.value()
	if err != nil {
		return nil, false, err
	}
	raw = doc[start:end]
	if string(raw) == "null" {
		return nil, false, nil
	}
	if len(path) == 0 {
		// The whole document: nothing may follow it.
		s.i = end
		s.ws()
		if s.i != len(s.b) {
			return nil, false, s.fail("data after the JSON value")
		}
	}
	return raw, true, nil
}

// AppendText appends the text form of a raw JSON value: a string without quotes and with its
// escapes decoded, an object or array compacted, anything else as it is.
func AppendText(dst, raw []byte) ([]byte, error) {
	if len(raw) == 0 {
		return dst, errors.New("empty value")
	}
	switch raw[0] {
	case '"':
		body := raw[1 : len(raw)-1]
		if bytes.IndexByte(body, '\\') < 0 {
			return append(dst, body...), nil
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return dst, err
		}
		return append(dst, s...), nil
	case '{', '[':
		var buf bytes.Buffer
		if err := json.Compact(&buf, raw); err != nil {
			return dst, err
		}
		return append(dst, buf.Bytes()...), nil
	}
	return append(dst, raw...), nil
}

type scanner struct {
	b []byte
	i int
}

func (s *scanner) fail(msg string) error {
	return fmt.Errorf("the value is not JSON: %s at byte %d", msg, s.i)
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// member moves into the object at s.i to the value of member name. On false the object was
// scanned to its end without finding it.
func (s *scanner) member(name string) (bool, error) {
	s.i++ // '{'
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == '}' {
		return false, nil
	}
	for {
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != '"' {
			return false, s.fail("expected a member name")
		}
		kstart := s.i
		kend, err := s.str()
		if err != nil {
			return false, err
		}
		s.i = kend
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return false, s.fail(`expected ":"`)
		}
		s.i++
		s.ws()
		if keyEquals(s.b[kstart:kend], name) {
			return true, nil
		}
		end, err := s.value()
		if err != nil {
			return false, err
		}
		s.i = end
		s.ws()
		if s.i >= len(s.b) {
			return false, s.fail("unexpected end inside an object")
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case '}':
			return false, nil
		default:
			return false, s.fail(`expected "," or "}"`)
		}
	}
}

// element moves into the array at s.i to element n.
func (s *scanner) element(n int) (bool, error) {
	s.i++ // '['
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == ']' {
		return false, nil
	}
	for k := 0; ; k++ {
		s.ws()
		if k == n {
			return true, nil
		}
		end, err := s.value()
		if err != nil {
			return false, err
		}
		s.i = end
		s.ws()
		if s.i >= len(s.b) {
			return false, s.fail("unexpected end inside an array")
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case ']':
			return false, nil
		default:
			return false, s.fail(`expected "," or "]"`)
		}
	}
}

func keyEquals(quoted []byte, name string) bool {
	body := quoted[1 : len(quoted)-1]
	if bytes.IndexByte(body, '\\') < 0 {
		return string(body) == name
	}
	var s string
	if json.Unmarshal(quoted, &s) != nil {
		return false
	}
	return s == name
}

// str returns the end (exclusive) of the string starting at s.i, without moving.
func (s *scanner) str() (int, error) {
	for j := s.i + 1; j < len(s.b); j++ {
		switch c := s.b[j]; {
		case c == '\\':
			j++
		case c == '"':
			return j + 1, nil
		case c < 0x20:
			return 0, s.fail("control character in a string")
		}
	}
	return 0, s.fail("unterminated string")
}

// value returns the end (exclusive) of the value starting at s.i, without moving. Containers are
// checked only for balance and well-formed strings, not fully validated: Lookup reads what it
// needs.
func (s *scanner) value() (int, error) {
	if s.i >= len(s.b) {
		return 0, s.fail("unexpected end of the value")
	}
	switch c := s.b[s.i]; {
	case c == '"':
		return s.str()
	case c == '{' || c == '[':
		depth := 0
		for j := s.i; j < len(s.b); j++ {
			switch s.b[j] {
			case '"':
				save := s.i
				s.i = j
				end, err := s.str()
				s.i = save
				if err != nil {
					return 0, err
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1, nil
				}
			}
		}
		return 0, s.fail("unterminated object or array")
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	case c == '-' || (c >= '0' && c <= '9'):
		j := s.i
		for j < len(s.b) {
			switch b := s.b[j]; {
			case b >= '0' && b <= '9', b == '-', b == '+', b == '.', b == 'e', b == 'E':
				j++
				continue
			}
			break
		}
		if !validNumber(s.b[s.i:j]) {
			return 0, s.fail("bad number")
		}
		return j, nil
	default:
		r, _ := utf8.DecodeRune(s.b[s.i:])
		return 0, s.fail(fmt.Sprintf("unexpected %q", r))
	}
}

func (s *scanner) literal(word string) (int, error) {
	if !bytes.HasPrefix(s.b[s.i:], []byte(word)) {
		return 0, s.fail("bad literal")
	}
	return s.i + len(word), nil
}

// validNumber checks the JSON number grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func validNumber(b []byte) bool {
	i := 0
	if i < len(b) && b[i] == '-' {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if i < len(b) && b[i] == '0' {
		i++
	} else if digits() == 0 {
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(b)
}
