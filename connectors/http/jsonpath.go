package http

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/theory/jsonpath"
	"github.com/theory/jsonpath/spec"

	"github.com/sluicehq/sluice/connectors/internal/jsontext"
	"github.com/sluicehq/sluice/sdk/go/connector"
	"github.com/sluicehq/sluice/sdk/go/template"
)

// selector is a compiled JSONPath expression. Expressions made only of member names, with an
// optional final [*] on an array, are answered by scanning the raw text (the selected values keep
// their bytes and cost no decoding); any other expression decodes the document and re-encodes what
// it selects.
type selector struct {
	path     *jsonpath.Path
	names    []string // the fast form's member names
	fast     bool
	wildcard bool // the fast form ends in [*]
}

// compileSelector parses a JSONPath expression of the configuration field.
func compileSelector(field, expr string) (*selector, error) {
	p, err := jsonpath.Parse(expr)
	if err != nil {
		msg := strings.TrimPrefix(err.Error(), "jsonpath: ")
		return nil, &connector.ConfigError{Field: field, Msg: fmt.Sprintf("invalid JSONPath %q: %s", expr, msg),
			Hint: "JSONPath as in RFC 9535: $.data[*], $.links.next, $..items[?@.active]"}
	}
	s := &selector{path: p, fast: true}
	segs := p.Query().Segments()
	for i, seg := range segs {
		sels := seg.Selectors()
		if seg.IsDescendant() || len(sels) != 1 {
			s.fast = false
			break
		}
		switch sel := sels[0].(type) {
		case spec.Name:
			name := string(sel)
			if name == "" || strings.Trim(name, "0123456789") == "" {
				s.fast = false // template.Lookup would read a number as an array index
			}
			s.names = append(s.names, name)
		case spec.WildcardSelector:
			if i != len(segs)-1 {
				s.fast = false
			}
			s.wildcard = true
		default:
			s.fast = false
		}
		if !s.fast {
			break
		}
	}
	return s, nil
}

// String returns the expression.
func (s *selector) String() string { return s.path.String() }

// errNotJSON marks a document that does not parse.
var errNotJSON = errors.New("not JSON")

// selectAll returns the raw JSON of every value the expression selects in doc, which must be a
// valid JSON document (the caller checks it once).
func (s *selector) selectAll(doc []byte) ([][]byte, error) {
	if s.fast {
		raw, ok, err := template.Lookup(doc, s.names)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errNotJSON, err)
		}
		if !ok {
			return nil, nil
		}
		if !s.wildcard {
			return [][]byte{raw}, nil
		}
		if first := jsontext.FirstByte(raw); first == '[' {
			return jsontext.SplitArray(raw), nil
		} else if first != '{' {
			return nil, nil // [*] of a scalar selects nothing
		}
		// [*] of an object: member values, through the general path.
	}
	v, err := decode(doc)
	if err != nil {
		return nil, err
	}
	nodes := s.path.Select(v)
	out := make([][]byte, 0, len(nodes))
	for _, n := range nodes {
		b, err := encode(n)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

// first returns the raw JSON of the first value the expression selects in doc; ok is false when
// it selects nothing or null.
func (s *selector) first(doc []byte) (raw []byte, ok bool, err error) {
	if s.fast && !s.wildcard {
		raw, ok, err := template.Lookup(doc, s.names)
		if err != nil {
			return nil, false, fmt.Errorf("%w: %v", errNotJSON, err)
		}
		return raw, ok, nil
	}
	all, err := s.selectAll(doc)
	if err != nil || len(all) == 0 || string(all[0]) == "null" {
		return nil, false, err
	}
	return all[0], true, nil
}

func decode(doc []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("%w: %v", errNotJSON, err)
	}
	return v, nil
}

func encode(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}

// cursorValue is a value of the cursor field: its raw JSON, ordered by compareCursor.
type cursorValue []byte

// text renders the value as a query parameter: a string without quotes, a number as written.
func (v cursorValue) text() string {
	if len(v) == 0 {
		return ""
	}
	b, err := template.AppendText(nil, v)
	if err != nil {
		return string(v)
	}
	return string(b)
}

// greater reports whether a is after b: numbers compare as numbers, strings that are both
// RFC 3339 timestamps as times, other strings as text. Values of different kinds, or other JSON
// values, do not compare: greater is then false, unless b is empty.
func greater(a, b cursorValue) bool {
	if len(a) == 0 {
		return false
	}
	if len(b) == 0 {
		return true
	}
	an, bn := a[0] != '"', b[0] != '"'
	switch {
	case an && bn:
		return compareNumbers(string(a), string(b)) > 0
	case !an && !bn:
		as, bs := a.text(), b.text()
		at, aerr := time.Parse(time.RFC3339Nano, as)
		bt, berr := time.Parse(time.RFC3339Nano, bs)
		if aerr == nil && berr == nil {
			return at.After(bt)
		}
		return as > bs
	}
	return false
}

// compareNumbers compares two JSON numbers; anything that is not a number is smaller.
func compareNumbers(a, b string) int {
	ai, aerr := strconv.ParseInt(a, 10, 64)
	bi, berr := strconv.ParseInt(b, 10, 64)
	if aerr == nil && berr == nil {
		switch {
		case ai < bi:
			return -1
		case ai > bi:
			return 1
		}
		return 0
	}
	af, aok := new(big.Float).SetString(a)
	bf, bok := new(big.Float).SetString(b)
	switch {
	case !aok && !bok:
		return 0
	case !aok:
		return -1
	case !bok:
		return 1
	}
	return af.Cmp(bf)
}
