package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAdminToken(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "token")
	if err := os.WriteFile(file, []byte("  from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, flag, file, env, want, err string
	}{
		{name: "none", want: ""},
		{name: "env", env: "from-env", want: "from-env"},
		{name: "flag wins over env", flag: "from-flag", env: "from-env", want: "from-flag"},
		{name: "file, trimmed, wins over env", file: file, env: "from-env", want: "from-file"},
		{name: "flag and file", flag: "x", file: file, err: "both set"},
		{name: "empty file", file: empty, err: "is empty"},
		{name: "missing file", file: filepath.Join(dir, "nope"), err: "--admin-token-file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(adminTokenEnv, tc.env)
			g := &Globals{AdminToken: tc.flag, AdminTokenFile: tc.file}
			got, err := g.adminToken()
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("adminToken() = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}
