package postgres

import (
	"errors"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// pathNode is one level of the field paths the columns read from a JSON value: the columns that
// take the value at this path, and the fields below it that some column reads.
type pathNode struct {
	name     string
	index    int // the name as an array index, -1 when it is not a number
	cols     []int
	children []*pathNode
}

func (n *pathNode) child(name string) *pathNode {
	for _, c := range n.children {
		if c.name == name {
			return c
		}
	}
	c := &pathNode{name: name, index: -1}
	if i, err := strconv.Atoi(name); err == nil && i >= 0 && strconv.Itoa(i) == name {
		c.index = i
	}
	n.children = append(n.children, c)
	return c
}

// element returns the child that names array element i.
func (n *pathNode) element(i int) *pathNode {
	for _, c := range n.children {
		if c.index == i {
			return c
		}
	}
	return nil
}

// lookup returns the child named by key, the raw bytes of a JSON key without escapes.
func (n *pathNode) lookup(key []byte) *pathNode {
	for _, c := range n.children {
		if c.name == string(key) {
			return c
		}
	}
	return nil
}

// extractor reads, in one pass over a JSON object, the values of every column's path.
type extractor struct {
	root    pathNode // its children are the value's top-level fields
	scratch []byte   // decoded strings of the current record
	depth   int

	// With evolve: the top-level fields of the current record that the root does not name and
	// whose value is not null.
	evolve bool
	unread []unreadField
}

// unreadField is where a top-level field no column reads lies in a record's value: its key
// (inside the quotes) and its value.
type unreadField struct {
	keyStart, keyEnd int
	esc              bool
	valStart, valEnd int
}

// maxDepth bounds the nesting of a JSON value, so a hostile value cannot exhaust the stack.
const maxDepth = 1000

// add registers column col as reading path.
func (x *extractor) add(path []string, col int) {
	n := &x.root
	for _, p := range path {
		n = n.child(p)
	}
	n.cols = append(n.cols, col)
}

// extract scans value, which must be a JSON object, and fills ins for every column whose path
// it finds; the others are left as they are. Decoded strings point into x.scratch or value and
// stay valid until the next call.
func (x *extractor) extract(value []byte, ins []input) error {
	if cap(x.scratch) < len(value) {
		x.scratch = make([]byte, 0, len(value)+len(value)/2)
	}
	x.scratch = x.scratch[:0] // decoded text is never longer than its JSON, so this never grows
	x.depth = 0
	x.unread = x.unread[:0]
	i := skipWS(value, 0)
	if i == len(value) || value[i] != '{' {
		if i == len(value) {
			return errors.New("value is empty, not a JSON object")
		}
		return errors.New("value is not a JSON object")
	}
	i, err := x.object(value, i, &x.root, ins)
	if err != nil {
		return fmt.Errorf("value is not valid JSON: %w", err)
	}
	if i = skipWS(value, i); i != len(value) {
		return fmt.Errorf("value is not valid JSON: unexpected %q after the object at byte %d", value[i], i)
	}
	return nil
}

// validJSON checks that b holds exactly one JSON value.
func validJSON(b []byte) error {
	var x extractor
	i := skipWS(b, 0)
	i, err := x.value(b, i, nil, nil)
	if err != nil {
		return err
	}
	if i = skipWS(b, i); i != len(b) {
		return fmt.Errorf("unexpected %q at byte %d", b[i], i)
	}
	return nil
}

func skipWS(d []byte, i int) int {
	for i < len(d) && (d[i] == ' ' || d[i] == '\n' || d[i] == '\r' || d[i] == '\t') {
		i++
	}
	return i
}

// object parses the object starting at d[i] == '{' and returns the index after it. node (nil:
// nothing below is read) says which fields to capture.
func (x *extractor) object(d []byte, i int, node *pathNode, ins []input) (int, error) {
	if x.depth++; x.depth > maxDepth {
		return 0, fmt.Errorf("nested deeper than %d levels", maxDepth)
	}
	defer func() { x.depth-- }()
	i = skipWS(d, i+1)
	if i < len(d) && d[i] == '}' {
		return i + 1, nil
	}
	for {
		if i >= len(d) || d[i] != '"' {
			return 0, syntaxErr(d, i, "a field name")
		}
		end, escaped, err := scanString(d, i)
		if err != nil {
			return 0, err
		}
		keyStart := i + 1
		var child *pathNode
		top := x.evolve && node == &x.root
		if node != nil && (len(node.children) > 0 || top) {
			key := d[i+1 : end-1]
			if escaped {
				n := len(x.scratch)
				x.scratch = unescape(x.scratch, key)
				key = x.scratch[n:]
				x.scratch = x.scratch[:n] // a key is only compared
			}
			child = node.lookup(key)
		}
		i = skipWS(d, end)
		if i >= len(d) || d[i] != ':' {
			return 0, syntaxErr(d, i, "':'")
		}
		i = skipWS(d, i+1)
		if top && child == nil {
			start := i
			if i, err = x.value(d, i, nil, ins); err != nil {
				return 0, err
			}
			if d[start] != 'n' {
				x.unread = append(x.unread, unreadField{keyStart: keyStart, keyEnd: end - 1, esc: escaped, valStart: start, valEnd: i})
			}
		} else if i, err = x.value(d, i, child, ins); err != nil {
			return 0, err
		}
		i = skipWS(d, i)
		if i >= len(d) {
			return 0, syntaxErr(d, i, "',' or '}'")
		}
		switch d[i] {
		case ',':
			i = skipWS(d, i+1)
		case '}':
			return i + 1, nil
		default:
			return 0, syntaxErr(d, i, "',' or '}'")
		}
	}
}

// array parses the array starting at d[i] == '[' and returns the index after it. node (nil:
// nothing below is read) says which elements to capture, by index.
func (x *extractor) array(d []byte, i int, node *pathNode, ins []input) (int, error) {
	if x.depth++; x.depth > maxDepth {
		return 0, fmt.Errorf("nested deeper than %d levels", maxDepth)
	}
	defer func() { x.depth-- }()
	i = skipWS(d, i+1)
	if i < len(d) && d[i] == ']' {
		return i + 1, nil
	}
	for n := 0; ; n++ {
		var child *pathNode
		top := x.evolve && node == &x.root
		if node != nil && (len(node.children) > 0 || top) {
			child = node.element(n)
		}
		var err error
		if i, err = x.value(d, i, child, ins); err != nil {
			return 0, err
		}
		i = skipWS(d, i)
		if i >= len(d) {
			return 0, syntaxErr(d, i, "',' or ']'")
		}
		switch d[i] {
		case ',':
			i = skipWS(d, i+1)
		case ']':
			return i + 1, nil
		default:
			return 0, syntaxErr(d, i, "',' or ']'")
		}
	}
}

// value parses the value at d[i] and, when node names columns, stores it in their inputs.
func (x *extractor) value(d []byte, i int, node *pathNode, ins []input) (int, error) {
	if i >= len(d) {
		return 0, syntaxErr(d, i, "a value")
	}
	start := i
	var in input
	var err error
	switch c := d[i]; {
	case c == '{':
		if i, err = x.object(d, i, node, ins); err != nil {
			return 0, err
		}
		in = input{kind: inObject, raw: d[start:i]}
	case c == '[':
		if i, err = x.array(d, i, node, ins); err != nil {
			return 0, err
		}
		in = input{kind: inArray, raw: d[start:i]}
	case c == '"':
		end, escaped, err := scanString(d, i)
		if err != nil {
			return 0, err
		}
		i = end
		in = input{kind: inString, raw: d[start:end], s: d[start+1 : end-1]}
		if escaped && node != nil && len(node.cols) > 0 {
			n := len(x.scratch)
			x.scratch = unescape(x.scratch, in.s)
			in.s = x.scratch[n:len(x.scratch):len(x.scratch)]
		}
	case c == 't' && hasLiteral(d, i, "true"):
		i += 4
		in = input{kind: inBool, b: true}
	case c == 'f' && hasLiteral(d, i, "false"):
		i += 5
		in = input{kind: inBool}
	case c == 'n' && hasLiteral(d, i, "null"):
		i += 4
		in = input{kind: inNull}
	case c == '-' || (c >= '0' && c <= '9'):
		if i, err = scanNumber(d, i); err != nil {
			return 0, err
		}
		in = input{kind: inNumber, s: d[start:i]}
	default:
		return 0, syntaxErr(d, i, "a value")
	}
	if node != nil {
		for _, col := range node.cols {
			ins[col] = in
		}
	}
	return i, nil
}

func hasLiteral(d []byte, i int, lit string) bool {
	return len(d)-i >= len(lit) && string(d[i:i+len(lit)]) == lit
}

func syntaxErr(d []byte, i int, want string) error {
	if i >= len(d) {
		return fmt.Errorf("unexpected end, want %s", want)
	}
	return fmt.Errorf("unexpected %q at byte %d, want %s", d[i], i, want)
}

// scanString returns the index after the string starting at d[i] == '"' and whether it holds
// escapes.
func scanString(d []byte, i int) (end int, escaped bool, err error) {
	for j := i + 1; j < len(d); j++ {
		switch c := d[j]; {
		case c == '"':
			return j + 1, escaped, nil
		case c == '\\':
			escaped = true
			j++
			if j >= len(d) {
				return 0, false, syntaxErr(d, j, "an escape")
			}
			switch d[j] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if len(d)-j < 5 || !isHex4(d[j+1:j+5]) {
					return 0, false, fmt.Errorf("bad \\u escape at byte %d", j)
				}
				j += 4
			default:
				return 0, false, fmt.Errorf("bad escape \\%c at byte %d", d[j], j)
			}
		case c < 0x20:
			return 0, false, fmt.Errorf("control character 0x%02x in a string at byte %d", c, j)
		}
	}
	return 0, false, syntaxErr(d, len(d), "the end of a string")
}

func isHex4(b []byte) bool {
	for _, c := range b[:4] {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

func hex4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		default:
			r |= rune(c - 'A' + 10)
		}
	}
	return r
}

// unescape appends the decoded text of a string's contents (already checked by scanString).
// Lone surrogates become U+FFFD, as encoding/json does. The result is never longer than s.
func unescape(dst, s []byte) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			dst = append(dst, c)
			continue
		}
		i++
		switch s[i] {
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
			r := hex4(s[i+1:])
			i += 4
			if utf16.IsSurrogate(r) {
				if i+6 < len(s) && s[i+1] == '\\' && s[i+2] == 'u' {
					if r2 := utf16.DecodeRune(r, hex4(s[i+3:])); r2 != utf8.RuneError {
						dst = utf8.AppendRune(dst, r2)
						i += 6
						continue
					}
				}
				r = utf8.RuneError
			}
			dst = utf8.AppendRune(dst, r)
		default: // " \ /
			dst = append(dst, s[i])
		}
	}
	return dst
}

// scanNumber returns the index after the JSON number starting at d[i].
func scanNumber(d []byte, i int) (int, error) {
	start := i
	if d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && d[i] >= '1' && d[i] <= '9':
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	default:
		return 0, fmt.Errorf("bad number at byte %d", start)
	}
	if i < len(d) && d[i] == '.' {
		i++
		if i >= len(d) || d[i] < '0' || d[i] > '9' {
			return 0, fmt.Errorf("bad number at byte %d", start)
		}
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if i >= len(d) || d[i] < '0' || d[i] > '9' {
			return 0, fmt.Errorf("bad number at byte %d", start)
		}
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	}
	return i, nil
}
