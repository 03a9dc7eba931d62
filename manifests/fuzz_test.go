package manifests

import (
	"encoding/json"
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

// FuzzConfigJSON checks that whatever YAML a transform config holds, ConfigJSON either reports a
// problem or returns one valid JSON object, and that its values are those YAML gives the text
// (numbers compared as numbers, so 0x1F and 31 agree).
func FuzzConfigJSON(f *testing.F) {
	for _, s := range []string{"a: 1e6\nb: 250.50", "x: 0x1F\ny: .5\nz: +12", `s: "<b>&"`, "l: [1, {a: ~}]", "m: &m {k: v}\nn: *m",
		"t: True\nu: yes", "f: .inf", "big: 99999999999999999999999", "ts: 2001-12-14", "\"\\u00e9\": x", "a: !!binary aGk="} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		js, diags := ConfigJSON(data, "config.yaml", LoadOptions{LookupEnv: func(string) (string, bool) { return "v", true }})
		if len(diags) > 0 {
			return
		}
		var obj map[string]any
		if err := json.Unmarshal(js, &obj); err != nil || obj == nil {
			t.Fatalf("ConfigJSON(%q) = %s: not a JSON object: %v", data, js, err)
		}
	})
}
