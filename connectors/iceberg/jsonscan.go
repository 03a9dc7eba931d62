package iceberg

import (
	"errors"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// The converter reads each record's JSON value once, without building maps or interface values:
// it walks the object, and for the keys a column reads it notes where the value lies (a span);
// other values are skipped by structure. The spans are converted to column values afterwards.

// jsonKind is the kind of a JSON value a span covers.
type jsonKind uint8

const (
	jAbsent jsonKind = iota // the key did not occur
	jNull
	jTrue
	jFalse
	jNumber
	jString // the bytes between the quotes; esc says whether they hold escapes
	jObject
	jArray
)

func (k jsonKind) String() string {
	switch k {
	case jNull:
		return "null"
	case jTrue, jFalse:
		return "a boolean"
	case jNumber:
		return "a number"
	case jString:
		return "a string"
	case jObject:
		return "an object"
	case jArray:
		return "an array"
	}
	return "nothing"
}

// span is where one value lies in a record's JSON.
type span struct {
	kind       jsonKind
	esc        bool // a string with escapes
	start, end int  // strings: inside the quotes
}

// pathNode is one level of the key tree the columns read: at the top level the keys of the
// record's object, below them the keys of nested objects named by `from` paths.
type pathNode struct {
	cols     []int // columns reading the value under this key (more than one may)
	children map[string]*pathNode
}

func (n *pathNode) child(key string) *pathNode {
	if n.children == nil {
		n.children = map[string]*pathNode{}
	}
	c := n.children[key]
	if c == nil {
		c = &pathNode{}
		n.children[key] = c
	}
	return c
}

// syntaxError is malformed JSON at an offset of the record's value.
type syntaxError struct {
	off int
	msg string
}

func (e *syntaxError) Error() string { return fmt.Sprintf("invalid JSON at byte %d: %s", e.off, e.msg) }

var errDepth = errors.New("invalid JSON: nested deeper than 1000 levels")

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// scanString reads the string starting at b[i] == '"'. It returns the offset after the closing
// quote and whether the string holds escapes.
func scanString(b []byte, i int) (int, bool, error) {
	i++
	esc := false
	for i < len(b) {
		c := b[i]
		switch {
		case c == '"':
			return i + 1, esc, nil
		case c == '\\':
			esc = true
			i += 2
		case c < 0x20:
			return 0, false, &syntaxError{i, "control character in string"}
		default:
			i++
		}
	}
	return 0, false, &syntaxError{len(b), "unterminated string"}
}

// scanValue reads the value starting at b[i] (no leading space) and returns its span and the
// offset after it. Objects and arrays are checked for structure, not walked for keys.
func scanValue(b []byte, i int, depth int) (span, int, error) {
	if i >= len(b) {
		return span{}, 0, &syntaxError{i, "unexpected end of value"}
	}
	switch c := b[i]; {
	case c == '"':
		end, esc, err := scanString(b, i)
		if err != nil {
			return span{}, 0, err
		}
		return span{kind: jString, esc: esc, start: i + 1, end: end - 1}, end, nil
	case c == '-' || (c >= '0' && c <= '9'):
		j := i + 1
		for j < len(b) {
			d := b[j]
			if (d >= '0' && d <= '9') || d == '.' || d == 'e' || d == 'E' || d == '+' || d == '-' {
				j++
				continue
			}
			break
		}
		return span{kind: jNumber, start: i, end: j}, j, nil
	case c == '{' || c == '[':
		end, err := skipNested(b, i, depth)
		if err != nil {
			return span{}, 0, err
		}
		k := jObject
		if c == '[' {
			k = jArray
		}
		return span{kind: k, start: i, end: end}, end, nil
	case c == 't':
		return literal(b, i, "true", jTrue)
	case c == 'f':
		return literal(b, i, "false", jFalse)
	case c == 'n':
		return literal(b, i, "null", jNull)
	default:
		return span{}, 0, &syntaxError{i, fmt.Sprintf("unexpected %q", c)}
	}
}

func literal(b []byte, i int, word string, k jsonKind) (span, int, error) {
	if len(b)-i < len(word) || string(b[i:i+len(word)]) != word {
		return span{}, 0, &syntaxError{i, "invalid literal"}
	}
	return span{kind: k, start: i, end: i + len(word)}, i + len(word), nil
}

// skipNested skips the object or array starting at b[i], checking brackets and strings.
func skipNested(b []byte, i int, depth int) (int, error) {
	if depth > 1000 {
		return 0, errDepth
	}
	var stack [64]byte
	open := stack[:0]
	for i < len(b) {
		switch c := b[i]; c {
		case '{', '[':
			if len(open)+depth > 1000 {
				return 0, errDepth
			}
			open = append(open, c)
			i++
		case '}', ']':
			if len(open) == 0 || (c == '}') != (open[len(open)-1] == '{') {
				return 0, &syntaxError{i, fmt.Sprintf("unexpected %q", c)}
			}
			open = open[:len(open)-1]
			i++
			if len(open) == 0 {
				return i, nil
			}
		case '"':
			end, _, err := scanString(b, i)
			if err != nil {
				return 0, err
			}
			i = end
		default:
			i++
		}
	}
	return 0, &syntaxError{len(b), "unterminated object or array"}
}

// unread is a top-level field of a record that no column reads, with a value other than null:
// where its key (inside the quotes) and its value lie.
type unread struct {
	key, val span
}

// walkObject reads the object at b[i] and fills spans[col] for every column node names, and
// descends into nested objects the tree names. It returns the offset after the object. When
// extra is not nil, the fields of this object that node does not name and whose value is not
// null are appended to it.
func walkObject(b []byte, i int, node *pathNode, spans []span, scratch *[]byte, depth int, extra *[]unread) (int, error) {
	if i >= len(b) || b[i] != '{' {
		return 0, &syntaxError{i, "want an object"}
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, nil
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return 0, &syntaxError{i, "want a key"}
		}
		end, esc, err := scanString(b, i)
		if err != nil {
			return 0, err
		}
		keyStart := i + 1
		key := b[keyStart : end-1]
		if esc {
			*scratch, err = unescape((*scratch)[:0], key)
			if err != nil {
				return 0, &syntaxError{i, err.Error()}
			}
			key = *scratch
		}
		child := node.children[string(key)]
		i = skipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return 0, &syntaxError{i, "want ':' after a key"}
		}
		i = skipSpace(b, i+1)
		if child == nil && extra != nil {
			var sp span
			if sp, i, err = scanValue(b, i, depth); err != nil {
				return 0, err
			}
			if sp.kind != jNull {
				*extra = append(*extra, unread{key: span{kind: jString, esc: esc, start: keyStart, end: end - 1}, val: sp})
			}
		} else if i, err = walkValue(b, i, child, spans, scratch, depth); err != nil {
			return 0, err
		}
		i = skipSpace(b, i)
		if i >= len(b) {
			return 0, &syntaxError{i, "unterminated object"}
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return i + 1, nil
		default:
			return 0, &syntaxError{i, fmt.Sprintf("want ',' or '}', got %q", b[i])}
		}
	}
}

// walkValue reads the value at i, which node (nil: no column reads it) stands for: into an
// object or array when paths lead below it, else noting its span for the node's columns.
func walkValue(b []byte, i int, node *pathNode, spans []span, scratch *[]byte, depth int) (int, error) {
	if node != nil && node.children != nil && i < len(b) && (b[i] == '{' || b[i] == '[') {
		start := i
		if depth > 1000 {
			return 0, errDepth
		}
		kind := jObject
		var err error
		if b[i] == '{' {
			i, err = walkObject(b, i, node, spans, scratch, depth+1, nil)
		} else {
			kind = jArray
			i, err = walkArray(b, i, node, spans, scratch, depth+1)
		}
		if err != nil {
			return 0, err
		}
		for _, c := range node.cols {
			spans[c] = span{kind: kind, start: start, end: i}
		}
		return i, nil
	}
	sp, i, err := scanValue(b, i, depth)
	if err != nil {
		return 0, err
	}
	if node != nil {
		for _, c := range node.cols {
			spans[c] = sp
		}
	}
	return i, nil
}

// walkArray walks the array at i, whose elements node's children name by index ("items.0.sku":
// the children "0", "1", ... of the node of "items").
func walkArray(b []byte, i int, node *pathNode, spans []span, scratch *[]byte, depth int) (int, error) {
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		return i + 1, nil
	}
	var idx [20]byte
	for k := 0; ; k++ {
		child := node.children[string(strconv.AppendInt(idx[:0], int64(k), 10))]
		var err error
		if i, err = walkValue(b, i, child, spans, scratch, depth); err != nil {
			return 0, err
		}
		i = skipSpace(b, i)
		if i >= len(b) {
			return 0, &syntaxError{i, "unterminated array"}
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case ']':
			return i + 1, nil
		default:
			return 0, &syntaxError{i, fmt.Sprintf("want ',' or ']', got %q", b[i])}
		}
	}
}

// unescape appends the decoded content of a JSON string (without its quotes) to dst.
func unescape(dst, s []byte) ([]byte, error) {
	for i := 0; i < len(s); {
		c := s[i]
		if c != '\\' {
			dst = append(dst, c)
			i++
			continue
		}
		if i+1 >= len(s) {
			return dst, errors.New("truncated escape")
		}
		switch s[i+1] {
		case '"', '\\', '/':
			dst = append(dst, s[i+1])
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r, ok := hex4(s, i+2)
			if !ok {
				return dst, errors.New(`invalid \u escape`)
			}
			i += 6
			if utf16.IsSurrogate(r) {
				r2, ok := rune(0), false
				if i+1 < len(s) && s[i] == '\\' && s[i+1] == 'u' {
					r2, ok = hex4(s, i+2)
				}
				if dec := utf16.DecodeRune(r, r2); ok && dec != utf8.RuneError {
					r = dec
					i += 6
				} else {
					r = utf8.RuneError
				}
			}
			dst = utf8.AppendRune(dst, r)
			continue
		default:
			return dst, fmt.Errorf("invalid escape \\%c", s[i+1])
		}
		i += 2
	}
	return dst, nil
}

func hex4(s []byte, i int) (rune, bool) {
	if i+4 > len(s) {
		return 0, false
	}
	var r rune
	for _, c := range s[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}
