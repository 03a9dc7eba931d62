package manifests_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/manifests"
)

func TestConfigJSON(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"absent", "", `{}`},
		{"null", "~", `{}`},
		{"number text as written", "a: 1e6\nb: 250.50\nc: 1e+09\nd: -0.0\ne: 12345678901234567890", `{"a":1e6,"b":250.50,"c":1e+09,"d":-0.0,"e":12345678901234567890}`},
		{"no HTML escaping", `s: "<b>&amp;</b>"`, `{"s":"<b>&amp;</b>"}`},
		{"keys in written order", "z: 1\na: 2\nm: 3", `{"z":1,"a":2,"m":3}`},
		{"YAML-only number forms converted", "hex: 0x1F\noct: 0o17\nold_oct: 012\nplus: +12\nunders: 1_000\nhalf: .5\ntrailing: 1.\nbin: 0b101", `{"hex":31,"oct":15,"old_oct":10,"plus":12,"unders":1000,"half":0.5,"trailing":1,"bin":5}`},
		{"typed as YAML types them", "t: True\nf: false\ny: yes\nn: ~\nq: \"12\"\nbig: \"1e400\"\nts: 2001-12-14", `{"t":true,"f":false,"y":"yes","n":null,"q":"12","big":"1e400","ts":"2001-12-14"}`},
		{"nested", "m: {k: [1, {x: \"é\\n\"}]}\nl: []\ne: {}", `{"m":{"k":[1,{"x":"é\n"}]},"l":[],"e":{}}`},
		{"references", "salt: ${env:SALT}\nlit: $${env:SALT}", `{"salt":"pepper","lit":"${env:SALT}"}`},
		{"aliases", "a: &x [1, 2]\nb: *x", `{"a":[1,2],"b":[1,2]}`},
	}
	opts := manifests.LoadOptions{LookupEnv: func(name string) (string, bool) { return "pepper", name == "SALT" }}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, diags := manifests.ConfigJSON([]byte(tc.yaml), "config.yaml", opts)
			if len(diags) > 0 {
				t.Fatal(diags)
			}
			if string(got) != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestConfigJSONRefuses(t *testing.T) {
	tests := []struct{ name, yaml, want string }{
		{"infinity", "max: .inf", `config.yaml:1:6: config.max: .inf is not a finite number`},
		{"nan", "x:\n  y: .nan", `config.yaml:2:6: config.x.y: .nan is not a finite number`},
		{"out of range", "max_price: 1e400", `config.yaml:1:12: config.max_price: 1e400 is out of the range of a double`},
		{"not a mapping", "[1, 2]", `config.yaml:1:1: config: expected a mapping, got a list`},
		{"duplicate key", "a: 1\na: 2", `config.yaml:2:1: duplicate key "a" in config (first at line 1)`},
		{"unset variable", "a: ${env:NOPE}", `config.yaml:1:4: ${env:NOPE}: environment variable NOPE is not set`},
	}
	opts := manifests.LoadOptions{LookupEnv: func(string) (string, bool) { return "", false }}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, diags := manifests.ConfigJSON([]byte(tc.yaml), "config.yaml", opts)
			if len(diags) == 0 {
				t.Fatalf("accepted, gave %s", got)
			}
			if !strings.Contains(diags.Error(), tc.want) {
				t.Errorf("got\n%s\nwant %s", diags, tc.want)
			}
		})
	}
}

// TestTransformConfigJSONMatchesConfigJSON checks that a pipeline's transform gets the bytes
// ConfigJSON gives for the same config text (what `transform test` hands the module).
func TestTransformConfigJSONMatchesConfigJSON(t *testing.T) {
	config := "max_price: 250.50\nlimit: 1e6\nnote: \"<tag> & more\"\nlist: [0x10, .5, yes]\n"
	indented := "        " + strings.ReplaceAll(strings.TrimSuffix(config, "\n"), "\n", "\n        ") + "\n"
	dir := t.TempDir()
	path := filepath.Join(dir, "p.yaml")
	doc := `apiVersion: sluice.dev/v1
kind: Pipeline
metadata: {name: p}
spec:
  source: {type: testsource, config: {path: in.log}}
  transforms:
    - name: v
      wasm: v.wasm
      config:
` + indented + `    - name: none
      wasm: v.wasm
  sinks: [{name: out, type: testdrop}]
`
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	pipelines, diags := manifests.Load([]string{path}, testOptions())
	if len(diags) > 0 {
		t.Fatal(diags)
	}
	want, diags := manifests.ConfigJSON([]byte(config), "config.yaml", testOptions())
	if len(diags) > 0 {
		t.Fatal(diags)
	}
	tr := pipelines[0].Transforms
	if string(tr[0].Config) != string(want) {
		t.Errorf("pipeline config %s, ConfigJSON %s", tr[0].Config, want)
	}
	if string(want) != `{"max_price":250.50,"limit":1e6,"note":"<tag> & more","list":[16,0.5,"yes"]}` {
		t.Errorf("ConfigJSON %s", want)
	}
	if string(tr[1].Config) != "{}" {
		t.Errorf("no config gives %q, want {}", tr[1].Config)
	}
	if p := tr[0].Fields["config.max_price"]; p.Line != 10 || p.Col != 9 {
		t.Errorf("config.max_price at %v, want line 10 col 9", p)
	}
}
