package manifests_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/manifests"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// TestSchemaAndLoaderAgreeOnRanges generates, from the loader's own rule tables, values just
// outside and just inside the range of every ranged setting (batch, buffer, transform limits,
// aggregate stage limits, dead-letter failure limit), and checks that the JSON Schema and the loader both refuse the bad
// ones (the loader at the value's line) and both accept the good ones. Byte sizes are tried as
// numbers and, when they must be positive, as a zero with a unit; the exact range of a size
// written with a unit is the loader's alone (draft-07 cannot compute units).
func TestSchemaAndLoaderAgreeOnRanges(t *testing.T) {
	sch := compileSchema(t)
	settings := manifests.RangedSettings()
	if len(settings) < 8 {
		t.Fatalf("only %d ranged settings", len(settings))
	}
	for _, s := range settings {
		var bad, good []string
		num := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
		if s.Min != nil {
			if s.MinExcl {
				bad = append(bad, num(*s.Min))
				good = append(good, num(*s.Min+0.5))
			} else {
				bad = append(bad, num(*s.Min-1))
				good = append(good, num(*s.Min))
			}
			bad = append(bad, "-5")
			if s.Type == connector.TypeByteSize && *s.Min >= 1 {
				bad = append(bad, "0KiB", `"0 MiB"`)
			}
		}
		if s.Max != nil {
			bad = append(bad, num(*s.Max+1))
			good = append(good, num(*s.Max))
		}
		for _, v := range bad {
			t.Run(fmt.Sprintf("%s.%s=%s", s.Section, s.Name, v), func(t *testing.T) {
				path, line := rangeManifest(t, s, v)
				_, diags := manifests.Load([]string{path}, manifests.LoadOptions{Catalog: testCatalog})
				found := false
				for _, d := range diags {
					found = found || d.Pos.Line == line && strings.Contains(d.Message, s.Name)
				}
				if !found {
					t.Errorf("the loader accepts it (diagnostics: %v)", diags)
				}
				if err := sch.Validate(yamlDocuments(t, path)[0]); err == nil {
					t.Errorf("the schema accepts it")
				}
			})
		}
		for _, v := range good {
			t.Run(fmt.Sprintf("%s.%s=%s/good", s.Section, s.Name, v), func(t *testing.T) {
				path, _ := rangeManifest(t, s, v)
				if _, diags := manifests.Load([]string{path}, manifests.LoadOptions{Catalog: testCatalog}); len(diags) > 0 {
					t.Errorf("the loader refuses it: %v", diags)
				}
				if err := sch.Validate(yamlDocuments(t, path)[0]); err != nil {
					t.Errorf("the schema refuses it: %v", err)
				}
			})
		}
	}
}

// TestSchemaAndLoaderAgreeOnEnums does the same for every setting with a fixed set of values
// (delivery, on_reject, limits.mode): each value is accepted by both, a misspelt one refused by
// both.
func TestSchemaAndLoaderAgreeOnEnums(t *testing.T) {
	sch := compileSchema(t)
	settings := manifests.EnumSettings()
	if len(settings) < 3 {
		t.Fatalf("only %d enum settings", len(settings))
	}
	for _, s := range settings {
		rs := manifests.RangedSetting{Section: s.Section, Name: s.Name}
		for _, v := range append([]string{s.Values[0] + "x", "''"}, s.Values...) {
			good := v != "''" && !strings.HasSuffix(v, "x")
			t.Run(fmt.Sprintf("%s.%s=%s", s.Section, s.Name, v), func(t *testing.T) {
				path, line := rangeManifest(t, rs, v)
				_, diags := manifests.Load([]string{path}, manifests.LoadOptions{Catalog: testCatalog})
				serr := sch.Validate(yamlDocuments(t, path)[0])
				if good && (len(diags) > 0 || serr != nil) {
					t.Errorf("refused: loader %v, schema %v", diags, serr)
				}
				if !good {
					found := false
					for _, d := range diags {
						found = found || d.Pos.Line == line
					}
					if !found || serr == nil {
						t.Errorf("accepted: loader diagnostics %v, schema error %v", diags, serr)
					}
				}
			})
		}
	}
}

// rangeManifest writes a manifest setting s to v and returns its path and the line of v.
func rangeManifest(t *testing.T, s manifests.RangedSetting, v string) (string, int) {
	t.Helper()
	doc := `apiVersion: sluice.dev/v1
kind: Pipeline
metadata: {name: p}
spec:
  source: {type: testsource, config: {path: /tmp/a}}
  sinks: [{name: out, type: testdrop}]
  batch: {max_records: 1, max_bytes: 1}
`
	line := strings.Count(doc, "\n") + 2
	switch s.Section {
	case "batch":
		doc = strings.Replace(doc, "  batch: {max_records: 1, max_bytes: 1}\n", "", 1)
		line--
		doc += "  batch:\n    " + s.Name + ": " + v + "\n"
	case "buffer":
		doc += "  buffer:\n    " + s.Name + ": " + v + "\n"
	case "limits":
		doc += "  transforms:\n    - name: t\n      wasm: t.wasm\n      limits:\n        " + s.Name + ": " + v + "\n"
		line += 3
	case "aggregate.limits":
		doc += "  transforms:\n    - name: t\n      aggregate:\n        wasm: t.wasm\n        limits:\n          " + s.Name + ": " + v + "\n"
		line += 4
	case "dead_letter":
		doc += "  dead_letter:\n    type: testdrop\n    " + s.Name + ": " + v + "\n"
		line++
	case "spec":
		doc += "  " + s.Name + ": " + v + "\n"
		line--
	case "transform":
		doc += "  transforms:\n    - name: t\n      wasm: t.wasm\n      " + s.Name + ": " + v + "\n"
		line += 2
	default:
		t.Fatalf("no template for section %q", s.Section)
	}
	path := filepath.Join(t.TempDir(), "m.yaml")
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, line
}

// TestSchemaAndLoaderAgreeOnValues checks values where the schema and the loader used to
// disagree: whole numbers written as floats, integers beyond 64 bits, fractions of a byte and
// sections written as null.
func TestSchemaAndLoaderAgreeOnValues(t *testing.T) {
	sch := compileSchema(t)
	for _, c := range []struct {
		section, name, value string
		ok                   bool
	}{
		{"batch", "max_records", "1.0", true},
		{"batch", "max_records", "1e3", true},
		{"batch", "max_records", "1.5", false},
		{"batch", "max_records", "99999999999999999999", false},
		{"buffer", "max_records", "9223372036854775807", true},
		{"buffer", "max_records", "99999999999999999999", false},
		{"dead_letter", "failure_window", "99999999999999999999", false},
		{"dead_letter", "failure_window", "100.0", true},
		{"batch", "max_bytes", "1.5", false},
		{"batch", "max_bytes", "1.0", true},
		{"batch", "max_bytes", "2e3", true},
		{"batch", "max_bytes", "1.5KiB", true},
		{"buffer", "max_bytes", "0.5", false},
		{"spec", "batch", "null", true},
		{"spec", "buffer", "null", true},
		{"spec", "transforms", "null", true},
		{"spec", "dead_letter", "null", true},
		{"spec", "delivery", "null", true},
	} {
		t.Run(fmt.Sprintf("%s.%s=%s", c.section, c.name, c.value), func(t *testing.T) {
			path, _ := rangeManifest(t, manifests.RangedSetting{Section: c.section, Name: c.name}, c.value)
			if c.section == "spec" && c.name == "batch" { // the template sets batch: drop it
				b, _ := os.ReadFile(path)
				os.WriteFile(path, []byte(strings.Replace(string(b), "  batch: {max_records: 1, max_bytes: 1}\n", "", 1)), 0o644)
			}
			_, diags := manifests.Load([]string{path}, manifests.LoadOptions{Catalog: testCatalog})
			serr := sch.Validate(yamlDocuments(t, path)[0])
			if loader := len(diags) == 0; loader != c.ok {
				t.Errorf("loader accepts: %v, want %v (%v)", loader, c.ok, diags)
			}
			if schema := serr == nil; schema != c.ok {
				t.Errorf("schema accepts: %v, want %v (%v)", schema, c.ok, serr)
			}
		})
	}
}
