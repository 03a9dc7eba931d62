package template

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

// Template is a parsed template. It is immutable and safe for concurrent use.
type Template struct {
	src   string
	parts []part
}

type kind uint8

const (
	kindLiteral kind = iota
	kindKey
	kindValue // path may be empty: the whole value
	kindHeader
	kindPartition
	kindOffset
	kindTime
	kindTimeMs
)

type part struct {
	kind kind
	text string   // literal text, or the placeholder as written (for errors)
	path []string // value path, or the header name
}

// SyntaxError is a template that cannot be parsed. Offset is the byte offset in the template text
// where the problem is.
type SyntaxError struct {
	Text   string
	Offset int
	Msg    string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("template %q, at column %d: %s", e.Text, e.Offset+1, e.Msg)
}

// RenderError is a template that could not be rendered for one record: a missing field, an absent
// header, a value that is not JSON.
type RenderError struct {
	Template    string
	Placeholder string
	Msg         string
}

func (e *RenderError) Error() string {
	return fmt.Sprintf("template %q: {{%s}}: %s", e.Template, e.Placeholder, e.Msg)
}

// Parse parses a template.
func Parse(text string) (*Template, error) {
	t := &Template{src: text}
	var lit strings.Builder
	i := 0
	for i < len(text) {
		open := strings.Index(text[i:], "{{")
		if open < 0 {
			if close := strings.Index(text[i:], "}}"); close >= 0 {
				return nil, &SyntaxError{text, i + close, `"}}" without a matching "{{"; write {{"}}"}} for the literal text`}
			}
			lit.WriteString(text[i:])
			break
		}
		if close := strings.Index(text[i:i+open], "}}"); close >= 0 {
			return nil, &SyntaxError{text, i + close, `"}}" without a matching "{{"; write {{"}}"}} for the literal text`}
		}
		lit.WriteString(text[i : i+open])
		start := i + open + 2
		end, quoted, err := placeholderEnd(text, start)
		if err != nil {
			return nil, err
		}
		expr := strings.TrimSpace(text[start:end])
		if quoted {
			s, err := strconv.Unquote(expr)
			if err != nil {
				return nil, &SyntaxError{text, start, "bad quoted literal " + expr}
			}
			lit.WriteString(s)
		} else {
			p, err := parsePlaceholder(text, start, expr)
			if err != nil {
				return nil, err
			}
			if lit.Len() > 0 {
				t.parts = append(t.parts, part{kind: kindLiteral, text: lit.String()})
				lit.Reset()
			}
			t.parts = append(t.parts, p)
		}
		i = end + 2
	}
	if lit.Len() > 0 {
		t.parts = append(t.parts, part{kind: kindLiteral, text: lit.String()})
	}
	return t, nil
}

// placeholderEnd finds the "}}" closing the placeholder that starts at start, skipping a quoted
// literal. It reports whether the placeholder is a quoted literal.
func placeholderEnd(text string, start int) (end int, quoted bool, err error) {
	j := start
	for j < len(text) && text[j] == ' ' {
		j++
	}
	if j < len(text) && text[j] == '"' {
		k := j + 1
		for k < len(text) && text[k] != '"' {
			if text[k] == '\\' {
				k++
			}
			k++
		}
		if k >= len(text) {
			return 0, false, &SyntaxError{text, j, "unterminated quoted literal"}
		}
		j = k + 1
		for j < len(text) && text[j] == ' ' {
			j++
		}
		if !strings.HasPrefix(text[j:], "}}") {
			return 0, false, &SyntaxError{text, j, `expected "}}" after the quoted literal`}
		}
		return j, true, nil
	}
	close := strings.Index(text[start:], "}}")
	if close < 0 {
		return 0, false, &SyntaxError{text, start - 2, `"{{" is not closed by "}}"`}
	}
	if inner := strings.Index(text[start:start+close], "{{"); inner >= 0 {
		return 0, false, &SyntaxError{text, start + inner, `"{{" inside a placeholder; placeholders do not nest`}
	}
	return start + close, false, nil
}

const known = "key, value, value.FIELD (or just FIELD), header.NAME, partition, offset, time, time_ms"

func parsePlaceholder(text string, at int, expr string) (part, error) {
	fail := func(msg string) (part, error) { return part{}, &SyntaxError{text, at, msg} }
	if expr == "" {
		return fail("empty placeholder; use one of " + known)
	}
	if strings.ContainsAny(expr, " \t\n{}") {
		return fail(fmt.Sprintf("%q is not a placeholder; use one of %s", expr, known))
	}
	head, rest, dotted := strings.Cut(expr, ".")
	single := func(k kind) (part, error) {
		if dotted {
			return fail(fmt.Sprintf("%s has no fields; for a value field named %q write {{value.%s}}", head, head, expr))
		}
		return part{kind: k, text: expr}, nil
	}
	switch head {
	case "key":
		return single(kindKey)
	case "partition":
		return single(kindPartition)
	case "offset":
		return single(kindOffset)
	case "time":
		return single(kindTime)
	case "time_ms":
		return single(kindTimeMs)
	case "header":
		if !dotted || rest == "" {
			return fail("header needs a name: {{header.NAME}}")
		}
		return part{kind: kindHeader, text: expr, path: []string{rest}}, nil
	case "value":
		if !dotted {
			return part{kind: kindValue, text: expr}, nil
		}
		rest = strings.TrimPrefix(expr, "value.")
	default:
		rest = expr
	}
	path := strings.Split(rest, ".")
	for _, seg := range path {
		if seg == "" {
			return fail(fmt.Sprintf("empty field name in %q", expr))
		}
	}
	return part{kind: kindValue, text: expr, path: path}, nil
}

// ReadsHeaders reports whether rendering reads a record header ({{header.NAME}}).
func (t *Template) ReadsHeaders() bool {
	for _, p := range t.parts {
		if p.kind == kindHeader {
			return true
		}
	}
	return false
}

// MustParse is Parse for templates known to be valid; it panics on an error.
func MustParse(text string) *Template {
	t, err := Parse(text)
	if err != nil {
		panic(err)
	}
	return t
}

// ParseField parses the template of a connector's configuration field; a syntax error comes back
// as a *connector.ConfigError naming the field, with a hint listing the placeholders.
func ParseField(field, text string) (*Template, error) {
	t, err := Parse(text)
	if err != nil {
		var se *SyntaxError
		msg := err.Error()
		if errors.As(err, &se) {
			msg = fmt.Sprintf("template %q, at column %d: %s", se.Text, se.Offset+1, se.Msg)
		}
		return nil, &connector.ConfigError{Field: field, Msg: msg,
			Hint: "placeholders are {{FIELD}} or {{value.a.b}} (JSON value fields), {{key}}, {{header.NAME}}, {{partition}}, {{offset}}, {{time}}, {{time_ms}}"}
	}
	return t, nil
}

// String returns the template's source text.
func (t *Template) String() string { return t.src }

// Static returns the rendered text of a template without placeholders, and whether it is one.
// Connectors use it to resolve a fixed topic or key once instead of per record.
func (t *Template) Static() (string, bool) {
	switch len(t.parts) {
	case 0:
		return "", true
	case 1:
		if t.parts[0].kind == kindLiteral {
			return t.parts[0].text, true
		}
	}
	return "", false
}

// Render renders the template for one record.
func (t *Template) Render(r *connector.Record) (string, error) {
	if s, ok := t.Static(); ok {
		return s, nil
	}
	b, err := t.Append(make([]byte, 0, 64), r)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// Append renders the template for one record onto dst.
func (t *Template) Append(dst []byte, r *connector.Record) ([]byte, error) {
	for i := range t.parts {
		p := &t.parts[i]
		switch p.kind {
		case kindLiteral:
			dst = append(dst, p.text...)
		case kindKey:
			if r.Key == nil {
				return dst, t.errorf(p, "the record has no key")
			}
			dst = append(dst, r.Key...)
		case kindHeader:
			v, ok := header(r.Headers, p.path[0])
			if !ok {
				return dst, t.errorf(p, "the record has no header %q", p.path[0])
			}
			dst = append(dst, v...)
		case kindPartition:
			dst = append(dst, r.Position.Partition...)
		case kindOffset:
			dst = strconv.AppendInt(dst, r.Position.Offset, 10)
		case kindTime:
			if r.Time.IsZero() {
				return dst, t.errorf(p, "the record has no time")
			}
			dst = r.Time.UTC().AppendFormat(dst, TimeLayout)
		case kindTimeMs:
			if r.Time.IsZero() {
				return dst, t.errorf(p, "the record has no time")
			}
			dst = strconv.AppendInt(dst, r.Time.UnixMilli(), 10)
		case kindValue:
			raw, ok, err := Lookup(r.Value, p.path)
			if err != nil {
				return dst, t.errorf(p, "%v", err)
			}
			if !ok {
				return dst, t.errorf(p, "field %s missing in the value", strings.Join(p.path, "."))
			}
			var rerr error
			if dst, rerr = AppendText(dst, raw); rerr != nil {
				return dst, t.errorf(p, "%v", rerr)
			}
		}
	}
	return dst, nil
}

func (t *Template) errorf(p *part, format string, args ...any) error {
	return &RenderError{Template: t.src, Placeholder: p.text, Msg: fmt.Sprintf(format, args...)}
}

func header(hs []connector.Header, name string) ([]byte, bool) {
	for i := range hs {
		if hs[i].Key == name {
			return hs[i].Value, true
		}
	}
	return nil, false
}

// TimeLayout is the layout of {{time}}.
const TimeLayout = "2006-01-02T15:04:05.000Z07:00"
