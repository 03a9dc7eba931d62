// Command gendocs writes the files generated from the registered component specs and the
// manifest's own tables: the README of every built-in connector (connectors/NAME/README.md), the
// manifest JSON Schema (manifests/schema.json) and the reference of the Pipeline document
// (manifests/REFERENCE.md). `make docs` runs it from the repository root; a test in this package
// fails when the committed files drift from what it would write.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/sluicehq/sluice/connectors/all"
	"github.com/sluicehq/sluice/manifests"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// SchemaPath is where the schema is written, relative to the repository root.
const SchemaPath = "manifests/schema.json"

// ReferencePath is where the reference of the Pipeline document is written.
const ReferencePath = "manifests/REFERENCE.md"

func main() {
	root := flag.String("root", ".", "repository root")
	flag.Parse()
	files, stale, warnings, err := generate(*root)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gendocs:", err)
		os.Exit(1)
	}
	for _, w := range warnings {
		fmt.Fprintln(os.Stderr, "gendocs: warning:", w)
	}
	for _, rel := range sortedKeys(files) {
		path := filepath.Join(*root, rel)
		old, err := os.ReadFile(path)
		if err == nil && bytes.Equal(old, files[rel]) {
			continue
		}
		if err := os.WriteFile(path, files[rel], 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "gendocs:", err)
			os.Exit(1)
		}
		fmt.Println("wrote", rel)
	}
	for _, rel := range stale {
		if err := os.Remove(filepath.Join(*root, rel)); err != nil {
			fmt.Fprintln(os.Stderr, "gendocs:", err)
			os.Exit(1)
		}
		fmt.Println("removed", rel)
	}
}

// generate returns the generated files (by path relative to root), the generated READMEs that no
// registered component produces any more, and warnings for components without a package folder.
func generate(root string) (files map[string][]byte, stale, warnings []string, err error) {
	files = map[string][]byte{}
	byName := map[string][]connector.Spec{}
	cat := all.Catalog()
	for _, c := range cat.Components() {
		byName[c.Spec.Name] = append(byName[c.Spec.Name], c.Spec)
	}
	for _, name := range sortedKeys(byName) {
		dir := filepath.Join("connectors", name)
		if st, err := os.Stat(filepath.Join(root, dir)); err != nil || !st.IsDir() {
			warnings = append(warnings, fmt.Sprintf("component %q has no folder %s; no README written", name, dir))
			continue
		}
		files[filepath.Join(dir, "README.md")] = []byte(manifests.RenderReadme(byName[name]...))
	}
	schema, err := manifests.JSONSchema(cat)
	if err != nil {
		return nil, nil, nil, err
	}
	files[SchemaPath] = schema
	files[ReferencePath] = []byte(manifests.GeneratedMarker + "\n\n" + manifests.RenderPipelineDocs())

	readmes, err := filepath.Glob(filepath.Join(root, "connectors", "*", "README.md"))
	if err != nil {
		return nil, nil, nil, err
	}
	for _, path := range readmes {
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return nil, nil, nil, err
		}
		if _, ok := files[rel]; ok {
			continue
		}
		data, err := os.ReadFile(path)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, nil, nil, err
		}
		if bytes.HasPrefix(data, []byte(manifests.GeneratedMarker)) {
			stale = append(stale, rel)
		}
	}
	return files, stale, warnings, nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
