package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestValidateAndRunCheckModuleSettings checks that validate and run refuse, at the setting's
// line and before running anything, what building the stage would refuse: a config that breaks
// the module's config_schema, a memory limit beyond wasm32, too many instances, a wrong sha256.
// Before, validate passed them and run failed later with `transform "v": transform "v": ...`.
func TestValidateAndRunCheckModuleSettings(t *testing.T) {
	wasm, err := filepath.Abs("../../transforms/validate_price/go/validate_price.wasm")
	if err != nil {
		t.Fatal(err)
	}
	head := `apiVersion: sluice.dev/v1
kind: Pipeline
metadata: {name: checks}
spec:
  source: {type: generate, config: {count: 1}}
  sinks: [{name: out, type: drop}]
  transforms:
    - name: validate
      wasm: ` + wasm + "\n"
	tests := []struct {
		name, body string
		want       []string
	}{
		{"config schema", "      config:\n        max_price: -3\n",
			[]string{`pipeline.yaml:11:9: transform "validate": config.max_price: must be > 0`, "hint: the module's config_schema says what it accepts"}},
		{"config unknown key", "      config: {colour: red}\n",
			[]string{`pipeline.yaml:10:16: transform "validate": config.colour: not allowed`}},
		{"memory", "      limits: {memory: 1TiB}\n",
			[]string{`pipeline.yaml:10:24: transform "validate": limits.memory: must be at least 64KiB and at most 4GiB, got 1TiB`, "hint: a WASM page is 64KiB"}},
		{"memory below the module's", "      limits: {memory: 2MiB}\n",
			[]string{`pipeline.yaml:10:16: transform "validate": limits.memory: 2097152 bytes is less than the `, "hint: give at least "}},
		{"instances", "      limits:\n        instances: 65\n",
			[]string{`pipeline.yaml:11:20: transform "validate": limits.instances: must be at least 1 and at most 64, got 65`}},
		{"module pin", `      sha256: "` + strings.Repeat("ab", 32) + `"` + "\n",
			[]string{`pipeline.yaml:10:7: transform "validate": sha256: the module `, "not the pinned " + strings.Repeat("ab", 32)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			manifest := writeManifest(t, head+tc.body)
			for _, cmd := range []string{"validate", "run"} {
				out, err := runCLIStderr(t, cmd, "--admin-addr", "", manifest)
				if exitCode(err) != 1 {
					t.Fatalf("%s: exit code %d (err %v), want 1\n%s", cmd, exitCode(err), err, out)
				}
				if cmd == "run" {
					out += err.Error()
				}
				for _, w := range tc.want {
					if !strings.Contains(out, w) {
						t.Errorf("%s: output lacks %q:\n%s", cmd, w, out)
					}
				}
				if strings.Count(out, `transform "validate"`) != 1 {
					t.Errorf("%s: want the stage named once:\n%s", cmd, out)
				}
			}
		})
	}
}

// runCLIStderr is runCLI with what the command writes to os.Stderr (run prints its diagnostics
// there) appended to the output.
func runCLIStderr(t *testing.T, args ...string) (string, error) {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "stderr")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	saved := os.Stderr
	os.Stderr = f
	out, err := runCLI(t, args...)
	os.Stderr = saved
	b, rerr := os.ReadFile(f.Name())
	if rerr != nil {
		t.Fatal(rerr)
	}
	return out + string(b), err
}

// TestValidateChecksPluginPin checks that validate refuses a plugin connector whose manifest pin
// (config.sha256) differs from the binary, at the pin's line; before, only run refused it, when
// the process failed to start.
func TestValidateChecksPluginPin(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the example plugin")
	}
	dir, _, _ := pluginsDir(t)
	in := filepath.Join(t.TempDir(), "in.csv")
	if err := os.WriteFile(in, []byte("sku,price\na,1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	manifest := writeManifest(t, `apiVersion: sluice.dev/v1
kind: Pipeline
metadata: {name: pinned}
spec:
  source:
    type: plugin:csv
    config:
      path: `+in+`
      sha256: "`+strings.Repeat("0", 64)+`"
  sinks: [{name: out, type: drop}]
`)
	for _, cmd := range []string{"validate", "run"} {
		out, err := runCLIStderr(t, "--plugins-dir", dir, cmd, "--admin-addr", "", manifest)
		if cmd == "run" && err != nil {
			out += err.Error()
		}
		want := `pipeline.yaml:9:7: source: config.sha256: the plugin binary ` + filepath.Join(dir, "sluice-plugin-csv") + ` has sha256 `
		if exitCode(err) != 1 || !strings.Contains(out, want) || !strings.Contains(out, "not the pinned "+strings.Repeat("0", 64)+"\n    hint: pin the binary you mean to run") {
			t.Errorf("%s: exit code %d, output:\n%s\nwant a line starting %q", cmd, exitCode(err), out, want)
		}
	}
}

// TestEmptyManifest checks that validate and run say an empty file holds no Pipeline documents,
// naming the file once as a path (it used to be "no pipelines found in [x.yaml]").
func TestEmptyManifest(t *testing.T) {
	path := writeManifest(t, "# nothing yet\n")
	for _, cmd := range []string{"validate", "run"} {
		out, err := runCLIStderr(t, cmd, "--admin-addr", "", path)
		want := path + ": no Pipeline documents: the file holds only comments or empty documents\n    hint: a manifest is one or more YAML documents with apiVersion: sluice.dev/v1"
		if exitCode(err) != 1 || !strings.Contains(out, want) || strings.Contains(out+err.Error(), "["+path+"]") {
			t.Errorf("%s: exit %d, err %v, output:\n%s\nwant %q", cmd, exitCode(err), err, out, want)
		}
	}
}
