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
			if len(diags) != 1 {
				t.Errorf("follow-on diagnostics after the size one (the decoder no longer sees the values):\n%v", diags)
			}
			if found.Message != tc.want || !strings.Contains(found.Hint, tc.hint) || tc.never != "" && strings.Contains(found.Message+found.Hint, tc.never) {
				t.Errorf("got %s\nwant message %q with a hint containing %q", found, tc.want, tc.hint)
			}
		})
	}
}

// TestReferencesExpandWithinBounds checks that a value cannot grow past 16MiB through references
// (17 uses of a 1MiB file), and that the same file used many times under that bound loads.
func TestReferencesExpandWithinBounds(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "mib.txt"), []byte(strings.Repeat("x", 1<<20)), 0o644); err != nil {
		t.Fatal(err)
	}
	doc := func(n int) string {
		return "apiVersion: sluice.dev/v1\nkind: Pipeline\nmetadata: {name: p}\nspec:\n  source: {type: testsource, config: {path: in.log}}\n  sinks: [{name: out, type: testdrop}]\n" +
			"  transforms:\n    - name: t\n      wasm: t.wasm\n      config:\n        big: " + strings.Repeat("${file:mib.txt}", n) + "\n"
	}
	for _, tc := range []struct {
		n    int
		want string
	}{{15, ""}, {17, "value larger than 16MiB after resolving references"}} {
		path := filepath.Join(dir, fmt.Sprintf("p%d.yaml", tc.n))
		if err := os.WriteFile(path, []byte(doc(tc.n)), 0o644); err != nil {
			t.Fatal(err)
		}
		_, diags := manifests.Load([]string{path}, testOptions())
		switch {
		case tc.want == "" && len(diags) > 0:
			t.Errorf("%d references: %v", tc.n, diags)
		case tc.want != "" && !strings.Contains(diags.Error(), tc.want):
			t.Errorf("%d references: got %v, want %q", tc.n, diags, tc.want)
		}
	}
}
