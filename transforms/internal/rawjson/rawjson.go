// Package rawjson finds and rewrites values inside JSON documents without decoding them, so
// everything a transform does not touch stays byte for byte as it was (member order, number
// spelling, escapes, whitespace). It allocates only when a member name holds escapes.
package rawjson

import (
	"encoding/json"
	"errors"
	"unicode/utf8"
)

// MaxDepth is the deepest nesting of objects and arrays accepted.
const MaxDepth = 256

// ErrSyntax reports a document that is not one valid JSON value.
var ErrSyntax = errors.New("not valid JSON")

// Kind is the type of a JSON value, from its first byte.
type Kind byte

// Kinds.
const (
	Invalid Kind = iota
	Object
	Array
	String
	Number
	Bool
	Null
)

// KindOf returns the kind of the value v (no leading whitespace).
func KindOf(v []byte) Kind {
	if len(v) == 0 {
		return Invalid
	}
	switch c := v[0]; {
	case c == '{':
		return Object
	case c == '[':
		return Array
	case c == '"':
		return String
	case c == '-' || c >= '0' && c <= '9':
		return Number
	case c == 't' || c == 'f':
		return Bool
	case c == 'n':
		return Null
	}
	return Invalid
}

// Trim returns doc without surrounding JSON whitespace and the offset where it starts.
func Trim(doc []byte) ([]byte, int) {
	s, e := 0, len(doc)
	for s < e && isSpace(doc[s]) {
		s++
	}
	for e > s && isSpace(doc[e-1]) {
		e--
	}
	return doc[s:e], s
}

// Valid reports whether doc is one JSON value (surrounding whitespace allowed) in valid UTF-8,
// nested at most MaxDepth deep.
func Valid(doc []byte) bool {
	if !utf8.Valid(doc) {
		return false
	}
	v, _ := Trim(doc)
	end, ok := skip(v, 0, 0)
	return ok && end == len(v)
}

// Member is one member of an object: offsets are relative to the object passed to Members.
type Member struct {
	// RawName is the name as written, without quotes (escapes not decoded).
	RawName []byte
	// NameStart and NameEnd delimit the name including its quotes.
	NameStart, NameEnd int
	// ValueStart and ValueEnd delimit the value.
	ValueStart, ValueEnd int
}

// Name returns the decoded member name.
func (m Member) Name() string {
	for _, c := range m.RawName {
		if c == '\\' {
			var s string
			quoted := append(append([]byte{'"'}, m.RawName...), '"')
			if json.Unmarshal(quoted, &s) == nil {
				return s
			}
			break
		}
	}
	return string(m.RawName)
}

// Members calls fn for each member of the valid JSON object obj (no surrounding whitespace), in
// order, until fn returns false. It returns ErrSyntax when obj is not an object.
func Members(obj []byte, fn func(m Member) bool) error {
	if KindOf(obj) != Object {
		return ErrSyntax
	}
	i := ws(obj, 1)
	if i < len(obj) && obj[i] == '}' {
		return nil
	}
	for {
		ks := i
		ke, ok := skip(obj, i, 1)
		if !ok || obj[ks] != '"' {
			return ErrSyntax
		}
		i = ws(obj, ke)
		if i >= len(obj) || obj[i] != ':' {
			return ErrSyntax
		}
		vs := ws(obj, i+1)
		ve, ok := skip(obj, vs, 1)
		if !ok {
			return ErrSyntax
		}
		if !fn(Member{RawName: obj[ks+1 : ke-1], NameStart: ks, NameEnd: ke, ValueStart: vs, ValueEnd: ve}) {
			return nil
		}
		i = ws(obj, ve)
		if i >= len(obj) {
			return ErrSyntax
		}
		switch obj[i] {
		case ',':
			i = ws(obj, i+1)
		case '}':
			return nil
		default:
			return ErrSyntax
		}
	}
}

// Elements calls fn with the offsets of each element of the valid JSON array arr, in order, until
// fn returns false.
func Elements(arr []byte, fn func(start, end int) bool) error {
	if KindOf(arr) != Array {
		return ErrSyntax
	}
	i := ws(arr, 1)
	if i < len(arr) && arr[i] == ']' {
		return nil
	}
	for {
		e, ok := skip(arr, i, 1)
		if !ok {
			return ErrSyntax
		}
		if !fn(i, e) {
			return nil
		}
		i = ws(arr, e)
		if i >= len(arr) {
			return ErrSyntax
		}
		switch arr[i] {
		case ',':
			i = ws(arr, i+1)
		case ']':
			return nil
		default:
			return ErrSyntax
		}
	}
}

// Span is a byte range [Start, End) of a document.
type Span struct{ Start, End int }

// FindAll returns the ranges of every value reached by following path (member names) from the
// valid JSON object obj. Duplicate member names are all followed, so a masking transform cannot
// miss a second occurrence. Arrays are not traversed.
func FindAll(obj []byte, path []string, dst []Span) []Span {
	return findAll(obj, 0, path, dst)
}

func findAll(obj []byte, base int, path []string, dst []Span) []Span {
	if len(path) == 0 || KindOf(obj) != Object {
		return dst
	}
	_ = Members(obj, func(m Member) bool {
		if !nameIs(m, path[0]) {
			return true
		}
		if len(path) == 1 {
			dst = append(dst, Span{base + m.ValueStart, base + m.ValueEnd})
		} else {
			dst = findAll(obj[m.ValueStart:m.ValueEnd], base+m.ValueStart, path[1:], dst)
		}
		return true
	})
	return dst
}

func nameIs(m Member, want string) bool {
	if string(m.RawName) == want {
		return true
	}
	for _, c := range m.RawName {
		if c == '\\' {
			return m.Name() == want
		}
	}
	return false
}

// AppendString appends s as a JSON string (HTML characters are not escaped).
func AppendString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c == '\n':
				dst = append(dst, '\\', 'n')
			case c == '\r':
				dst = append(dst, '\\', 'r')
			case c == '\t':
				dst = append(dst, '\\', 't')
			case c < 0x20:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&15])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			dst = append(dst, `\ufffd`...)
		} else {
			dst = append(dst, s[i:i+n]...)
		}
		i += n
	}
	return append(dst, '"')
}

// Unquote decodes a JSON string value (with its quotes).
func Unquote(v []byte) (string, bool) {
	if KindOf(v) != String {
		return "", false
	}
	raw := v[1 : len(v)-1]
	for _, c := range raw {
		if c == '\\' {
			var s string
			if json.Unmarshal(v, &s) != nil {
				return "", false
			}
			return s, true
		}
	}
	return string(raw), true
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func ws(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// skip returns the end of the value starting at b[i].
func skip(b []byte, i, depth int) (int, bool) {
	if i >= len(b) {
		return 0, false
	}
	switch c := b[i]; {
	case c == '"':
		i++
		for i < len(b) {
			switch c := b[i]; {
			case c == '"':
				return i + 1, true
			case c == '\\':
				if i+1 >= len(b) {
					return 0, false
				}
				switch b[i+1] {
				case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
					i += 2
				case 'u':
					if i+6 > len(b) || !isHex(b[i+2]) || !isHex(b[i+3]) || !isHex(b[i+4]) || !isHex(b[i+5]) {
						return 0, false
					}
					i += 6
				default:
					return 0, false
				}
			case c < 0x20:
				return 0, false
			default:
				i++
			}
		}
		return 0, false
	case c == '{' || c == '[':
		if depth >= MaxDepth {
			return 0, false
		}
		closer := byte('}')
		if c == '[' {
			closer = ']'
		}
		i = ws(b, i+1)
		if i < len(b) && b[i] == closer {
			return i + 1, true
		}
		for {
			if closer == '}' {
				if i >= len(b) || b[i] != '"' {
					return 0, false
				}
				e, ok := skip(b, i, depth+1)
				if !ok {
					return 0, false
				}
				i = ws(b, e)
				if i >= len(b) || b[i] != ':' {
					return 0, false
				}
				i = ws(b, i+1)
			}
			e, ok := skip(b, i, depth+1)
			if !ok {
				return 0, false
			}
			i = ws(b, e)
			if i >= len(b) {
				return 0, false
			}
			if b[i] == closer {
				return i + 1, true
			}
			if b[i] != ',' {
				return 0, false
			}
			i = ws(b, i+1)
		}
	case c == '-' || c >= '0' && c <= '9':
		return number(b, i)
	case c == 't':
		return literal(b, i, "true")
	case c == 'f':
		return literal(b, i, "false")
	case c == 'n':
		return literal(b, i, "null")
	}
	return 0, false
}

func literal(b []byte, i int, w string) (int, bool) {
	if len(b)-i >= len(w) && string(b[i:i+len(w)]) == w {
		return i + len(w), true
	}
	return 0, false
}

func number(s []byte, i int) (int, bool) {
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
		return 0, false
	}
	if i < len(s) && s[i] == '.' {
		i++
		d := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == d {
			return 0, false
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
			return 0, false
		}
	}
	return i, true
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }
