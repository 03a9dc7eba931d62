package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/sluicehq/sluice/connectors/all"
	"github.com/sluicehq/sluice/manifests"
)

const root = "../../.."

// TestGeneratedFilesUpToDate fails when a connector README or manifests/schema.json differs from
// what the registered specs generate.
func TestGeneratedFilesUpToDate(t *testing.T) {
	files, stale, warnings, err := generate(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range warnings {
		t.Log(w)
	}
	if _, ok := files[SchemaPath]; !ok {
		t.Fatal("the schema is not generated")
	}
	for _, rel := range sortedKeys(files) {
		got, err := os.ReadFile(filepath.Join(root, rel))
		if err != nil {
			t.Errorf("%s is missing: run `make docs` and commit the result", rel)
			continue
		}
		if !bytes.Equal(got, files[rel]) {
			t.Errorf("%s is out of date with the component specs: run `make docs` and commit the result", rel)
		}
	}
	for _, rel := range stale {
		t.Errorf("%s was generated for a component that is no longer registered: run `make docs` to remove it", rel)
	}
}

// TestBuiltinExamplesLoad checks that the example in every built-in component's reference is a
// valid configuration.
func TestBuiltinExamplesLoad(t *testing.T) {
	files, _, _, err := generate(root)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rel, data := range files {
		if filepath.Base(rel) != "README.md" {
			continue
		}
		for _, snippet := range yamlBlocks(data) {
			n++
			body := bytes.TrimPrefix(snippet, []byte("spec:\n"))
			m := []byte("apiVersion: sluice.dev/v1\nkind: Pipeline\nmetadata: {name: example}\nspec:\n")
			m = append(m, body...)
			if !bytes.Contains(body, []byte("\n  source:")) && !bytes.HasPrefix(body, []byte("  source:")) {
				m = append(m, []byte("  source: {type: generate}\n")...)
			}
			if !bytes.Contains(body, []byte("  sinks:")) {
				m = append(m, []byte("  sinks: [{name: out, type: drop}]\n")...)
			}
			path := filepath.Join(t.TempDir(), "example.yaml")
			if err := os.WriteFile(path, m, 0o644); err != nil {
				t.Fatal(err)
			}
			env := func(string) (string, bool) { return "placeholder", true }
			if _, diags := manifests.Load([]string{path}, manifests.LoadOptions{Catalog: all.Catalog(), LookupEnv: env}); len(diags) > 0 {
				t.Errorf("%s: the example does not load:\n%s\n%v", rel, m, diags)
			}
		}
	}
	if n == 0 {
		t.Log("no built-in components with examples are registered")
	}
}

func yamlBlocks(md []byte) [][]byte {
	var out [][]byte
	for {
		i := bytes.Index(md, []byte("```yaml\n"))
		if i < 0 {
			return out
		}
		md = md[i+len("```yaml\n"):]
		j := bytes.Index(md, []byte("```\n"))
		if j < 0 {
			return out
		}
		out = append(out, md[:j])
		md = md[j:]
	}
}
