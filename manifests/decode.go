package manifests

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
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

// in renders the place for "unknown key ... in X" messages ("sink \"lake\" config").
func (l loc) in() string { return l.join(" ") }

// at renders the place as a message prefix ("sink \"lake\": config.port").
func (l loc) at() string { return l.join(": ") }

func (l loc) join(sep string) string {
	switch {
	case l.label == "":
		return l.path
	case l.path == "":
		return l.label
	}
	return l.label + sep + l.path
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
	l      *loader
	file   string
	dir    string
	errs   int
	nodes  int
	depth  int
	budget bool // reported the node budget already
	// overBudget silences every diagnostic after the node budget's.
	overBudget bool
	aliased    bool // followed an alias
	deep       bool // reported the depth limit already
	// files holds the ${file:PATH} targets read so far, by path: each is read once per document.
	files map[string]string
	// secrets holds every secret value seen in the document; its diagnostics are redacted with them.
	secrets []string
	// sinkFrom holds the position of each sink's from: (or of the sink), parallel to Pipeline.Sinks.
	sinkFrom []Pos
	// sinkBatches holds, parallel to Pipeline.Sinks, where each sink's batch settings are written.
	sinkBatches []sinkBatchPos
	// names holds the transform and sink names of the pipeline being decoded.
	names map[string]named
	// latePorts holds the ports the aggregate stages of the pipeline send late records to.
	latePorts []latePort
	// badTime holds, by the position of their aggregate: key, the aggregate stages of the
	// pipeline whose time: has a problem (already reported).
	badTime map[Pos]bool
}

func (d *docDecoder) pos(n *yaml.Node) Pos {
	if n == nil {
		return Pos{File: d.file}
	}
	return Pos{File: d.file, Line: n.Line, Col: n.Column}
}

func (d *docDecoder) report(p Pos, hint, format string, args ...any) {
	if d.overBudget {
		// Past the node budget resolve hands back nil for every value: anything reported now
		// (a "missing" key that is there) would follow from the size diagnostic, not the document.
		return
	}
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
			d.overBudget = true
		}
		return nil
	}
	return n
}

// enter guards recursion depth (recursive aliases); leave must follow a successful enter.
// Once the document is too deep or too large, nothing more is entered, so that one recursive
// alias gives one diagnostic, not one per path.
func (d *docDecoder) enter(n *yaml.Node, l loc) bool {
	if d.deep || d.budget {
		return false
	}
	if d.depth >= maxDepth {
		d.deep = true
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
