package manifests_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"

	"github.com/sluicehq/sluice/manifests"
)

// compileSchema compiles the schema generated from the registered components (the test ones
// included) with an independent validator.
func compileSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	data, err := manifests.JSONSchema(testCatalog)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("schema is not JSON: %v", err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource("pipeline.json", doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("pipeline.json")
	if err != nil {
		t.Fatalf("schema does not compile: %v", err)
	}
	return sch
}

// yamlDocuments decodes every document of a YAML file into JSON-compatible values.
func yamlDocuments(t *testing.T, path string) []any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []any
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var v any
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		j, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(j))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, inst)
	}
	return out
}

func TestSchemaAcceptsGoodManifests(t *testing.T) {
	sch := compileSchema(t)
	files, _ := filepath.Glob("testdata/good/*.yaml")
	for _, f := range files {
		for i, doc := range yamlDocuments(t, f) {
			if err := sch.Validate(doc); err != nil {
				t.Errorf("%s document %d: %v", f, i+1, err)
			}
		}
	}
}

// TestSchemaRejectsBadManifests checks that the schema catches, as the loader does, the mistakes an
// editor should underline.
func TestSchemaRejectsBadManifests(t *testing.T) {
	sch := compileSchema(t)
	base := `apiVersion: sluice.dev/v1
kind: Pipeline
metadata: {name: p}
spec:
  source: {type: testsource, config: {path: /tmp/a}}
  sinks: [{name: out, type: testsink, config: {url: x}}]
`
	tests := []struct {
		name, from, to, want string
	}{
		{"unknown spec key", "  sinks:", "  sinc: []\n  sinks:", "sinc"},
		{"unknown config key", "path: /tmp/a", "path: /tmp/a, pth: x", "pth"},
		{"unknown type", "type: testsink", "type: icebreg", "/spec/sinks/0/type"},
		{"missing required config", "config: {path: /tmp/a}", "config: {count: 1}", "path"},
		{"wrong type", "path: /tmp/a", "path: /tmp/a, count: many", "count"},
		{"bad enum", "url: x", "url: x, mode: insert", "/spec/sinks/0/config/mode"},
		{"bad duration", "path: /tmp/a", "path: /tmp/a, interval: 20 ms", "interval"},
		{"bad name", "name: p", "name: Bad Name", "Bad Name"},
		{"bad delivery", "  sinks:", "  delivery: twice\n  sinks:", "/spec/delivery"},
		{"missing sinks", "  sinks: [{name: out, type: testsink, config: {url: x}}]\n", "", "sinks"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := strings.Replace(base, tc.from, tc.to, 1)
			if src == base {
				t.Fatalf("replacement %q not applied", tc.from)
			}
			path := filepath.Join(t.TempDir(), "m.yaml")
			if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
				t.Fatal(err)
			}
			// The loader and the schema must agree that this manifest is bad.
			if _, diags := manifests.Load([]string{path}, manifests.LoadOptions{Catalog: testCatalog}); len(diags) == 0 {
				t.Errorf("the loader accepts it")
			}
			err := sch.Validate(yamlDocuments(t, path)[0])
			if err == nil {
				t.Fatalf("the schema accepts it")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("schema error does not mention %q:\n%v", tc.want, err)
			}
		})
	}
	// References are accepted wherever a typed value is.
	t.Run("references", func(t *testing.T) {
		src := strings.Replace(base, "path: /tmp/a", "path: /tmp/a, count: '${env:N}', interval: '${env:I}', follow: '${file:f}'", 1)
		path := filepath.Join(t.TempDir(), "m.yaml")
		if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := sch.Validate(yamlDocuments(t, path)[0]); err != nil {
			t.Errorf("schema rejects references: %v", err)
		}
	})
}

func TestSchemaDeterministic(t *testing.T) {
	a, err := manifests.JSONSchema(testCatalog)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := manifests.JSONSchema(testCatalog)
	if !bytes.Equal(a, b) {
		t.Error("two calls give different schemas")
	}
	if !bytes.Contains(a, []byte(`"$schema": "http://json-schema.org/draft-07/schema#"`)) {
		t.Error("no draft-07 $schema")
	}
}
