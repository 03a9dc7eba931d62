package manifests

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"

	"gopkg.in/yaml.v3"
)

// jsonNumberRe is the JSON number grammar (RFC 8259 section 6).
var jsonNumberRe = regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?$`)

// ConfigJSON returns the JSON text of a YAML value the way a transform module receives its config:
// keys in written order, numbers with the text as written, no HTML escaping, ${env:...} and
// ${file:...} references resolved, "{}" for an empty or null document. A value YAML types as a number but writes in a form JSON does
// not have (0x1F, 0o17, 012, +12, 1_000, .5) is converted to JSON's notation of the same number;
// .inf and .nan are refused. Problems come back as Diagnostics at their line and column. It is pure (environment lookups aside) and safe to
// call concurrently. file names the text in diagnostics; ${file:PATH} is relative to its directory.
func ConfigJSON(text []byte, file string, opts LoadOptions) ([]byte, Diagnostics) {
	if opts.LookupEnv == nil {
		opts.LookupEnv = os.LookupEnv
	}
	l := &loader{opts: opts, names: map[string]Pos{}}
	var doc yaml.Node
	if err := yaml.Unmarshal(text, &doc); err != nil {
		return nil, Diagnostics{syntaxDiagnostic(file, text, err)}
	}
	d := &docDecoder{l: l, file: file, dir: filepath.Dir(file)}
	root := &doc
	if doc.Kind == 0 {
		return []byte("{}"), nil
	}
	if doc.Kind == yaml.DocumentNode {
		if len(doc.Content) == 0 {
			return []byte("{}"), nil
		}
		root = doc.Content[0]
	}
	out, ok := d.configJSON(root, nil, loc{path: "config"})
	if !ok {
		return nil, l.diags
	}
	return out, nil
}

// configJSON encodes a transform's config node as JSON (see ConfigJSON), reporting problems and
// recording the position of every key in col. A null or absent node gives "{}"; anything but a
// mapping is an error.
func (d *docDecoder) configJSON(raw *yaml.Node, col *collector, l loc) ([]byte, bool) {
	n := d.resolve(raw)
	if isNull(n) {
		return []byte("{}"), n != nil || raw == nil
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, "write the config as a mapping: config: {key: value}", "%s: expected a mapping, got %s", l.at(), describe(n, false))
		return nil, false
	}
	var b bytes.Buffer
	errs := d.errs
	ok := d.writeJSON(&b, n, col, l) && d.errs == errs // mapping reports some problems and goes on
	return b.Bytes(), ok
}

// writeJSON appends the JSON text of the (resolved) node n to b.
func (d *docDecoder) writeJSON(b *bytes.Buffer, n *yaml.Node, col *collector, l loc) bool {
	if !d.enter(n, l) {
		return false
	}
	defer d.leave()
	switch n.Kind {
	case yaml.MappingNode:
		m, order := d.mapping(n, l, nil)
		if m == nil {
			return false
		}
		ok := true
		b.WriteByte('{')
		for i, k := range order {
			if i > 0 {
				b.WriteByte(',')
			}
			writeJSONString(b, k)
			b.WriteByte(':')
			kl := l.child(k)
			col.field(kl, d.pos(m[k].key))
			if v := d.resolve(m[k].val); v == nil || !d.writeJSON(b, v, col, kl) {
				ok = false
			}
		}
		b.WriteByte('}')
		return ok
	case yaml.SequenceNode:
		ok := true
		b.WriteByte('[')
		for i, e := range n.Content {
			if i > 0 {
				b.WriteByte(',')
			}
			el := l.index(i)
			col.field(el, d.pos(e))
			if v := d.resolve(e); v == nil || !d.writeJSON(b, v, col, el) {
				ok = false
			}
		}
		b.WriteByte(']')
		return ok
	case yaml.ScalarNode:
		return d.writeJSONScalar(b, n, l)
	}
	d.errorf(n, "", "%s: unexpected YAML node", l.at())
	return false
}

// writeJSONScalar appends one scalar as YAML types it.
func (d *docDecoder) writeJSONScalar(b *bytes.Buffer, n *yaml.Node, l loc) bool {
	switch n.ShortTag() {
	case "!!null":
		b.WriteString("null")
		return true
	case "!!bool":
		var v bool
		if err := n.Decode(&v); err == nil {
			b.WriteString(strconv.FormatBool(v))
			return true
		}
	case "!!int":
		if jsonNumberRe.MatchString(n.Value) {
			b.WriteString(n.Value)
			return true
		}
		var v int64
		if err := n.Decode(&v); err == nil {
			b.WriteString(strconv.FormatInt(v, 10))
			return true
		}
		var u uint64
		if err := n.Decode(&u); err == nil {
			b.WriteString(strconv.FormatUint(u, 10))
			return true
		}
	case "!!float":
		var v float64
		if err := n.Decode(&v); err == nil && !math.IsNaN(v) && !math.IsInf(v, 0) {
			if jsonNumberRe.MatchString(n.Value) {
				b.WriteString(n.Value)
			} else {
				b.WriteString(strconv.FormatFloat(v, 'g', -1, 64))
			}
			return true
		}
		d.errorf(n, fmt.Sprintf("JSON has no infinity or NaN; quote it if it is meant as a string: %q", n.Value),
			"%s: %s is not a finite number", l.at(), n.Value)
		return false
	case "!!str", "!!binary", "!!timestamp":
		if n.Style == 0 && jsonNumberRe.MatchString(n.Value) {
			// An unquoted number YAML could not hold as a double (1e400) comes back as a string.
			d.errorf(n, fmt.Sprintf("quote it if it is meant as a string: %q", n.Value),
				"%s: %s is out of the range of a double (about ±1.8e308)", l.at(), n.Value)
			return false
		}
		s, _, ok := d.expand(n, false, nil)
		if ok {
			writeJSONString(b, s)
		}
		return ok
	}
	d.errorf(n, "remove the tag, or quote the value", "%s: unsupported YAML tag %s", l.at(), n.Tag)
	return false
}

// writeJSONString appends s as a JSON string without HTML escaping (< > & stay as they are).
func writeJSONString(b *bytes.Buffer, s string) {
	var sb bytes.Buffer
	enc := json.NewEncoder(&sb)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	b.Write(bytes.TrimSuffix(sb.Bytes(), []byte("\n")))
}
