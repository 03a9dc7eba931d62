package manifests

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

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
	// CheckComponent, when set, is called once for each source, sink and dead-letter sink whose
	// type and config decoded without problems. The error it returns becomes a diagnostic as
	// Component.ErrorDiagnostic places it (a *connector.ConfigError at its config key). The plugin
	// host plugs its checks in here (the manifest's sha256 pin matches the binary), so that they
	// are reported together with the manifest's other problems.
	CheckComponent func(kind connector.Kind, c *Component) error
}

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

// LoadBytes is Load for one manifest held in memory, data, as if read from file: file names it
// in the diagnostics, and relative paths in it (wasm:, ${file:PATH}) are resolved against the
// directory of file.
func LoadBytes(file string, data []byte, opts LoadOptions) ([]*Pipeline, Diagnostics) {
	if opts.LookupEnv == nil {
		opts.LookupEnv = os.LookupEnv
	}
	if opts.Catalog == nil {
		opts.Catalog = emptyCatalog{}
	}
	l := &loader{opts: opts, names: map[string]Pos{}}
	l.loadBytes(file, data)
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
	out, err := DirFiles(p)
	if err != nil {
		l.diags = append(l.diags, Diagnostic{Pos: Pos{File: p}, Message: fmt.Sprintf("cannot read directory: %v", unwrapPathError(err))})
		return nil
	}
	if len(out) == 0 {
		l.diags = append(l.diags, Diagnostic{Pos: Pos{File: p}, Message: "no manifests in directory", Hint: "manifests end in .yaml or .yml"})
	}
	return out
}

// DirFiles lists the manifests of directory dir, as Load reads them: its *.yaml and *.yml files
// (the extension in any case), sorted, not recursive.
func DirFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		ext := strings.ToLower(filepath.Ext(e.Name()))
		if !e.IsDir() && (ext == ".yaml" || ext == ".yml") {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	sort.Strings(out)
	return out, nil
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

// emptyCatalog knows no component.
type emptyCatalog struct{}

func (emptyCatalog) Lookup(connector.Kind, string) (connector.Component, bool) {
	return connector.Component{}, false
}

func (emptyCatalog) Names(connector.Kind) []string { return nil }
