package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// pluginsDir holds the example csv plugin and a script that is not a plugin.
func pluginsDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	build := exec.Command("go", "build", "-mod=mod", "-o", filepath.Join(dir, "sluice-plugin-csv"), ".")
	build.Dir = filepath.Join("..", "..", "examples", "plugin-csv")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		t.Fatalf("build example plugin: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "not-a-plugin"), []byte("#!/bin/sh\necho hello\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
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
	dir := pluginsDir(t)
	tests := []struct {
		name    string
		args    []string
		wantErr bool
		want    []string
	}{
		{"list", []string{"plugins", "list"}, true,
			[]string{"sluice-plugin-csv", "0.1.0", "source plugin:csv, sink plugin:csv", "BROKEN", "not-a-plugin", "not a Sluice connector plugin"}},
		{"inspect connector", []string{"plugins", "inspect", "plugin:csv"}, false,
			[]string{"version:  0.1.0", "protocol: 1", "source plugin:csv", "sink plugin:csv", "key_column", "columns", "sha256", "env"}},
		{"inspect binary", []string{"plugins", "inspect", "sluice-plugin-csv"}, false, []string{"binary:   sluice-plugin-csv"}},
		{"inspect unknown", []string{"plugins", "inspect", "plugin:nope"}, true, nil},
		{"inspect broken", []string{"plugins", "inspect", "not-a-plugin"}, true, nil},
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
			Connectors []struct{ Name string }
		}
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, out)
		}
		if len(got) != 2 || got[0].Binary != "sluice-plugin-csv" || got[0].Protocol != 1 || len(got[0].Connectors) != 2 || got[1].Error == "" {
			t.Fatalf("unexpected: %+v", got)
		}
	})
	t.Run("no dir", func(t *testing.T) {
		if _, err := runPluginsCLI(t, "plugins", "list"); err == nil || !strings.Contains(err.Error(), "--plugins-dir") {
			t.Fatalf("err = %v, want a hint at --plugins-dir", err)
		}
	})
}
