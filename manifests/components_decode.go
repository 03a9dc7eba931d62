package manifests

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sluicehq/sluice/internal/schema"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// component decodes a source, sink or dead-letter sink: its type and its config against the
// registered spec. m, when not nil, is the already-decoded mapping (sinks decode it first for the
// name).
func (d *docDecoder) component(n *yaml.Node, kind connector.Kind, l loc, keys []string, m map[string]entry) (Component, bool) {
	if m == nil {
		if m, _ = d.mapping(n, l, keys); m == nil {
			return Component{}, false
		}
	}
	node := d.resolve(n)
	c := Component{Pos: d.pos(node), Fields: map[string]Pos{}}
	e, ok := m["type"]
	if !ok {
		d.errorf(node, "known "+string(kind)+"s: "+d.knownList(kind), "%s: missing required key \"type\"", l.at())
		return c, false
	}
	typ, ok := d.plainString(e.val, l.child("type"))
	if !ok {
		return c, false
	}
	c.Type = typ
	reg, found := d.l.opts.Catalog.Lookup(kind, typ)
	if !found {
		names := d.l.opts.Catalog.Names(kind)
		msg := fmt.Sprintf("%s: unknown type %q%s known %ss: %s", l.at(), typ, didYouMeanSep(typ, names), kind, d.knownList(kind))
		hint := ""
		if other := otherKind(kind); d.otherHas(other, typ) {
			hint = fmt.Sprintf("%q is a %s, not a %s", typ, other, kind)
		}
		d.errorf(e.val, hint, "%s", msg)
		return c, false
	}
	var cfgNode *yaml.Node
	if ce, ok := m["config"]; ok {
		cfgNode = ce.val
	}
	col := &collector{fields: c.Fields, prefix: "config.", doc: &d.secrets}
	cfg, ok := d.object(cfgNode, node, reg.Spec.Fields, l.child("config"), false, col)
	c.Config = connector.Config(cfg)
	c.Secrets = col.secrets
	if !d.codec(&c, m, kind, l, keys) {
		ok = false
	}
	if ok && d.l.opts.CheckComponent != nil {
		if err := d.l.opts.CheckComponent(kind, &c); err != nil {
			diag := c.ErrorDiagnostic(l.at(), err)
			d.report(diag.Pos, diag.Hint, "%s", diag.Message)
			ok = false
		}
	}
	return c, ok
}

// codec decodes a source's decode: or a sink's encode: mapping (when keys, the component's
// shape, has the key) against its spec in internal/schema, and checks it as the runtime will
// (schema.NewDecoder, schema.NewEncoder: a bad setting is reported at its key). It reports false
// when the mapping has errors.
func (d *docDecoder) codec(c *Component, m map[string]entry, kind connector.Kind, l loc, keys []string) bool {
	name, spec := "decode", schema.DecodeSpec
	if kind == connector.KindSink {
		name, spec = "encode", schema.EncodeSpec
	}
	e, present := m[name]
	if !present || !slices.Contains(keys, name) || isNull(d.resolve(e.val)) {
		return true
	}
	c.CodecFields = map[string]Pos{name: d.pos(e.key)}
	col := &collector{fields: c.CodecFields, doc: &d.secrets}
	v, ok := d.object(e.val, e.val, spec.Fields, l.child(name), false, col)
	c.Secrets = append(c.Secrets, col.secrets...)
	if !ok {
		return false
	}
	if f, ok := v["schema_file"].(string); ok && f != "" && !filepath.IsAbs(f) {
		v["schema_file"] = filepath.Join(filepath.Dir(d.file), f) // like wasm:, relative to the manifest
	}
	var err error
	if kind == connector.KindSink {
		c.Encode = connector.Config(v)
		_, err = schema.NewEncoder(c.Encode)
	} else {
		c.Decode = connector.Config(v)
		_, err = schema.NewDecoder(c.Decode)
	}
	if err == nil {
		return true
	}
	var ce *connector.ConfigError
	if errors.As(err, &ce) {
		field := name + "." + ce.Field
		d.report(closestField(c.CodecFields, field, c.CodecFields[name]), c.Redact(ce.Hint), "%s", c.Redact(fmt.Sprintf("%s: %s: %s", l.at(), field, ce.Msg)))
	} else {
		d.report(c.CodecFields[name], "", "%s", c.Redact(fmt.Sprintf("%s: %s: %v", l.at(), name, err)))
	}
	return false
}

// didYouMeanSep is didYouMean followed by the separator before the list of known names.
func didYouMeanSep(word string, names []string) string {
	if s := didYouMean(word, names); s != "" {
		return s
	}
	return ";"
}

func (d *docDecoder) knownList(kind connector.Kind) string {
	names := d.l.opts.Catalog.Names(kind)
	if len(names) == 0 {
		return "the catalog has none"
	}
	return strings.Join(names, ", ")
}

func otherKind(k connector.Kind) connector.Kind {
	if k == connector.KindSource {
		return connector.KindSink
	}
	return connector.KindSource
}

func (d *docDecoder) otherHas(k connector.Kind, name string) bool {
	_, ok := d.l.opts.Catalog.Lookup(k, name)
	return ok
}

func (d *docDecoder) sinks(p *Pipeline, n *yaml.Node) {
	l := loc{path: "spec.sinks"}
	seq := d.resolve(n)
	if seq == nil {
		return
	}
	if seq.Kind != yaml.SequenceNode {
		d.errorf(seq, "write sinks as a list: sinks: [{name: out, type: ..., config: {...}}]", "spec.sinks: expected a list, got %s", describe(seq, false))
		return
	}
	if len(seq.Content) == 0 {
		d.errorf(seq, "add at least one sink", "spec.sinks: the list is empty")
		return
	}
	for i, item := range seq.Content {
		il := l.index(i)
		m, _ := d.mapping(item, il, sinkShape.names())
		if m == nil {
			continue
		}
		node := d.resolve(item)
		s := Sink{From: DefaultPort}
		var label loc
		s.Name, label = d.entryName(m, node, il, "sink", "out", d.names)
		fromPos := d.pos(node)
		if e, ok := m["from"]; ok {
			fromPos = d.pos(e.val)
			if port, ok := d.name(e.val, label.child("from")); ok {
				s.From = port
			}
		}
		s.Component, _ = d.component(item, connector.KindSink, label, sinkShape.names(), m)
		var bp sinkBatchPos
		if e, ok := m["batch"]; ok && !isNull(d.resolve(e.val)) {
			s.Batch, bp = d.sinkBatch(e, node, label)
		}
		p.Sinks = append(p.Sinks, s)
		d.sinkFrom = append(d.sinkFrom, fromPos)
		d.sinkBatches = append(d.sinkBatches, bp)
	}
}

// sinkBatchPos is where a sink's batch settings are written, for the checks against the
// pipeline's batch and buffer (made once those are decoded).
type sinkBatchPos struct {
	records, bytes Pos
	// set records which of max_records and max_bytes the manifest sets.
	setRecords, setBytes bool
}

// sinkBatch decodes a sink's batch: settings. Unset fields stay zero: the pipeline's batch
// values fill them in (checkSinkBatches).
func (d *docDecoder) sinkBatch(e entry, sinkNode *yaml.Node, label loc) (*BatchPolicy, sinkBatchPos) {
	pos := sinkBatchPos{records: d.pos(e.key), bytes: d.pos(e.key)}
	v, ok := d.ruleSection(e.val, sinkNode, sinkBatchRules, label.child("batch"), nil)
	if !ok {
		return nil, pos
	}
	b := &BatchPolicy{}
	if x, set := v["max_records"]; set {
		b.MaxRecords, pos.setRecords, pos.records = int(x.(int64)), true, d.pos(mappingValue(e.val, "max_records"))
	}
	if x, set := v["max_bytes"]; set {
		b.MaxBytes, pos.setBytes, pos.bytes = x.(int64), true, d.pos(mappingValue(e.val, "max_bytes"))
	}
	if x, set := v["linger"]; set {
		b.Linger = x.(time.Duration)
	}
	return b, pos
}

// checkSinkBatches fills the unset fields of each sink batch with the pipeline's batch values and
// reports a sink batch that cannot work: larger than the buffer (it holds its records' share of
// the budget while it fills, so it would never fill), or smaller than the pipeline's batches
// (which it gathers whole, never split).
func (d *docDecoder) checkSinkBatches(p *Pipeline) {
	for i := range p.Sinks {
		s := &p.Sinks[i]
		if s.Batch == nil || i >= len(d.sinkBatches) {
			continue
		}
		at := d.sinkBatches[i]
		b := s.Batch
		if b.MaxRecords <= 0 {
			b.MaxRecords = p.Batch.MaxRecords
		}
		if b.MaxBytes <= 0 {
			b.MaxBytes = p.Batch.MaxBytes
		}
		if b.Linger <= 0 {
			b.Linger = p.Batch.Linger
		}
		switch {
		case at.setRecords && p.Buffer.MaxRecords > 0 && b.MaxRecords > p.Buffer.MaxRecords:
			d.report(at.records, fmt.Sprintf("raise spec.buffer.max_records to at least %d (about twice that lets the other sinks go on while this batch fills), or lower this max_records", b.MaxRecords),
				"sink %q: batch.max_records (%d) is larger than spec.buffer.max_records (%d): a sink batch holds its records in the buffer while it fills", s.Name, b.MaxRecords, p.Buffer.MaxRecords)
		case at.setRecords && b.MaxRecords < p.Batch.MaxRecords:
			d.report(at.records, fmt.Sprintf("lower spec.batch.max_records to at most %d, or raise this max_records", b.MaxRecords),
				"sink %q: batch.max_records (%d) is smaller than spec.batch.max_records (%d): a sink batch gathers the pipeline's batches whole", s.Name, b.MaxRecords, p.Batch.MaxRecords)
		}
		switch {
		case at.setBytes && p.Buffer.MaxBytes > 0 && b.MaxBytes > p.Buffer.MaxBytes:
			d.report(at.bytes, fmt.Sprintf("raise spec.buffer.max_bytes to at least %s (about twice that lets the other sinks go on while this batch fills), or lower this max_bytes", FormatByteSize(b.MaxBytes)),
				"sink %q: batch.max_bytes (%s) is larger than spec.buffer.max_bytes (%s): a sink batch holds its records in the buffer while it fills", s.Name, FormatByteSize(b.MaxBytes), FormatByteSize(p.Buffer.MaxBytes))
		case at.setBytes && b.MaxBytes < p.Batch.MaxBytes:
			d.report(at.bytes, fmt.Sprintf("lower spec.batch.max_bytes to at most %s, or raise this max_bytes", FormatByteSize(b.MaxBytes)),
				"sink %q: batch.max_bytes (%s) is smaller than spec.batch.max_bytes (%s): a sink batch gathers the pipeline's batches whole", s.Name, FormatByteSize(b.MaxBytes), FormatByteSize(p.Batch.MaxBytes))
		}
	}
}

// named is a transform's or sink's name already seen in the pipeline.
type named struct {
	kind string
	node *yaml.Node
}

// reservedNames name the source and the dead-letter sink in metrics and messages.
var reservedNames = map[string]bool{"source": true, "dead_letter": true}

// entryName decodes the name: of a sink or transform (kind). Transforms and sinks share one
// namespace within the pipeline (seen; their names are the component label of the metrics), and
// may not take a reserved name. A name used twice is reported where it comes second in the
// document. The returned label names the entry in later messages: `sink "out"`, or its list
// position when the name is missing or invalid.
func (d *docDecoder) entryName(m map[string]entry, node *yaml.Node, il loc, kind, example string, seen map[string]named) (string, loc) {
	e, ok := m["name"]
	if !ok {
		d.errorf(node, fmt.Sprintf("give each %s a name: name: %s", kind, example), "%s: missing required key \"name\"", il.path)
		return "", il
	}
	name, ok := d.name(e.val, il.child("name"))
	if !ok {
		return "", il
	}
	first, dup := seen[name]
	switch {
	case reservedNames[name]:
		d.errorf(e.val, `"source" and "dead_letter" name the pipeline's source and dead-letter sink in metrics and messages; choose another name`,
			"%s name %q is reserved", kind, name)
	case dup && first.kind == kind:
		d.errorf(e.val, kind+" names must be unique within a pipeline", "duplicate %s name %q (first defined at line %d)", kind, name, first.node.Line)
	case dup:
		a, b := named{first.kind, first.node}, named{kind, e.val}
		if b.node.Line < a.node.Line || b.node.Line == a.node.Line && b.node.Column < a.node.Column {
			a, b = b, a
		}
		d.errorf(b.node, "transforms and sinks share one namespace (the component label of the metrics); rename one",
			"%s name %q is already the name of %s %q (line %d)", b.kind, name, a.kind, name, a.node.Line)
	default:
		seen[name] = named{kind, e.val}
	}
	return name, loc{label: fmt.Sprintf("%s %q", kind, name)}
}
