package manifests

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

// Bounds that keep hostile documents (alias bombs, recursive aliases, huge ${file:} targets) from
// exhausting the loader.
const (
	maxNodes     = 200_000 // nodes visited per document, aliases expanded
	maxDepth     = 100     // nesting depth
	maxFileBytes = 16 << 20
)

// loc names a place in a document for messages: label is the component ("sink \"lake\"",
// "transform \"v\""), path the dotted key path within it ("config.path", "spec.batch").
type loc struct {
	label string
	path  string
}

func (l loc) child(key string) loc {
	if l.path == "" {
		return loc{l.label, key}
	}
	return loc{l.label, l.path + "." + key}
}

func (l loc) index(i int) loc { return loc{l.label, fmt.Sprintf("%s[%d]", l.path, i)} }

// in renders the place for "unknown key ... in X" messages.
func (l loc) in() string {
	switch {
	case l.label == "":
		return l.path
	case l.path == "":
		return l.label
	}
	return l.label + " " + l.path
}

// at renders the place as a message prefix ("sink \"lake\": config.port").
func (l loc) at() string {
	switch {
	case l.label == "":
		return l.path
	case l.path == "":
		return l.label
	}
	return l.label + ": " + l.path
}

// collector gathers what a component's config decoding learns besides the values: secret values
// and the position of every config key.
type collector struct {
	secrets []string
	fields  map[string]Pos
	prefix  string    // path prefix ("config.") stripped from field keys
	doc     *[]string // every secret of the document, to redact its diagnostics
}

func (c *collector) secret(s string) {
	if c == nil || s == "" {
		return
	}
	for _, x := range c.secrets {
		if x == s {
			return
		}
	}
	c.secrets = append(c.secrets, s)
	if c.doc != nil {
		*c.doc = append(*c.doc, s)
	}
}

func (c *collector) field(l loc, p Pos) {
	if c == nil {
		return
	}
	c.fields[strings.TrimPrefix(l.path, c.prefix)] = p
}

// docDecoder decodes one YAML document, reporting problems to the loader.
type docDecoder struct {
	l       *loader
	file    string
	dir     string
	errs    int
	nodes   int
	depth   int
	budget  bool // reported the node budget already
	aliased bool // followed an alias
	// secrets holds every secret value seen in the document; its diagnostics are redacted with them.
	secrets []string
	// sinkFrom holds the position of each sink's from: (or of the sink), parallel to Pipeline.Sinks.
	sinkFrom []Pos
}

func (d *docDecoder) pos(n *yaml.Node) Pos {
	if n == nil {
		return Pos{File: d.file}
	}
	return Pos{File: d.file, Line: n.Line, Col: n.Column}
}

func (d *docDecoder) report(p Pos, hint, format string, args ...any) {
	d.errs++
	d.l.diags = append(d.l.diags, Diagnostic{Pos: p, Message: fmt.Sprintf(format, args...), Hint: hint})
}

func (d *docDecoder) errorf(n *yaml.Node, hint, format string, args ...any) {
	d.report(d.pos(n), hint, format, args...)
}

// resolve follows aliases and charges the node budget. It returns nil once the budget is spent.
func (d *docDecoder) resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode; i++ {
		if i > maxDepth {
			return nil
		}
		n = n.Alias
		d.aliased = true
	}
	d.nodes++
	if d.nodes > maxNodes {
		if !d.budget {
			d.budget = true
			if d.aliased {
				d.errorf(n, "each use of an alias (*name) counts the values it refers to again: use fewer aliases, or split the document",
					"document too large: more than %d values after expanding aliases", maxNodes)
			} else {
				d.errorf(n, "give each pipeline its own document (separated by ---) or file; one pipeline needs far fewer values",
					"document too large: more than %d values", maxNodes)
			}
		}
		return nil
	}
	return n
}

// enter guards recursion depth (recursive aliases); leave must follow a successful enter.
func (d *docDecoder) enter(n *yaml.Node, l loc) bool {
	if d.depth >= maxDepth {
		at := l.at()
		if len(at) > 60 {
			at = at[:57] + "..."
		}
		d.errorf(n, "a YAML alias may not refer to a value that contains it", "%s: nested more than %d levels deep", at, maxDepth)
		return false
	}
	d.depth++
	return true
}

func (d *docDecoder) leave() { d.depth-- }

func isNull(n *yaml.Node) bool {
	return n == nil || n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// describe says what a node holds, for "expected X, got Y" messages. Secret values are not shown.
func describe(n *yaml.Node, secret bool) string {
	switch {
	case n == nil:
		return "nothing"
	case n.Kind == yaml.MappingNode:
		return "a mapping"
	case n.Kind == yaml.SequenceNode:
		return "a list"
	case isNull(n):
		return "nothing"
	case secret:
		return "a secret value"
	}
	return quoteValue(n.Value, n.ShortTag() == "!!str")
}

func quoteValue(v string, str bool) string {
	if utf8.RuneCountInString(v) > 40 {
		v = string([]rune(v)[:37]) + "..."
	}
	if str {
		return strconv.Quote(v)
	}
	return v
}

// entry is one key/value pair of a mapping.
type entry struct {
	key, val *yaml.Node
}

// mapping reads n as a mapping with string keys. It reports duplicate keys and, when allowed is not
// nil, unknown keys (suggesting the closest allowed one). It returns nil when n is not a mapping.
func (d *docDecoder) mapping(n *yaml.Node, l loc, allowed []string) (map[string]entry, []string) {
	m, order, _ := d.mappingTypos(n, l, allowed)
	return m, order
}

// mappingTypos is mapping that also returns the allowed keys suggested for unknown ones, so that a
// misspelt required key is reported once, as a typo, not also as missing.
func (d *docDecoder) mappingTypos(n *yaml.Node, l loc, allowed []string) (map[string]entry, []string, map[string]bool) {
	var typos map[string]bool
	if n = d.resolve(n); n == nil {
		return nil, nil, nil
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, "", "%s: expected a mapping, got %s", l.at(), describe(n, false))
		return nil, nil, nil
	}
	out := make(map[string]entry, len(n.Content)/2)
	var order []string
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := d.resolve(n.Content[i]), n.Content[i+1]
		if k == nil {
			return nil, nil, nil
		}
		if k.Kind != yaml.ScalarNode {
			d.errorf(k, "", "%s: keys must be strings, got %s", l.at(), describe(k, false))
			continue
		}
		if k.Value == "<<" && k.ShortTag() == "!!merge" {
			d.errorf(k, "repeat the keys, or use an alias for the whole value", "%s: merge keys (<<) are not supported", l.at())
			continue
		}
		name := k.Value
		if prev, dup := out[name]; dup {
			d.errorf(k, "", "duplicate key %q in %s (first at line %d)", name, l.in(), prev.key.Line)
			continue
		}
		if allowed != nil && !contains(allowed, name) {
			hint := ""
			msg := fmt.Sprintf("unknown key %q in %s", name, l.in())
			if c := closest(name, allowed); c != "" {
				msg += `; did you mean "` + c + `"?`
				if typos == nil {
					typos = map[string]bool{}
				}
				typos[c] = true
			} else if len(allowed) > 0 {
				hint = "known keys: " + strings.Join(allowed, ", ")
			} else {
				hint = "this mapping takes no keys"
			}
			d.errorf(k, hint, "%s", msg)
			continue
		}
		out[name] = entry{k, v}
		order = append(order, name)
	}
	return out, order, typos
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// hasRef reports whether s holds a reference or an escape: anything starting with ${ or $${.
func hasRef(s string) bool {
	return strings.Contains(s, "${")
}

// expand resolves ${env:NAME} and ${file:PATH} references and $${ escapes in the scalar n. Any
// other ${...} is an error: a forgotten scheme (${NAME}) would otherwise be taken as literal
// text. Resolved values of references in secret fields go to col. ok is false when a reference
// could not be resolved (already reported).
func (d *docDecoder) expand(n *yaml.Node, secret bool, col *collector) (out string, refs bool, ok bool) {
	s := n.Value
	if !hasRef(s) {
		return s, false, true
	}
	var b strings.Builder
	ok = true
	for i := 0; i < len(s); {
		switch {
		case strings.HasPrefix(s[i:], "$${"):
			b.WriteString("${")
			i += 3
		case strings.HasPrefix(s[i:], "${"):
			end := strings.IndexByte(s[i:], '}')
			p := d.refPos(n, i)
			if end < 0 {
				if secret {
					d.report(p, "close it with }, or write $${ for a literal ${", "unterminated reference in a secret value")
				} else {
					d.report(p, "close it with }, or write $${ for a literal ${", "unterminated reference %s", quoteValue(s[i:], true))
				}
				return "", true, false
			}
			ref := s[i : i+end+1]
			if !strings.HasPrefix(ref, "${env:") && !strings.HasPrefix(ref, "${file:") {
				d.unknownRef(p, ref, secret)
				ok = false
				i += end + 1
				continue
			}
			v, good := d.lookupRef(p, ref)
			if good {
				refs = true
				if secret {
					col.secret(v)
				}
				b.WriteString(v)
			} else {
				ok = false
			}
			i += end + 1
		default:
			b.WriteByte(s[i])
			i++
		}
	}
	return b.String(), true, ok
}

// unknownRef reports a ${...} that is neither ${env:...} nor ${file:...}, suggesting the reference
// it most likely means.
func (d *docDecoder) unknownRef(p Pos, ref string, secret bool) {
	body := ref[2 : len(ref)-1]
	literal := "$$" + ref[1:]
	if secret {
		d.report(p, "use ${env:NAME} or ${file:PATH}, or write $${ for a literal ${",
			"a secret value holds a ${...} that is not a ${env:NAME} or ${file:PATH} reference")
		return
	}
	var hint string
	lower := strings.ToLower(body)
	switch {
	case validEnvName(body):
		hint = fmt.Sprintf("did you mean ${env:%s}? Write %s for the text itself", body, literal)
	case strings.HasPrefix(lower, "env:") || strings.HasPrefix(lower, "file:"):
		scheme, rest, _ := strings.Cut(body, ":")
		hint = fmt.Sprintf("did you mean ${%s:%s}? Schemes are lowercase", strings.ToLower(scheme), rest)
	case strings.HasPrefix(lower, "env.") || strings.HasPrefix(lower, "file.") || strings.HasPrefix(lower, "env_"):
		scheme, rest := body[:strings.IndexAny(body, "._")], body[strings.IndexAny(body, "._")+1:]
		hint = fmt.Sprintf("did you mean ${%s:%s}?", strings.ToLower(scheme), rest)
	default:
		hint = fmt.Sprintf("write ${env:NAME} or ${file:PATH}, or %s for the text itself", literal)
	}
	d.report(p, hint, "%s is not a reference: references are ${env:NAME} and ${file:PATH}", quoteValue(ref, false))
}

// refPos is the position of the reference starting at byte off of a scalar: exact for one-line
// plain scalars, the scalar's own position otherwise.
func (d *docDecoder) refPos(n *yaml.Node, off int) Pos {
	p := d.pos(n)
	if n.Style == 0 && !strings.Contains(n.Value, "\n") {
		p.Col += utf8.RuneCountInString(n.Value[:off])
	}
	return p
}

func (d *docDecoder) lookupRef(p Pos, ref string) (string, bool) {
	body := ref[2 : len(ref)-1]
	switch {
	case strings.HasPrefix(body, "env:"):
		name := body[len("env:"):]
		if !validEnvName(name) {
			d.report(p, "write ${env:NAME} with NAME made of letters, digits and _", "%s: invalid environment variable name %q", ref, name)
			return "", false
		}
		v, ok := d.l.opts.LookupEnv(name)
		if !ok {
			d.report(p, "export it, or use ${file:PATH}", "%s: environment variable %s is not set", ref, name)
			return "", false
		}
		return v, true
	default:
		name := body[len("file:"):]
		if name == "" {
			d.report(p, "write ${file:PATH}, PATH relative to the manifest's directory", "%s: empty file path", ref)
			return "", false
		}
		path := name
		if !filepath.IsAbs(path) {
			path = filepath.Join(d.dir, path)
		}
		data, err := readSmallFile(path)
		if err != nil {
			d.report(p, fmt.Sprintf("${file:PATH} is relative to the manifest's directory (%s)", d.dir), "%s: cannot read %s: %v", ref, path, err)
			return "", false
		}
		s := string(data)
		if strings.HasSuffix(s, "\r\n") {
			s = s[:len(s)-2]
		} else if strings.HasSuffix(s, "\n") {
			s = s[:len(s)-1]
		}
		return s, true
	}
}

func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		if !(r == '_' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// readSmallFile reads a regular file of at most maxFileBytes. Errors carry no path (the caller
// names it).
func readSmallFile(path string) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, unwrapPathError(err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("not a regular file")
	}
	if st.Size() > maxFileBytes {
		return nil, fmt.Errorf("larger than %s", FormatByteSize(maxFileBytes))
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, unwrapPathError(err)
	}
	return data, nil
}

func unwrapPathError(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

// typeNames says what each field type expects, for messages.
var typeNames = map[connector.Type]string{
	connector.TypeString:   "a string",
	connector.TypeInt:      "an integer",
	connector.TypeFloat:    "a number",
	connector.TypeBool:     "true or false",
	connector.TypeDuration: "a duration",
	connector.TypeByteSize: "a byte size",
	connector.TypeObject:   "a mapping",
	connector.TypeList:     "a list",
	connector.TypeMap:      "a mapping",
}

var typeHints = map[connector.Type]string{
	connector.TypeDuration: "use a number with a unit: 500ms, 30s, 1m30s, 2h",
	connector.TypeByteSize: "use a number of bytes or a number with a unit: 512KiB, 64MiB, 1GB",
	connector.TypeBool:     "write true or false",
}

// object decodes a mapping against declared fields: strict keys, required fields, defaults.
// n may be nil (the object is absent): defaults still apply and missing required keys are
// reported at parent.
func (d *docDecoder) object(n, parent *yaml.Node, fields []connector.Field, l loc, secret bool, col *collector) (map[string]any, bool) {
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.Name
	}
	var m map[string]entry
	var typos map[string]bool
	at := parent
	if !isNull(n) {
		if m, _, typos = d.mappingTypos(n, l, names); m == nil {
			return nil, false
		}
		at = d.resolve(n)
	}
	out := make(map[string]any, len(fields))
	ok := true
	for _, f := range fields {
		fl := l.child(f.Name)
		e, present := m[f.Name]
		if present && !isNull(d.resolve(e.val)) {
			col.field(fl, d.pos(e.key))
			v, good := d.value(e.val, f, fl, secret || f.Secret, col)
			if good {
				out[f.Name] = v
			} else {
				ok = false
			}
			continue
		}
		switch {
		case f.Default != nil:
			out[f.Name] = copyValue(f.Default)
			if f.Secret || secret {
				if s, isStr := f.Default.(string); isStr {
					col.secret(s)
				}
			}
		case f.Required && present:
			d.errorf(e.key, fieldHint(f), "%s: a value is required", fl.at())
			ok = false
		case f.Required && typos[f.Name]:
			ok = false // reported as a misspelt key
		case f.Required:
			d.errorf(at, fieldHint(f), "missing required key %q in %s", f.Name, l.in())
			ok = false
		case f.Type == connector.TypeObject && hasDefaults(f.Fields):
			v, good := d.object(nil, at, f.Fields, fl, secret || f.Secret, col)
			if good {
				out[f.Name] = v
			} else {
				ok = false
			}
		}
	}
	return out, ok
}

func fieldHint(f connector.Field) string {
	if f.Description == "" {
		return ""
	}
	return f.Name + ": " + firstSentence(f.Description)
}

func firstSentence(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.Index(s, ". "); i >= 0 {
		s = s[:i+1]
	}
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

// hasDefaults reports whether an absent object of these fields should be filled in: some field has
// a default and none is required.
func hasDefaults(fields []connector.Field) bool {
	any := false
	for _, f := range fields {
		if f.Required && f.Default == nil {
			return false
		}
		if f.Default != nil || f.Type == connector.TypeObject && hasDefaults(f.Fields) {
			any = true
		}
	}
	return any
}

// copyValue deep-copies lists and maps so that components cannot change a spec's defaults.
func copyValue(v any) any {
	switch x := v.(type) {
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = copyValue(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = copyValue(e)
		}
		return out
	case connector.Config:
		return copyValue(map[string]any(x))
	case []string:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = e
		}
		return out
	case int:
		return int64(x)
	}
	return v
}

// value decodes n as field f. It reports problems at n and returns ok=false after reporting.
func (d *docDecoder) value(raw *yaml.Node, f connector.Field, l loc, secret bool, col *collector) (any, bool) {
	n := d.resolve(raw)
	if n == nil {
		return nil, false
	}
	if !d.enter(n, l) {
		return nil, false
	}
	defer d.leave()
	switch f.Type {
	case connector.TypeObject:
		return d.object(n, n, f.Fields, l, secret, col)
	case connector.TypeList:
		if n.Kind != yaml.SequenceNode {
			d.errorf(n, "", "%s: expected a list, got %s", l.at(), describe(n, secret))
			return nil, false
		}
		elem := connector.Field{Type: connector.TypeAny}
		if f.Elem != nil {
			elem = *f.Elem
		}
		out := make([]any, 0, len(n.Content))
		ok := true
		for i, e := range n.Content {
			el := l.index(i)
			col.field(el, d.pos(e))
			v, good := d.value(e, elem, el, secret || elem.Secret, col)
			if !good {
				ok = false
			}
			out = append(out, v)
		}
		return out, ok
	case connector.TypeMap:
		m, order := d.mapping(n, l, nil)
		if m == nil {
			return nil, false
		}
		elem := connector.Field{Type: connector.TypeAny}
		if f.Elem != nil {
			elem = *f.Elem
		}
		out := make(map[string]any, len(m))
		ok := true
		for _, k := range order {
			kl := l.child(k)
			col.field(kl, d.pos(m[k].key))
			v, good := d.value(m[k].val, elem, kl, secret || elem.Secret, col)
			if !good {
				ok = false
			}
			out[k] = v
		}
		return out, ok
	case connector.TypeAny, "":
		return d.anyValue(n, l, secret, col)
	}
	if n.Kind != yaml.ScalarNode || isNull(n) {
		d.errorf(n, typeHints[f.Type], "%s: expected %s, got %s", l.at(), typeNames[f.Type], describe(n, secret))
		return nil, false
	}
	return d.scalar(n, f, l, secret, col)
}

// scalar converts a scalar node to the Go type of f.Type, resolving references first.
func (d *docDecoder) scalar(n *yaml.Node, f connector.Field, l loc, secret bool, col *collector) (any, bool) {
	tag := n.ShortTag()
	text, refs, ok := d.expand(n, secret, col)
	if !ok {
		return nil, false
	}
	if secret {
		col.secret(text)
	}
	// got describes the value for messages, naming the reference it came from.
	got := func() string {
		if secret {
			return "a secret value"
		}
		if refs {
			return fmt.Sprintf("%s (from %s)", quoteValue(text, true), quoteValue(n.Value, false))
		}
		return quoteValue(n.Value, tag == "!!str")
	}
	bad := func(hint string) (any, bool) {
		if hint == "" || secret && strings.Contains(hint, n.Value) {
			hint = typeHints[f.Type]
			if f.Type == connector.TypeString && secret {
				hint = "quote it"
			}
		}
		d.errorf(n, hint, "%s: expected %s, got %s", l.at(), typeNames[f.Type], got())
		return nil, false
	}
	// A quoted number where a number is expected is refused, with a hint, unless it came from a
	// reference (references are always strings).
	quoted := tag == "!!str" && !refs
	switch f.Type {
	case connector.TypeString:
		if tag != "!!str" && !(tag == "!!binary" || tag == "!!timestamp") {
			return bad(fmt.Sprintf("quote it: %q", n.Value))
		}
		if len(f.Enum) > 0 && !contains(f.Enum, text) {
			msg := fmt.Sprintf("%s: %s is not one of %s", l.at(), got(), strings.Join(f.Enum, ", "))
			if !secret {
				msg += didYouMean(text, f.Enum)
			}
			d.errorf(n, "", "%s", msg)
			return nil, false
		}
		return text, true
	case connector.TypeInt:
		if tag == "!!int" {
			var v int64
			if err := n.Decode(&v); err != nil {
				return bad("the value must fit in a 64-bit integer")
			}
			return v, true
		}
		if tag == "!!float" {
			return bad("use a whole number between -9223372036854775808 and 9223372036854775807")
		}
		if quoted {
			if _, err := strconv.ParseInt(text, 0, 64); err == nil {
				return bad("remove the quotes")
			}
			return bad("")
		}
		if tag != "!!str" {
			return bad("")
		}
		v, err := strconv.ParseInt(strings.TrimSpace(text), 0, 64)
		if err != nil {
			return bad("")
		}
		return v, true
	case connector.TypeFloat:
		if tag == "!!int" || tag == "!!float" {
			var v float64
			if err := n.Decode(&v); err != nil {
				return bad("")
			}
			return v, true
		}
		if quoted || tag != "!!str" {
			if _, err := strconv.ParseFloat(text, 64); err == nil && quoted {
				return bad("remove the quotes")
			}
			return bad("")
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(text), 64)
		if err != nil {
			return bad("")
		}
		return v, true
	case connector.TypeBool:
		if tag == "!!bool" {
			var v bool
			if err := n.Decode(&v); err != nil {
				return bad("")
			}
			return v, true
		}
		if quoted || tag != "!!str" {
			return bad("")
		}
		v, err := strconv.ParseBool(strings.TrimSpace(text))
		if err != nil {
			return bad("")
		}
		return v, true
	case connector.TypeDuration:
		if tag == "!!int" && n.Value == "0" {
			return time.Duration(0), true
		}
		if tag != "!!str" {
			if tag == "!!int" || tag == "!!float" {
				return bad(fmt.Sprintf("add a unit: %ss or %sms", n.Value, n.Value))
			}
			return bad("")
		}
		v, err := parseDuration(text)
		if err != nil {
			if secret {
				return bad("")
			}
			d.errorf(n, typeHints[f.Type], "%s: %v", l.at(), describeErr(err, refs, n.Value))
			return nil, false
		}
		return v, true
	case connector.TypeByteSize:
		if tag == "!!int" {
			var v int64
			if err := n.Decode(&v); err != nil || v < 0 {
				return bad("")
			}
			return v, true
		}
		if tag != "!!str" && tag != "!!float" {
			return bad("")
		}
		v, err := ParseByteSize(text)
		if err != nil {
			if secret {
				return bad("")
			}
			d.errorf(n, typeHints[f.Type], "%s: %v", l.at(), describeErr(err, refs, n.Value))
			return nil, false
		}
		return v, true
	}
	d.errorf(n, "", "%s: unsupported field type %q in the component's spec", l.at(), f.Type)
	return nil, false
}

func describeErr(err error, refs bool, raw string) string {
	if refs {
		return fmt.Sprintf("%v (from %s)", err, quoteValue(raw, false))
	}
	return err.Error()
}

// anyValue converts free-form YAML to Go values (map[string]any, []any, string, int64, float64,
// bool, nil), resolving references in strings.
func (d *docDecoder) anyValue(n *yaml.Node, l loc, secret bool, col *collector) (any, bool) {
	switch n.Kind {
	case yaml.MappingNode:
		m, order := d.mapping(n, l, nil)
		if m == nil {
			return nil, false
		}
		out := make(map[string]any, len(m))
		ok := true
		for _, k := range order {
			v, good := d.value(m[k].val, connector.Field{Type: connector.TypeAny}, l.child(k), secret, col)
			if !good {
				ok = false
			}
			out[k] = v
		}
		return out, ok
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		ok := true
		for i, e := range n.Content {
			v, good := d.value(e, connector.Field{Type: connector.TypeAny}, l.index(i), secret, col)
			if !good {
				ok = false
			}
			out = append(out, v)
		}
		return out, ok
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return nil, true
		case "!!bool":
			var v bool
			if err := n.Decode(&v); err == nil {
				return v, true
			}
		case "!!int":
			var v int64
			if err := n.Decode(&v); err == nil {
				return v, true
			}
			var u uint64
			if err := n.Decode(&u); err == nil {
				return float64(u), true
			}
		case "!!float":
			var v float64
			if err := n.Decode(&v); err == nil && !math.IsNaN(v) && !math.IsInf(v, 0) {
				return v, true
			}
			d.errorf(n, "quote it if it is meant as a string", "%s: %s is not a finite number", l.at(), n.Value)
			return nil, false
		case "!!str", "!!binary", "!!timestamp":
			s, _, ok := d.expand(n, secret, col)
			if ok && secret {
				col.secret(s)
			}
			return s, ok
		}
		d.errorf(n, "remove the tag, or quote the value", "%s: unsupported YAML tag %s", l.at(), n.Tag)
		return nil, false
	}
	d.errorf(n, "", "%s: unexpected YAML node", l.at())
	return nil, false
}
