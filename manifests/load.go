package manifests

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sluicehq/sluice/runtime/pipeline"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// Catalog is what the loader, the JSON Schema and the docs need of a component catalog;
// runtime/catalog.Catalog provides it.
type Catalog interface {
	Lookup(kind connector.Kind, name string) (connector.Component, bool)
	Names(kind connector.Kind) []string
}

// LoadOptions adjusts Load. Catalog is required; the other fields may be left zero.
type LoadOptions struct {
	// Catalog holds the components a manifest may name.
	Catalog Catalog
	// LookupEnv resolves ${env:NAME} references; nil means os.LookupEnv.
	LookupEnv func(name string) (string, bool)
	// CheckModule, when set, is called once for each transform that decoded without problems
	// (its Wasm path resolved). Each *FieldError in the error it returns (errors.Join may hold
	// several) becomes a diagnostic at that setting's key; any other error a diagnostic at
	// t.WasmPos. The WASM host plugs its module checks in here: the module loads, exports the
	// ABI and matches its sha256; the config fits the module's config schema; the limits are
	// ones the host accepts.
	CheckModule func(t *Transform) error
}

// NamePattern is what pipeline, sink, transform and port names must match: lowercase letters,
// digits, '-' and '_', starting and ending with a letter or digit.
const NamePattern = `^[a-z0-9]([-a-z0-9_]*[a-z0-9])?$`

var nameRe = regexp.MustCompile(NamePattern)

const nameHint = `use lowercase letters, digits, '-' and '_', starting and ending with a letter or digit (for example "orders-v2")`

// Defaults applied when a manifest leaves a setting out.
const (
	DefaultBatchRecords  = pipeline.DefaultBatchRecords
	DefaultBatchBytes    = pipeline.DefaultBatchBytes
	DefaultBatchLinger   = pipeline.DefaultBatchLinger
	DefaultBufferRecords = pipeline.DefaultBufferRecords
	DefaultBufferBytes   = pipeline.DefaultBufferBytes
)

// DefaultFailureWindow is the number of recent records dead_letter.max_failure_ratio looks at.
const DefaultFailureWindow = pipeline.DefaultFailureWindow

var (
	documentKeys   = []string{"apiVersion", "kind", "metadata", "spec"}
	metadataKeys   = []string{"name", "labels"}
	specKeys       = []string{"source", "transforms", "sinks", "dead_letter", "delivery", "batch", "buffer"}
	sourceKeys     = []string{"type", "config"}
	deadLetterKeys = []string{"type", "config", "max_failure_ratio", "failure_window"}
	sinkKeys       = []string{"name", "type", "config", "from"}
	transformKeys  = []string{"name", "wasm", "sha256", "config", "limits", "on_reject"}
)

// loader holds the state of one Load call.
type loader struct {
	opts      LoadOptions
	diags     Diagnostics
	pipelines []*Pipeline
	names     map[string]Pos // pipeline names seen so far
}

// Load reads the manifests at paths and validates them against the components of opts.Catalog. Each
// path is a file (read whatever its extension) or a directory (its *.yaml and *.yml files, sorted,
// not recursive); a file may hold several documents separated by ---; empty documents are skipped.
//
// Every problem found is returned, sorted by file, line and column; loading goes on after a problem
// so that one run reports them all. The returned pipelines are those whose documents had no
// problem; a caller must not run anything while Diagnostics is non-empty. Load reads the files and
// the ${file:PATH} targets and calls opts.CheckModule; it is safe to call concurrently as long as
// those hooks are.
func Load(paths []string, opts LoadOptions) ([]*Pipeline, Diagnostics) {
	if opts.LookupEnv == nil {
		opts.LookupEnv = os.LookupEnv
	}
	if opts.Catalog == nil {
		opts.Catalog = emptyCatalog{}
	}
	l := &loader{opts: opts, names: map[string]Pos{}}
	seen := map[string]bool{}
	for _, p := range paths {
		for _, f := range l.expandPath(p) {
			if key := filepath.Clean(f); !seen[key] {
				seen[key] = true
				data, err := os.ReadFile(f)
				if err != nil {
					l.diags = append(l.diags, Diagnostic{Pos: Pos{File: f}, Message: fmt.Sprintf("cannot read manifest: %v", unwrapPathError(err))})
					continue
				}
				l.loadBytes(f, data)
			}
		}
	}
	l.diags.Sort()
	return l.pipelines, l.diags
}

// expandPath lists the manifest files a path stands for.
func (l *loader) expandPath(p string) []string {
	st, err := os.Stat(p)
	if err != nil {
		l.diags = append(l.diags, Diagnostic{Pos: Pos{File: p}, Message: fmt.Sprintf("cannot read manifest: %v", unwrapPathError(err))})
		return nil
	}
	if !st.IsDir() {
		return []string{p}
	}
	entries, err := os.ReadDir(p)
	if err != nil {
		l.diags = append(l.diags, Diagnostic{Pos: Pos{File: p}, Message: fmt.Sprintf("cannot read directory: %v", unwrapPathError(err))})
		return nil
	}
	var out []string
	for _, e := range entries {
		ext := strings.ToLower(filepath.Ext(e.Name()))
		if !e.IsDir() && (ext == ".yaml" || ext == ".yml") {
			out = append(out, filepath.Join(p, e.Name()))
		}
	}
	sort.Strings(out)
	if len(out) == 0 {
		l.diags = append(l.diags, Diagnostic{Pos: Pos{File: p}, Message: "no manifests in directory", Hint: "manifests end in .yaml or .yml"})
	}
	return out
}

// loadBytes decodes every document of one file.
func (l *loader) loadBytes(file string, data []byte) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for docs := 0; ; docs++ {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			if docs == 0 {
				l.diags = append(l.diags, emptyFileDiagnostic(file, data))
			}
			return
		}
		if err != nil {
			l.diags = append(l.diags, syntaxDiagnostic(file, data, err))
			return
		}
		if emptyDocument(&doc) {
			docs--
			continue
		}
		d := &docDecoder{l: l, file: file, dir: filepath.Dir(file)}
		first := len(l.diags)
		if p := d.document(&doc); p != nil && d.errs == 0 {
			l.pipelines = append(l.pipelines, p)
		}
		// A value can be secret in one field and show up in another one's message (the same
		// ${env:NAME} used twice): redact the document's diagnostics with all its secrets.
		for i := first; i < len(l.diags); i++ {
			l.diags[i].Message = Redact(l.diags[i].Message, d.secrets)
			l.diags[i].Hint = Redact(l.diags[i].Hint, d.secrets)
		}
	}
}

// emptyDocument reports whether a document holds nothing (only comments, or an explicit null).
func emptyDocument(doc *yaml.Node) bool {
	if doc.Kind == yaml.DocumentNode {
		return len(doc.Content) == 0 || isNull(doc.Content[0])
	}
	return doc.Kind == 0
}

// emptyFileDiagnostic reports a manifest file without any document.
func emptyFileDiagnostic(file string, data []byte) Diagnostic {
	msg := "the file is empty: no Pipeline documents"
	if len(bytes.TrimSpace(data)) > 0 {
		msg = "no Pipeline documents: the file holds only comments or empty documents"
	}
	return Diagnostic{Pos: Pos{File: file}, Message: msg,
		Hint: "a manifest is one or more YAML documents with apiVersion: " + APIVersion + ", kind: Pipeline, metadata: {name: ...} and spec: {source: ..., sinks: [...]}; `sluice components` lists the source and sink types"}
}

var yamlLineRe = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parserProblems are the yaml.v3 parser's messages (as opposed to its scanner's).
var parserProblems = map[string]bool{
	"did not find expected ',' or '}'":       true,
	"did not find expected ',' or ']'":       true,
	"did not find expected key":              true,
	"did not find expected '-' indicator":    true,
	"did not find expected node content":     true,
	"did not find expected <document start>": true,
	"did not find expected <stream-start>":   true,
	"found undefined tag handle":             true,
	"found duplicate %YAML directive":        true,
	"found incompatible YAML document":       true,
	"found duplicate %TAG directive":         true,
}

// syntaxDiagnostic turns a yaml.v3 parse error into a diagnostic. yaml.v3 reports a line but no
// column; the column given is that of the line's first non-blank character.
func syntaxDiagnostic(file string, data []byte, err error) Diagnostic {
	msg := err.Error()
	p := Pos{File: file}
	if m := yamlLineRe.FindStringSubmatch(msg); m != nil {
		p.Line, _ = strconv.Atoi(m[1])
		msg = m[2]
		if parserProblems[msg] {
			// yaml.v3 reports parser (not scanner) errors with a 0-based line, that of the
			// collection being parsed rather than of the offending token.
			p.Line++
			if strings.HasPrefix(msg, "did not find expected ',' or") || msg == "did not find expected key" || msg == "did not find expected '-' indicator" {
				msg += " (in the collection that starts on this line)"
			}
		}
		p.Col = firstCol(data, p.Line)
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	hint := "check the indentation and quoting around this line"
	switch {
	case strings.Contains(msg, "tab") || p.Line > 0 && leadingTab(data, p.Line):
		hint = "indent with spaces, not tabs"
		if p.Line > 0 && leadingTab(data, p.Line) {
			p.Col = 1
		}
	case p.Line > 0 && refInFlow(data, p.Line):
		hint = `inside {...} or [...], quote values that contain ${...}: {token: "${env:TOKEN}"}`
	}
	return Diagnostic{Pos: p, Message: "YAML syntax error: " + msg, Hint: hint}
}

// refInFlow reports whether the line, or the one before it, holds a reference inside a flow
// collection, where the { of ${ ends a plain scalar.
func refInFlow(data []byte, line int) bool {
	lines := bytes.Split(data, []byte("\n"))
	for l := line - 1; l >= line-2 && l >= 0; l-- {
		if l < len(lines) {
			t := string(lines[l])
			if i := strings.Index(t, "${"); i > 0 && strings.ContainsAny(t[:i], "{[") {
				return true
			}
		}
	}
	return false
}

// leadingTab reports whether the line is indented with a tab.
func leadingTab(data []byte, line int) bool {
	lines := bytes.Split(data, []byte("\n"))
	if line < 1 || line > len(lines) {
		return false
	}
	l := lines[line-1]
	return len(l) > len(bytes.TrimLeft(l, " \t")) && bytes.Contains(l[:len(l)-len(bytes.TrimLeft(l, " \t"))], []byte("\t"))
}

func firstCol(data []byte, line int) int {
	lines := bytes.Split(data, []byte("\n"))
	if line < 1 || line > len(lines) {
		return 0
	}
	text := string(lines[line-1])
	trimmed := strings.TrimLeft(text, " \t")
	if trimmed == "" {
		return 1
	}
	return len([]rune(text)) - len([]rune(trimmed)) + 1
}

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
	m, _ := d.mapping(root, top, documentKeys)
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
	m, _ := d.mapping(n, l, metadataKeys)
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
	m, _ := d.mapping(n, l, specKeys)
	if m == nil {
		return
	}
	at := d.resolve(n)

	if e, ok := m["source"]; ok && !isNull(d.resolve(e.val)) {
		p.Source, _ = d.component(e.val, connector.KindSource, loc{label: "source"}, sourceKeys, nil)
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

	p.FailureLimit = FailureLimit{Ratio: pipeline.DefaultFailureRatio, Window: DefaultFailureWindow}
	if e, ok := m["dead_letter"]; ok && !isNull(d.resolve(e.val)) {
		l := loc{label: "dead_letter"}
		if dm, _ := d.mapping(e.val, l, deadLetterKeys); dm != nil {
			if c, ok := d.component(e.val, connector.KindSink, l, deadLetterKeys, dm); ok {
				p.DeadLetter = &c
			}
			for _, r := range deadLetterRules {
				e, ok := dm[r.Name]
				if !ok {
					continue
				}
				v, ok := d.ruleValue(e.val, r, loc{path: "dead_letter"}.child(r.Name))
				switch x := v.(type) {
				case float64:
					if ok {
						p.FailureLimit.Ratio = x
					}
				case int64:
					if ok {
						p.FailureLimit.Window = int(x)
					}
				}
			}
		}
	}

	p.Delivery = AtLeastOnce
	if e, ok := m["delivery"]; ok && !isNull(d.resolve(e.val)) {
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
	return c, ok
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
	seen := map[string]int{}
	for i, item := range seq.Content {
		il := l.index(i)
		m, _ := d.mapping(item, il, sinkKeys)
		if m == nil {
			continue
		}
		node := d.resolve(item)
		s := Sink{From: DefaultPort}
		label := il
		if e, ok := m["name"]; ok {
			if name, ok := d.name(e.val, label.child("name")); ok {
				s.Name = name
				label = loc{label: fmt.Sprintf("sink %q", name)}
				if line, dup := seen[name]; dup {
					d.errorf(e.val, "sink names must be unique within a pipeline", "duplicate sink name %q (first defined at line %d)", name, line)
				} else {
					seen[name] = e.val.Line
				}
			}
		} else {
			d.errorf(node, "give each sink a name: name: out", "%s: missing required key \"name\"", il.path)
		}
		fromPos := d.pos(node)
		if e, ok := m["from"]; ok {
			fromPos = d.pos(e.val)
			if port, ok := d.name(e.val, label.child("from")); ok {
				s.From = port
			}
		}
		s.Component, _ = d.component(item, connector.KindSink, label, sinkKeys, m)
		p.Sinks = append(p.Sinks, s)
		d.sinkFrom = append(d.sinkFrom, fromPos)
	}
}

func (d *docDecoder) transforms(p *Pipeline, n *yaml.Node) {
	l := loc{path: "spec.transforms"}
	seq := d.resolve(n)
	if seq == nil {
		return
	}
	if seq.Kind != yaml.SequenceNode {
		d.errorf(seq, "write transforms as a list: transforms: [{name: ..., wasm: ...}]", "spec.transforms: expected a list, got %s", describe(seq, false))
		return
	}
	seen := map[string]int{}
	for i, item := range seq.Content {
		il := l.index(i)
		m, _ := d.mapping(item, il, transformKeys)
		if m == nil {
			continue
		}
		node := d.resolve(item)
		t := Transform{Pos: d.pos(node), OnReject: RejectToDeadLetter, Config: map[string]any{}, Fields: map[string]Pos{}}
		label := il
		errs := d.errs
		if e, ok := m["name"]; ok {
			if name, ok := d.name(e.val, label.child("name")); ok {
				t.Name = name
				label = loc{label: fmt.Sprintf("transform %q", name)}
				if line, dup := seen[name]; dup {
					d.errorf(e.val, "transform names must be unique within a pipeline", "duplicate transform name %q (first defined at line %d)", name, line)
				} else {
					seen[name] = e.val.Line
				}
			}
		} else {
			d.errorf(node, "give each transform a name: name: validate", "%s: missing required key \"name\"", il.path)
		}
		col := &collector{fields: t.Fields}
		if label.path != "" {
			col.prefix = label.path + "."
		}
		for _, k := range []string{"wasm", "sha256", "limits", "on_reject"} {
			if e, ok := m[k]; ok {
				t.Fields[k] = d.pos(e.key)
			}
		}
		if e, ok := m["wasm"]; ok {
			t.WasmPos = d.pos(d.resolve(e.val))
			if v, ok := d.value(e.val, connector.Field{Type: connector.TypeString}, label.child("wasm"), false, nil); ok {
				path := v.(string)
				if path == "" {
					d.errorf(e.val, "give the path of a .wasm module, relative to this manifest", "%s: empty path", label.child("wasm").at())
				} else {
					if !filepath.IsAbs(path) {
						path = filepath.Join(d.dir, path)
					}
					t.Wasm = path
				}
			}
		} else {
			d.errorf(node, "add wasm: PATH, relative to this manifest", "%s: missing required key \"wasm\"", label.at())
		}
		if e, ok := m["sha256"]; ok {
			if v, ok := d.value(e.val, connector.Field{Type: connector.TypeString}, label.child("sha256"), false, nil); ok {
				h := strings.ToLower(v.(string))
				if !isHex64(h) {
					d.errorf(e.val, "use the 64 hex digits printed by sha256sum", "%s: %q is not a SHA-256 digest", label.child("sha256").at(), v)
				} else {
					t.SHA256 = h
				}
			}
		}
		t.ConfigJSON = []byte("{}")
		if e, ok := m["config"]; ok {
			t.Fields["config"] = d.pos(e.key)
			if js, ok := d.configJSON(e.val, col, label.child("config")); ok {
				t.ConfigJSON = js
				var err error
				if t.Config, err = configValue(js); err != nil {
					d.errorf(e.val, "", "%s: %v", label.child("config").at(), err)
				}
			}
		}
		var limits *yaml.Node
		if e, ok := m["limits"]; ok {
			limits = e.val
		}
		if v, ok := d.ruleSection(limits, node, limitsRules, label.child("limits"), col); ok {
			t.Limits.MemoryBytes, _ = v["memory"].(int64)
			t.Limits.Timeout, _ = v["timeout"].(time.Duration)
			t.Limits.Mode, _ = v["mode"].(string)
			inst, _ := v["instances"].(int64)
			t.Limits.Instances = int(inst)
		}
		if e, ok := m["on_reject"]; ok && !isNull(d.resolve(e.val)) {
			if v, ok := d.value(e.val, onRejectRule.Field, label.child("on_reject"), false, nil); ok {
				t.OnReject = OnReject(v.(string))
			}
		}
		if d.errs == errs && d.l.opts.CheckModule != nil {
			if err := d.l.opts.CheckModule(&t); err != nil {
				for _, diag := range t.diagnostics(label.at(), err) {
					d.report(diag.Pos, diag.Hint, "%s", diag.Message)
				}
			}
		}
		p.Transforms = append(p.Transforms, t)
	}
}

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, r := range s {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') {
			return false
		}
	}
	return true
}

// emptyCatalog knows no component.
type emptyCatalog struct{}

func (emptyCatalog) Lookup(connector.Kind, string) (connector.Component, bool) {
	return connector.Component{}, false
}
func (emptyCatalog) Names(connector.Kind) []string { return nil }
