package manifests

import (
	"math"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

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

// value decodes n as field f (see fieldTypes). It reports problems at n and returns ok=false
// after reporting.
func (d *docDecoder) value(raw *yaml.Node, f connector.Field, l loc, secret bool, col *collector) (any, bool) {
	n := d.resolve(raw)
	if n == nil {
		return nil, false
	}
	if !d.enter(n, l) {
		return nil, false
	}
	defer d.leave()
	ft := typeOf(f.Type)
	if ft == nil {
		d.errorf(n, "", "%s: unsupported field type %q in the component's spec", l.at(), f.Type)
		return nil, false
	}
	return ft.decode(d, n, f, l, secret, col)
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
