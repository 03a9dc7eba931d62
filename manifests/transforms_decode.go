package manifests

import (
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sluicehq/sluice/sdk/go/connector"
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
		m, _ := d.mapping(item, il, transformShape.names())
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
					t.Module = path
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
		t.Config = []byte("{}")
		if e, ok := m["config"]; ok {
			t.Fields["config"] = d.pos(e.key)
			if js, ok := d.configJSON(e.val, col, label.child("config")); ok {
				t.Config = js
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
			t.Limits.Fuel, _ = v["fuel"].(int64)
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
