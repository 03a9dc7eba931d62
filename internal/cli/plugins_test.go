package cli

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// pluginsDir holds the example csv plugin and a script that is not a plugin, both pinned by
// a .sha256 file, and an unpinned script that would create the file marker if it ran. It
// returns the directory, the plugin's sha256 and the marker's path.
func pluginsDir(t *testing.T) (dir, sum, marker string) {
	t.Helper()
	dir = t.TempDir()
	build := exec.Command("go", "build", "-mod=mod", "-o", filepath.Join(dir, "sluice-plugin-csv"), ".")
	build.Dir = filepath.Join("..", "..", "examples", "plugin-csv")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		t.Fatalf("build example plugin: %v", err)
	}
	marker = filepath.Join(t.TempDir(), "started")
	write := func(name, content string, mode os.FileMode) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
	write("not-a-plugin", "#!/bin/sh\necho hello\n", 0o755)
	write("unpinned", "#!/bin/sh\ntouch '"+marker+"'\n", 0o755)
	for _, name := range []string{"sluice-plugin-csv", "not-a-plugin"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		s := fmt.Sprintf("%x", sha256.Sum256(b))
		if name == "sluice-plugin-csv" {
			sum = s
		}
		write(name+".sha256", s+"  "+name+"\n", 0o644)
	}
	return dir, sum, marker
}

func started(marker string) bool {
	_, err := os.Stat(marker)
	return err == nil
}

func runPluginsCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := NewRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetArgs(append([]string{"--log-level", "error"}, args...))
	err := root.Execute()
	return out.String(), err
}

func TestPluginsCommands(t *testing.T) {
	dir, _, marker := pluginsDir(t)
	tests := []struct {
		name    string
		args    []string
		wantErr bool
		want    []string
	}{
		{"list", []string{"plugins", "list"}, true,
			[]string{"sluice-plugin-csv", "0.1.0", "source plugin:csv, sink plugin:csv", "BROKEN", "not-a-plugin", "not a Sluice connector plugin",
				"UNVERIFIED unpinned", "sha256sum unpinned > unpinned.sha256", "--allow-unpinned-plugins"}},
		{"inspect connector", []string{"plugins", "inspect", "plugin:csv"}, false,
			[]string{"version:  0.1.0", "protocol: 1", "source plugin:csv", "sink plugin:csv", "key_column", "columns", "sha256", "env"}},
		{"inspect binary", []string{"plugins", "inspect", "sluice-plugin-csv"}, false, []string{"binary:   sluice-plugin-csv"}},
		{"inspect unknown", []string{"plugins", "inspect", "plugin:nope"}, true, nil},
		{"inspect broken", []string{"plugins", "inspect", "not-a-plugin"}, true, nil},
		{"inspect unverified", []string{"plugins", "inspect", "unpinned"}, true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := runPluginsCLI(t, append([]string{"--plugins-dir", dir}, tt.args...)...)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v; output:\n%s", err, tt.wantErr, out)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
	t.Run("list json", func(t *testing.T) {
		out, _ := runPluginsCLI(t, "--plugins-dir", dir, "plugins", "list", "--json")
		var got []struct {
			Binary     string `json:"binary"`
			Protocol   int    `json:"protocol"`
			Error      string `json:"error"`
			Unverified bool   `json:"unverified"`
			Connectors []struct{ Name string }
		}
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, out)
		}
		if len(got) != 3 || got[0].Binary != "sluice-plugin-csv" || got[0].Protocol != 1 || len(got[0].Connectors) != 2 || got[1].Error == "" || !got[2].Unverified {
			t.Fatalf("unexpected: %+v", got)
		}
	})
	if started(marker) {
		t.Fatal("an unpinned binary was run")
	}
	t.Run("allow unpinned", func(t *testing.T) {
		out, err := runPluginsCLI(t, "--plugins-dir", dir, "--allow-unpinned-plugins", "plugins", "list")
		if err == nil || strings.Contains(out, "UNVERIFIED") || !started(marker) {
			t.Fatalf("err %v, started %v; want the script run and listed as broken:\n%s", err, started(marker), out)
		}
	})
	t.Run("no dir", func(t *testing.T) {
		if _, err := runPluginsCLI(t, "plugins", "list"); err == nil || !strings.Contains(err.Error(), "--plugins-dir") {
			t.Fatalf("err = %v, want a hint at --plugins-dir", err)
		}
	})
}

// A manifest pin lets its binary run without a .sha256 file beside it; without the pin, the
// binary is not run and its connectors are unknown.
func TestPluginPinsInManifests(t *testing.T) {
	dir, sum, marker := pluginsDir(t)
	if err := os.Remove(filepath.Join(dir, "sluice-plugin-csv.sha256")); err != nil {
		t.Fatal(err)
	}
	if out, err := runCLI(t, "--plugins-dir", dir, "validate", csvManifest(t, sum, "")); err != nil {
		t.Fatalf("validate with the pin: %v\n%s", err, out)
	}
	out, err := runCLI(t, "--plugins-dir", dir, "validate", csvManifest(t, "", ""))
	if exitCode(err) != 1 || !strings.Contains(out, `unknown type "plugin:csv"`) {
		t.Fatalf("validate without a pin: %v; want plugin:csv unknown:\n%s", err, out)
	}
	if started(marker) {
		t.Fatal("an unpinned binary was run")
	}
}

// A pin in a manifest of a directory counts whatever the case of its .yaml extension, as loading
// the directory reads that manifest.
func TestPluginPinInManifestDirectory(t *testing.T) {
	dir, sum, _ := pluginsDir(t)
	if err := os.Remove(filepath.Join(dir, "sluice-plugin-csv.sha256")); err != nil {
		t.Fatal(err)
	}
	mdir := filepath.Dir(csvManifest(t, sum, ""))
	if err := os.Rename(filepath.Join(mdir, "pipeline.yaml"), filepath.Join(mdir, "pipeline.YAML")); err != nil {
		t.Fatal(err)
	}
	if out, err := runCLI(t, "--plugins-dir", dir, "validate", mdir); err != nil {
		t.Fatalf("validate the directory with the pin: %v\n%s", err, out)
	}
}

// csvManifest writes a pipeline from the csv plugin to a drop sink: pin is the source's
// config.sha256 (line 9), "" for none; sinkConfig is the sink's config, "" for none.
func csvManifest(t *testing.T, pin, sinkConfig string) string {
	t.Helper()
	var pinLine, sinkLine string
	if pin != "" {
		pinLine = "\n      sha256: " + pin
	}
	if sinkConfig != "" {
		sinkLine = "\n      config: " + sinkConfig
	}
	return writeManifest(t, `apiVersion: sluice.dev/v1
kind: Pipeline
metadata: {name: pins}
spec:
  source:
    type: plugin:csv
    config:
      path: in.csv`+pinLine+`
  sinks:
    - name: out
      type: drop`+sinkLine+"\n")
}

// A wrong pin is reported together with the manifest's other problems, not only once they are
// fixed.
func TestWrongPinReportedWithOtherProblems(t *testing.T) {
	dir, _, _ := pluginsDir(t)
	manifest := csvManifest(t, strings.Repeat("ab", 32), "{no_such_key: 1}")
	out, err := runCLI(t, "--plugins-dir", dir, "validate", manifest)
	if exitCode(err) != 1 || !strings.Contains(out, "pipeline.yaml:9:") || !strings.Contains(out, "config.sha256") ||
		!strings.Contains(out, "no_such_key") || !strings.Contains(err.Error(), "2 problems found") {
		t.Fatalf("validate: %v; want the wrong pin (line 9) and the unknown key, 2 problems:\n%s", err, out)
	}
}

// Every unpinned binary gets its "not pinned" warning, not only the first.
func TestEveryUnpinnedBinaryWarned(t *testing.T) {
	dir, _, _ := pluginsDir(t)
	if err := os.WriteFile(filepath.Join(dir, "unpinned2"), []byte("#!/bin/sh\necho hi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	stderr, err := runCLIStderr(t, "--plugins-dir", dir, "validate", writeManifest(t, goodManifest))
	if err != nil {
		t.Fatalf("validate: %v\n%s", err, stderr)
	}
	for _, name := range []string{"binary=unpinned ", "binary=unpinned2 "} {
		if !strings.Contains(stderr, "not pinned") || !strings.Contains(stderr, name) {
			t.Errorf("no warning for %s:\n%s", name, stderr)
		}
	}
}

// inspect of an unpinned plugin says it is not pinned and how to pin it, whether it is named as a
// binary, as plugin:BINARY, or by a connector name nothing pinned provides.
func TestInspectUnpinned(t *testing.T) {
	dir, _, _ := pluginsDir(t)
	for _, name := range []string{"unpinned", "plugin:unpinned", "evil"} {
		_, err := runPluginsCLI(t, "--plugins-dir", dir, "plugins", "inspect", name)
		if err == nil || !strings.Contains(err.Error(), "nothing pins") || !strings.Contains(err.Error(), "sha256sum unpinned > unpinned.sha256") {
			t.Errorf("inspect %s: %v; want that unpinned is not pinned and how to pin it", name, err)
		}
	}
}

// A manifest pin written as ${env:NAME} or ${file:PATH} pins the binary during discovery too.
func TestPluginPinReferences(t *testing.T) {
	dir, sum, _ := pluginsDir(t)
	if err := os.Remove(filepath.Join(dir, "sluice-plugin-csv.sha256")); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SLUICE_TEST_CSV_PIN", sum)
	for _, ref := range []string{"${env:SLUICE_TEST_CSV_PIN}", "${file:csv.sha256}"} {
		manifest := csvManifest(t, "\""+ref+"\"", "")
		if err := os.WriteFile(filepath.Join(filepath.Dir(manifest), "csv.sha256"), []byte(sum+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := runCLI(t, "--plugins-dir", dir, "validate", manifest); err != nil {
			t.Errorf("validate with the pin %s: %v\n%s", ref, err, out)
		}
	}
}
