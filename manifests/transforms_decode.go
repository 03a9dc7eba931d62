package manifests

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sluicehq/sluice/runtime/pipeline"
	"github.com/sluicehq/sluice/sdk/go/connector"
	"github.com/sluicehq/sluice/sdk/go/template"
)

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
	for i, item := range seq.Content {
		il := l.index(i)
		m, _, typos := d.mappingTypos(item, il, transformShape.names())
		if m == nil {
			continue
		}
		node := d.resolve(item)
		t := Transform{Pos: d.pos(node), Fields: map[string]Pos{}}
		t.OnReject = OnReject(onRejectRule.Default.(string))
		errs := d.errs
		var label loc
		t.Name, label = d.entryName(m, node, il, "transform", "validate", d.names)
		col := &collector{fields: t.Fields}
		if label.path != "" {
			col.prefix = label.path + "."
		}
		if e, ok := m["on_reject"]; ok {
			t.Fields["on_reject"] = d.pos(e.key)
		}
		ae, isAggregate := m["aggregate"]
		we, isPlain := m["wasm"]
		switch {
		case isAggregate && isPlain:
			first, second := we.key, ae.key
			if second.Line < first.Line || second.Line == first.Line && second.Column < first.Column {
				first, second = second, first
			}
			d.errorf(second, "a transform runs one module: keep wasm: for a plain transform, or move wasm: under aggregate: for an aggregate stage",
				"%s: wasm and aggregate exclude each other (%s is at line %d)", label.at(), first.Value, first.Line)
		case isAggregate:
			for _, k := range []string{"sha256", "config", "limits"} {
				if e, ok := m[k]; ok {
					d.errorf(e.key, fmt.Sprintf("move it under aggregate: (aggregate: {wasm: ..., %s: ...})", k),
						"%s: %s belongs under aggregate: in an aggregate stage", label.at(), k)
				}
			}
			t.Fields["aggregate"] = d.pos(ae.key)
			d.aggregate(&t, ae.val, label)
		case typos["wasm"] || typos["aggregate"]:
			// Reported as a misspelt key.
		case !isPlain:
			d.errorf(node, "add wasm: PATH, relative to this manifest; for an aggregate stage, aggregate: {wasm: PATH, ...}",
				"%s: missing required key \"wasm\" (or \"aggregate\")", label.at())
		default:
			d.module(&t, m, node, label, col, limitsRules, "")
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

// module decodes the settings of a stage's module from m, the transform's mapping or its
// aggregate: mapping (node), whose messages l names: wasm (required), sha256, config and limits
// (by rules, filled with their defaults). The settings' positions go to t.Fields under their own
// names ("wasm", "config.max_price", "limits.memory"). A missing wasm: is reported with
// missingHint, unless that is empty. It returns the decoded limits, nil when they have a problem.
func (d *docDecoder) module(t *Transform, m map[string]entry, node *yaml.Node, l loc, col *collector, rules []rule, missingHint string) map[string]any {
	for _, k := range []string{"wasm", "sha256", "limits"} {
		if e, ok := m[k]; ok {
			t.Fields[k] = d.pos(e.key)
		}
	}
	if e, ok := m["wasm"]; ok {
		t.WasmPos = d.pos(d.resolve(e.val))
		if v, ok := d.value(e.val, connector.Field{Type: connector.TypeString}, l.child("wasm"), false, nil); ok {
			path := v.(string)
			if path == "" {
				d.errorf(e.val, "give the path of a .wasm module, relative to this manifest", "%s: empty path", l.child("wasm").at())
			} else {
				if !filepath.IsAbs(path) {
					path = filepath.Join(d.dir, path)
				}
				t.Module = path
			}
		}
	} else if missingHint != "" {
		d.errorf(node, missingHint, "%s: missing required key \"wasm\"", l.at())
	}
	if e, ok := m["sha256"]; ok {
		if v, ok := d.value(e.val, connector.Field{Type: connector.TypeString}, l.child("sha256"), false, nil); ok {
			h := strings.ToLower(v.(string))
			if !isHex64(h) {
				d.errorf(e.val, "use the 64 hex digits printed by sha256sum", "%s: %q is not a SHA-256 digest", l.child("sha256").at(), v)
			} else {
				t.SHA256 = h
			}
		}
	}
	t.Config = []byte("{}")
	if e, ok := m["config"]; ok {
		t.Fields["config"] = d.pos(e.key)
		if js, ok := d.configJSON(e.val, col, l.child("config")); ok {
			t.Config = js
		}
	}
	var limits *yaml.Node
	if e, ok := m["limits"]; ok {
		limits = e.val
	}
	v, ok := d.ruleSection(limits, node, rules, l.child("limits"), col)
	if !ok {
		return nil
	}
	t.Limits.MemoryBytes, _ = v["memory"].(int64)
	t.Limits.Timeout, _ = v["timeout"].(time.Duration)
	t.Limits.Mode, _ = v["mode"].(string)
	inst, _ := v["instances"].(int64)
	t.Limits.Instances = int(inst)
	t.Limits.Fuel, _ = v["fuel"].(int64)
	return v
}

// latePort is a port an aggregate stage sends its late records to: some sink must read it.
type latePort struct {
	label string // the stage, for messages
	port  string
	pos   Pos // of the late: value
}

// millisecond is the resolution of event time and so of windows.
const millisecond = time.Millisecond

// timeHint says why window durations are whole milliseconds.
const timeHint = "event times are Unix milliseconds: windows and gaps are whole milliseconds, at least 1ms"

// aggregate decodes the aggregate: mapping n of transform t (label): its module's settings into
// t, as a transform's, and the stage's own into t.Aggregate. The positions of the stage's keys go
// to t.Fields as "aggregate.KEY" ("aggregate.window.session"); those of the module's settings
// under their own names, as for a transform.
func (d *docDecoder) aggregate(t *Transform, n *yaml.Node, label loc) {
	l := label.child("aggregate")
	m, _, typos := d.mappingTypos(n, l, aggregateShape.names())
	if m == nil {
		return
	}
	node := d.resolve(n)
	a := &pipeline.Aggregate{Late: pipeline.LateDeadLetter}
	t.Aggregate = a
	for k, e := range m {
		t.Fields["aggregate."+k] = d.pos(e.key)
	}
	col := &collector{fields: t.Fields, prefix: l.path + "."}
	missing := "add wasm: PATH of an aggregate module, relative to this manifest"
	if typos["wasm"] {
		missing = "" // reported as a misspelt key
	}
	if limits := d.module(t, m, node, l, col, aggregateLimitsRules, missing); limits != nil {
		state, _ := limits["state"].(int64)
		a.StateBytes = int(state)
		a.MemoryBytes, _ = limits["state_memory"].(int64)
	}
	a.Key, _ = d.jsonPath(m, "key", l, "write a JSONPath into the record value: $.commodity, $.items[0].sku, $['odd key']; $ is the whole value; leave key out for the record key")
	var ok bool
	if a.Time, ok = d.jsonPath(m, "time", l, "write a JSONPath to the event time in the record value (epoch milliseconds or RFC 3339 text), for example $.ts; leave time out for processing time"); !ok {
		d.badTime[t.Fields["aggregate"]] = true
	}
	if e, ok := m["window"]; ok && !isNull(d.resolve(e.val)) {
		d.window(t, a, e.val, l.child("window"))
	}
	if v, _, ok := d.aggregateDuration(m, allowedLatenessRule, l); ok {
		a.AllowedLateness = v
	}
	if v, e, ok := d.aggregateDuration(m, ttlRule, l); ok {
		switch {
		case v <= 0:
			d.errorf(e.val, "leave ttl out to keep every key's slot", "%s: must be greater than 0", l.child("ttl").at())
		case a.Tumbling > 0 || a.Hopping > 0 || a.Session > 0:
			d.errorf(e.key, "leave ttl out: windows close by the watermark; ttl expires the slots of a stage without window",
				"%s: ttl applies only to stages without window", l.child("ttl").at())
		default:
			a.TTL = v
		}
	}
	if v, e, ok := d.aggregateDuration(m, earlyRule, l); ok {
		if v <= 0 {
			d.errorf(e.val, "leave early out to emit a window's records only when it closes", "%s: must be greater than 0", l.child("early").at())
		} else {
			a.Early = v
		}
	}
	if e, ok := m["late"]; ok && !isNull(d.resolve(e.val)) {
		ll := l.child("late")
		if v, ok := d.value(e.val, connector.Field{Type: connector.TypeString}, ll, false, nil); ok {
			switch s := v.(string); {
			case s == pipeline.LateDeadLetter || s == pipeline.LateDrop:
				a.Late = s
			case !nameRe.MatchString(s):
				d.errorf(e.val, "use dead_letter, drop, or a port name: "+strings.TrimPrefix(nameHint, "use "),
					"%s: %q is not dead_letter, drop or a valid port name", ll.at(), s)
			default:
				a.Late = s
				d.latePorts = append(d.latePorts, latePort{label: label.at(), port: s, pos: d.pos(d.resolve(e.val))})
			}
		}
	}
}

// jsonPath decodes the JSONPath at key k of an aggregate: mapping: "" when it is not set (or
// null); ok is false when it has a problem (reported with hint).
func (d *docDecoder) jsonPath(m map[string]entry, k string, l loc, hint string) (string, bool) {
	e, ok := m[k]
	if !ok || isNull(d.resolve(e.val)) {
		return "", true
	}
	kl := l.child(k)
	v, ok := d.value(e.val, connector.Field{Type: connector.TypeString}, kl, false, nil)
	if !ok {
		return "", false
	}
	s := v.(string)
	if s == "" {
		d.errorf(e.val, hint, "%s: empty path", kl.at())
		return "", false
	}
	if _, err := template.ParseJSONPath(s); err != nil {
		d.errorf(e.val, hint, "%s: %v", kl.at(), err)
		return "", false
	}
	return s, true
}

// aggregateDuration decodes the duration setting r of an aggregate: mapping; ok is false when it
// is not set (or null) or has a problem (reported).
func (d *docDecoder) aggregateDuration(m map[string]entry, r rule, l loc) (time.Duration, entry, bool) {
	e, ok := m[r.Name]
	if !ok || isNull(d.resolve(e.val)) {
		return 0, e, false
	}
	v, ok := d.ruleValue(e.val, r, l.child(r.Name))
	if !ok {
		return 0, e, false
	}
	return v.(time.Duration), e, true
}

// window decodes an aggregate stage's window: n into a: exactly one of tumbling, hopping (with
// every) and session, each at least 1ms in whole milliseconds; hopping a multiple of every.
func (d *docDecoder) window(t *Transform, a *pipeline.Aggregate, n *yaml.Node, l loc) {
	errs := d.errs
	m, order := d.mapping(n, l, windowShape.names())
	if m == nil {
		return
	}
	unknown := d.errs != errs // keys the mapping reported: what they meant is unknown
	vals := map[string]time.Duration{}
	var kinds []string // the kinds set, in document order
	for _, k := range order {
		e := m[k]
		t.Fields["aggregate.window."+k] = d.pos(e.key)
		if isNull(d.resolve(e.val)) {
			continue
		}
		if k != "every" {
			kinds = append(kinds, k)
		}
		v, ok := d.value(e.val, connector.Field{Type: connector.TypeDuration}, l.child(k), false, nil)
		if !ok {
			continue
		}
		dur := v.(time.Duration)
		switch {
		case dur < millisecond:
			d.errorf(e.val, timeHint, "%s: must be at least 1ms, got %s", l.child(k).at(), formatDuration(dur))
		case dur%millisecond != 0:
			d.errorf(e.val, timeHint, "%s: %s is not a whole number of milliseconds", l.child(k).at(), formatDuration(dur))
		default:
			vals[k] = dur
		}
	}
	every, hasEvery := m["every"]
	hasEvery = hasEvery && !isNull(d.resolve(every.val))
	switch {
	case len(kinds) > 1:
		d.errorf(m[kinds[1]].key, "a stage has one kind of window: keep one of tumbling, hopping (with every) and session",
			"%s: %s and %s exclude each other", l.at(), kinds[0], kinds[1])
		return
	case len(kinds) == 0 && hasEvery:
		d.errorf(every.key, "add hopping: LENGTH beside every:, or leave every out",
			"%s: every applies only to hopping windows", l.at())
		return
	case len(kinds) == 0 && unknown:
		return
	case len(kinds) == 0:
		d.errorf(d.resolve(n), "leave window out for one slot per key (expired by ttl)",
			"%s: give one of tumbling, hopping (with every) and session", l.at())
		return
	case kinds[0] != "hopping" && hasEvery:
		d.errorf(every.key, fmt.Sprintf("leave every out, or use hopping: LENGTH with every: STEP instead of %s", kinds[0]),
			"%s: every applies only to hopping windows", l.at())
		return
	case kinds[0] == "hopping" && !hasEvery:
		d.errorf(m["hopping"].key, "add every: how often a window starts, at most the window's length (for example hopping: 5m, every: 1m)",
			"%s: hopping needs every", l.at())
		return
	}
	switch kinds[0] {
	case "tumbling":
		a.Tumbling = vals["tumbling"]
	case "session":
		a.Session = vals["session"]
	case "hopping":
		h, okH := vals["hopping"]
		e, okE := vals["every"]
		if !okH || !okE {
			return // reported
		}
		switch {
		case e > h:
			d.errorf(every.val, "every is how often a window starts: at most the window's length (equal makes tumbling windows)",
				"%s: every (%s) is longer than hopping (%s)", l.at(), formatDuration(e), formatDuration(h))
		case h%e != 0:
			d.errorf(m["hopping"].val, fmt.Sprintf("make hopping a multiple of every: hopping: %s, or every: %s", formatDuration((h/e+1)*e), formatDuration(gcd(h, e))),
				"%s: hopping (%s) is not a multiple of every (%s)", l.at(), formatDuration(h), formatDuration(e))
		default:
			a.Hopping, a.Every = h, e
		}
	}
}

// checkAggregates reports what the aggregate stages ask of the rest of the pipeline: a sink for
// each late port; under delivery exactly_once (deliveryAt: the delivery: value), event time and
// no early updates, since what the runtime's clock decides cannot be replayed after a restart.
func (d *docDecoder) checkAggregates(p *Pipeline, deliveryAt *yaml.Node) {
	for _, lp := range d.latePorts {
		read := false
		for _, s := range p.Sinks {
			read = read || s.From == lp.port
		}
		if !read {
			d.report(lp.pos, fmt.Sprintf("add a sink with from: %s, or write late: dead_letter or late: drop", lp.port),
				"%s: aggregate.late: no sink reads port %q", lp.label, lp.port)
		}
	}
	if p.Delivery != ExactlyOnce || deliveryAt == nil {
		return
	}
	for _, t := range p.Transforms {
		if t.Aggregate == nil {
			continue
		}
		label := "transform"
		if t.Name != "" {
			label = fmt.Sprintf("transform %q", t.Name)
		}
		if t.Aggregate.Time == "" && !d.badTime[t.Fields["aggregate"]] {
			d.report(t.Fields["aggregate"], "add time: a JSONPath to each record's event time (for example time: $.ts): windows closed by the runtime's clock cannot be replayed after a restart; or use delivery: at_least_once",
				"%s: aggregate: delivery exactly_once (line %d) needs event time, and the stage sets no time:", label, deliveryAt.Line)
		}
		if t.Aggregate.Early > 0 {
			d.report(t.Fields["aggregate.early"], "remove early: the runtime's clock decides when early updates are made, which cannot be replayed after a restart; or use delivery: at_least_once",
				"%s: aggregate.early: delivery exactly_once (line %d) refuses early updates", label, deliveryAt.Line)
		}
	}
}

// gcd is the greatest common divisor of a and b (positive).
func gcd(a, b time.Duration) time.Duration {
	for b != 0 {
		a, b = b, a%b
	}
	return a
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
