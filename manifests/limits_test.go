package manifests_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/manifests"
)

// TestLargeDocuments checks the node budget's message: a huge document without aliases is told to
// split, not to "use fewer aliases"; an alias bomb is told about aliases.
func TestLargeDocuments(t *testing.T) {
	head := "apiVersion: sluice.dev/v1\nkind: Pipeline\nmetadata: {name: big}\nspec:\n  source: {type: testsource, config: {path: in.log}}\n  sinks: [{name: out, type: testdrop}]\n"
	var big strings.Builder
	big.WriteString(head + "  transforms:\n    - name: t\n      wasm: t.wasm\n      config:\n        values:\n")
	for big.Len() < 10<<20 {
		fmt.Fprintf(&big, "          - %d\n", big.Len())
	}
	bomb := head + "  transforms:\n    - name: t\n      wasm: t.wasm\n      config:\n" +
		"        a: &a [x, x, x, x, x, x, x, x, x, x]\n" +
		"        b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n" +
		"        c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n" +
		"        d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n" +
		"        e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n" +
		"        f: [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
	tests := []struct {
		name, doc, want, hint, never string
	}{
		{"no aliases", big.String(), "document too large: more than 200000 values", "give each pipeline its own document", "alias"},
		{"alias bomb", bomb, "document too large: more than 200000 values after expanding aliases", "use fewer aliases", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "p.yaml")
			if err := os.WriteFile(path, []byte(tc.doc), 0o644); err != nil {
				t.Fatal(err)
			}
			_, diags := manifests.Load([]string{path}, testOptions())
			var found *manifests.Diagnostic
			for i, d := range diags {
				if strings.Contains(d.Message, "document too large") {
					found = &diags[i]
				}
			}
			if found == nil {
				t.Fatalf("no size diagnostic in:\n%v", diags)
			}
			if found.Message != tc.want || !strings.Contains(found.Hint, tc.hint) || tc.never != "" && strings.Contains(found.Message+found.Hint, tc.never) {
				t.Errorf("got %s\nwant message %q with a hint containing %q", found, tc.want, tc.hint)
			}
		})
	}
}
