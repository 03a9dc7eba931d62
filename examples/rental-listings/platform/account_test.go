package platform

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/examples/rental-listings/truth"
)

// The personal-data search finds the site's values in clear, also inside JSON, and nothing in
// their hashes.
func TestPersonalFindsValuesInClear(t *testing.T) {
	p := newPersonal(truth.Truth{Personal: []string{"Léa Simon", "lea.simon.14@mail.example", "+33 6 00 00 00 14"}})
	for _, s := range []string{
		"lea.simon.14@mail.example", `{"landlord":"Léa Simon"}`, "call +33 6 00 00 00 14", "x@mail.example",
	} {
		if p.find(s) == "" {
			t.Errorf("%q: not found", s)
		}
	}
	for _, s := range []string{"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", "Lea Simon (ref 14)", "Simon"} {
		if m := p.find(s); m != "" {
			t.Errorf("%q: found %q", s, m)
		}
	}
	// Escaped in JSON text, the decoded strings give it away.
	found := false
	for _, s := range jsonStrings([]byte(`{"n":"L\u00e9a Simon"}`)) {
		found = found || p.find(s) != ""
	}
	if !found {
		t.Error(`{"n":"L\u00e9a Simon"}: not found`)
	}
}

// Files at rest: a value in clear is found in any file but the WASM module cache.
func TestCheckFilesAtRest(t *testing.T) {
	dir := t.TempDir()
	for path, content := range map[string]string{
		"data/pipelines/p/source/state.db": "\x00\x01binary lea.simon.14@mail.example\x00",
		"data/wasm-cache/module.bin":       "Léa Simon",
		"sluice.log":                       "all fine",
	} {
		p := filepath.Join(dir, path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r := &Report{Truth: truth.Truth{Personal: []string{"Léa Simon", "lea.simon.14@mail.example", "+33 6 00 00 00 14"}}}
	if err := r.CheckFilesAtRest(dir); err != nil {
		t.Fatal(err)
	}
	if r.FilesChecked != 2 || len(r.Problems) != 1 || !strings.Contains(r.Problems[0], "state.db") {
		t.Fatalf("%d files checked, problems %q", r.FilesChecked, r.Problems)
	}
}
