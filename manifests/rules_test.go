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
// dead-letter failure limit), and checks that the JSON Schema and the loader both refuse the bad
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
	case "dead_letter":
		doc += "  dead_letter:\n    type: testdrop\n    " + s.Name + ": " + v + "\n"
		line++
	default:
		t.Fatalf("no template for section %q", s.Section)
	}
	path := filepath.Join(t.TempDir(), "m.yaml")
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, line
}
