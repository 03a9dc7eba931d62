package manifests

import (
	"fmt"
	"regexp"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

// NamePattern is what pipeline, sink, transform and port names must match: lowercase letters,
// digits, '-' and '_', starting and ending with a letter or digit.
const NamePattern = `^[a-z0-9]([-a-z0-9_]*[a-z0-9])?$`

var nameRe = regexp.MustCompile(NamePattern)

const nameHint = `use lowercase letters, digits, '-' and '_', starting and ending with a letter or digit (for example "orders-v2")`

// document decodes one Pipeline document. It returns nil for an empty document.
func (d *docDecoder) document(doc *yaml.Node) *Pipeline {
	root := doc
	if doc.Kind == yaml.DocumentNode {
		if len(doc.Content) == 0 {
			return nil
		}
		root = doc.Content[0]
	}
	if isNull(root) {
		return nil
	}
	top := loc{path: "document"}
	m, _ := d.mapping(root, top, documentShape.names())
	if m == nil {
		return nil
	}
	root = d.resolve(root)
	p := &Pipeline{Pos: d.pos(root)}

	if e, ok := m["apiVersion"]; !ok {
		d.errorf(root, "add apiVersion: "+APIVersion, "missing required key \"apiVersion\"")
	} else if v, ok := d.plainString(e.val, loc{path: "apiVersion"}); ok && v != APIVersion {
		d.errorf(e.val, "this runtime reads apiVersion "+APIVersion, "unsupported apiVersion %q", v)
	}
	if e, ok := m["kind"]; !ok {
		d.errorf(root, "add kind: Pipeline", "missing required key \"kind\"")
	} else if v, ok := d.plainString(e.val, loc{path: "kind"}); ok && v != "Pipeline" {
		d.errorf(e.val, "the only kind is Pipeline", "unknown kind %q%s", v, didYouMean(v, []string{"Pipeline"}))
	}
	if e, ok := m["metadata"]; ok {
		d.metadata(p, e.val)
	} else {
		d.errorf(root, "add metadata: {name: my-pipeline}", "missing required key \"metadata\"")
	}
	if e, ok := m["spec"]; ok {
		d.spec(p, e.val)
	} else {
		d.errorf(root, "add spec with a source and at least one sink", "missing required key \"spec\"")
	}
	if p.Name != "" {
		if first, dup := d.l.names[p.Name]; dup {
			d.report(p.Pos, "pipeline names must be unique across all the manifests loaded together", "duplicate pipeline name %q (first defined at %s)", p.Name, first)
		} else {
			d.l.names[p.Name] = p.Pos
		}
	}
	return p
}

// plainString reads a string scalar without resolving references (apiVersion, kind, names).
func (d *docDecoder) plainString(n *yaml.Node, l loc) (string, bool) {
	n = d.resolve(n)
	if n == nil {
		return "", false
	}
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
		hint := ""
		if n.Kind == yaml.ScalarNode && !isNull(n) {
			hint = fmt.Sprintf("quote it: %q", n.Value)
		}
		d.errorf(n, hint, "%s: expected a string, got %s", l.at(), describe(n, false))
		return "", false
	}
	return n.Value, true
}

// name reads a name that must match NamePattern.
func (d *docDecoder) name(n *yaml.Node, l loc) (string, bool) {
	s, ok := d.plainString(n, l)
	if !ok {
		return "", false
	}
	if !nameRe.MatchString(s) {
		d.errorf(n, nameHint, "%s: %q is not a valid name", l.at(), s)
		return "", false
	}
	return s, true
}

func (d *docDecoder) metadata(p *Pipeline, n *yaml.Node) {
	l := loc{path: "metadata"}
	m, _ := d.mapping(n, l, metadataShape.names())
	if m == nil {
		return
	}
	if e, ok := m["name"]; ok {
		p.Name, _ = d.name(e.val, l.child("name"))
	} else {
		d.errorf(d.resolve(n), nameHint, "missing required key \"name\" in metadata")
	}
	if e, ok := m["labels"]; ok && !isNull(d.resolve(e.val)) {
		v, ok := d.value(e.val, connector.Field{Type: connector.TypeMap, Elem: &connector.Field{Type: connector.TypeString}}, l.child("labels"), false, nil)
		if ok {
			p.Labels = map[string]string{}
			for k, x := range v.(map[string]any) {
				p.Labels[k], _ = x.(string)
			}
		}
	}
}

func (d *docDecoder) spec(p *Pipeline, n *yaml.Node) {
	l := loc{path: "spec"}
	m, _ := d.mapping(n, l, specShape.names())
	if m == nil {
		return
	}
	at := d.resolve(n)
	d.names = map[string]named{}
	d.latePorts, d.badTime = nil, map[Pos]bool{}

	if e, ok := m["source"]; ok && !isNull(d.resolve(e.val)) {
		p.Source, _ = d.component(e.val, connector.KindSource, loc{label: "source"}, sourceShape.names(), nil)
	} else {
		d.errorf(at, "add a source: {type: ..., config: {...}}; `sluice components` lists the types", "missing required key \"source\" in spec")
	}

	if e, ok := m["transforms"]; ok && !isNull(d.resolve(e.val)) {
		d.transforms(p, e.val)
	}

	if e, ok := m["sinks"]; ok && !isNull(d.resolve(e.val)) {
		d.sinks(p, e.val)
	} else {
		d.errorf(at, "add sinks: [{name: out, type: ..., config: {...}}]; `sluice components` lists the types", "missing required key \"sinks\" in spec")
	}

	failure := map[string]any{} // the dead-letter settings, defaults first
	for _, r := range deadLetterRules {
		failure[r.Name] = r.Default
	}
	if e, ok := m["dead_letter"]; ok && !isNull(d.resolve(e.val)) {
		l := loc{label: "dead_letter"}
		if dm, _ := d.mapping(e.val, l, deadLetterShape.names()); dm != nil {
			if c, ok := d.component(e.val, connector.KindSink, l, deadLetterShape.names(), dm); ok {
				p.DeadLetter = &c
			}
			for _, r := range deadLetterRules {
				if e, ok := dm[r.Name]; ok {
					if v, ok := d.ruleValue(e.val, r, loc{path: "dead_letter"}.child(r.Name)); ok {
						failure[r.Name] = v
					}
				}
			}
		}
	}
	ratio, _ := failure["max_failure_ratio"].(float64)
	window, _ := failure["failure_window"].(int64)
	p.FailureLimit = FailureLimit{Ratio: ratio, Window: int(window)}

	p.Delivery = Delivery(deliveryRule.Default.(string))
	var deliveryAt *yaml.Node
	if e, ok := m["delivery"]; ok && !isNull(d.resolve(e.val)) {
		deliveryAt = d.resolve(e.val)
		if v, ok := d.value(e.val, deliveryRule.Field, l.child("delivery"), false, nil); ok {
			p.Delivery = Delivery(v.(string))
		}
		if p.Delivery == ExactlyOnce {
			for _, s := range p.Sinks {
				if c, ok := d.l.opts.Catalog.Lookup(connector.KindSink, s.Type); ok && !c.Spec.ExactlyOnce {
					d.errorf(e.val, "use delivery: at_least_once, or sinks that support exactly_once",
						"delivery exactly_once needs every sink to store source positions with its data; sink %q (type %s) cannot", s.Name, s.Type)
					break
				}
			}
		}
	}

	d.checkAggregates(p, deliveryAt)

	bv, bok := d.ruleSection(m["batch"].val, at, batchRules, l.child("batch"), nil)
	if bok {
		p.Batch = BatchPolicy{MaxRecords: int(bv["max_records"].(int64)), MaxBytes: bv["max_bytes"].(int64), Linger: bv["linger"].(time.Duration)}
	}
	fv, fok := d.ruleSection(m["buffer"].val, at, bufferRules, l.child("buffer"), nil)
	if fok {
		p.Buffer = BufferPolicy{MaxRecords: int(fv["max_records"].(int64)), MaxBytes: fv["max_bytes"].(int64)}
	}
	if bok && fok && p.Buffer.MaxRecords > 0 && p.Buffer.MaxRecords < p.Batch.MaxRecords {
		d.errorf(d.sectionNode(m, "buffer", "max_records", at), "raise buffer.max_records or lower batch.max_records",
			"spec.buffer.max_records (%d) is smaller than spec.batch.max_records (%d)", p.Buffer.MaxRecords, p.Batch.MaxRecords)
	}
	if bok && fok && p.Buffer.MaxBytes > 0 && p.Buffer.MaxBytes < p.Batch.MaxBytes {
		d.errorf(d.sectionNode(m, "buffer", "max_bytes", at), "raise buffer.max_bytes or lower batch.max_bytes",
			"spec.buffer.max_bytes (%s) is smaller than spec.batch.max_bytes (%s)", FormatByteSize(p.Buffer.MaxBytes), FormatByteSize(p.Batch.MaxBytes))
	}

	if bok && fok {
		d.checkSinkBatches(p)
	}

	if e, ok := m["lease"]; ok && !isNull(d.resolve(e.val)) {
		d.lease(p, e)
	}

	if len(p.Transforms) == 0 {
		for i, s := range p.Sinks {
			if s.From != DefaultPort {
				d.report(d.sinkFrom[i], "remove from:, or add a transform that emits to this port", "sink %q reads port %q, but the pipeline has no transforms; only %q exists", s.Name, s.From, DefaultPort)
			}
		}
	}
}

// sectionNode finds the value node of spec.SECTION.FIELD, or returns def.
func (d *docDecoder) sectionNode(m map[string]entry, section, field string, def *yaml.Node) *yaml.Node {
	e, ok := m[section]
	if !ok {
		return def
	}
	n := d.resolve(e.val)
	if n == nil || n.Kind != yaml.MappingNode {
		return def
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == field {
			return n.Content[i+1]
		}
	}
	if e.key != nil {
		return e.key
	}
	return def
}
