package manifests

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/connectors/all"
)

// FuzzLoad feeds arbitrary bytes to the loader: it must never panic or hang, and every diagnostic
// it returns must name the file. Seeds are the test manifests.
func FuzzLoad(f *testing.F) {
	for _, pattern := range []string{"testdata/bad/*.yaml", "testdata/good/*.yaml", "testdata/bad/*/*.y*ml"} {
		files, _ := filepath.Glob(pattern)
		for _, p := range files {
			if data, err := os.ReadFile(p); err == nil {
				f.Add(data)
			}
		}
	}
	f.Add([]byte("a: &a [*a, *a]\nb: *a\n"))
	f.Add([]byte("spec:\n  source: &s {type: x, config: {a: *s}}\n"))
	f.Add([]byte("x: ${env:\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		l := &loader{
			opts:  LoadOptions{Catalog: all.Catalog(), LookupEnv: func(name string) (string, bool) { return "v-" + name, !strings.HasPrefix(name, "MISSING") }},
			names: map[string]Pos{},
		}
		l.loadBytes("testdata/fuzz.yaml", data)
		for _, d := range l.diags {
			if d.Pos.File != "testdata/fuzz.yaml" {
				t.Fatalf("diagnostic without its file: %s", d)
			}
			if d.Message == "" {
				t.Fatalf("empty diagnostic at %s", d.Pos)
			}
		}
	})
}
