package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		content string
		want    map[string]string
		wantErr bool
	}{
		{name: "pairs and comments", content: "# c\n\nA=1\n B = x=y \n", want: map[string]string{"A": "1", "B": "x=y"}},
		{name: "empty value", content: "A=\n", want: map[string]string{"A": ""}},
		{name: "no equals", content: "A\n", wantErr: true},
		{name: "empty key", content: "=1\n", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "services.env")
			if err := os.WriteFile(p, []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := Parse(p)
			if (err != nil) != tc.wantErr {
				t.Fatalf("Parse error = %v, wantErr %v", err, tc.wantErr)
			}
			if tc.wantErr {
				return
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("Parse = %v, want %v", got, tc.want)
			}
		})
	}
}

// fakeTB captures what Require does to a test.
type fakeTB struct {
	testing.TB
	name            string
	fatal, skip     string
	cleanups        []func()
	failed, skipped bool
}

func (f *fakeTB) Helper()           {}
func (f *fakeTB) Name() string      { return f.name }
func (f *fakeTB) Failed() bool      { return f.failed }
func (f *fakeTB) Skipped() bool     { return f.skipped }
func (f *fakeTB) Cleanup(fn func()) { f.cleanups = append(f.cleanups, fn) }
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.fatal, f.failed = fmt.Sprintf(format, args...), true
}
func (f *fakeTB) Skipf(format string, args ...any) {
	f.skip, f.skipped = fmt.Sprintf(format, args...), true
}

func TestRequire(t *testing.T) {
	tests := []struct {
		name      string
		ci        string
		fileKey   string // written to the env file as fileKey=file-value
		envValue  string // TESTENV_PROBE_KEY in the process environment
		want      string
		wantFatal bool
		wantSkip  bool
		wantLog   string
	}{
		{name: "from file", fileKey: "TESTENV_PROBE_KEY", want: "file-value", wantLog: "pass"},
		{name: "environment wins", fileKey: "TESTENV_PROBE_KEY", envValue: "env-value", want: "env-value", wantLog: "pass"},
		{name: "missing skips locally", fileKey: "OTHER", ci: "", wantSkip: true, wantLog: "missing"},
		{name: "missing fails in CI", fileKey: "OTHER", ci: "true", wantFatal: true, wantLog: "missing"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			envFile := filepath.Join(dir, "services.env")
			if err := os.WriteFile(envFile, []byte(tc.fileKey+"=file-value\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			t.Setenv(EnvFileVar, envFile)
			t.Setenv("CI", tc.ci)
			t.Setenv("TESTENV_PROBE_KEY", tc.envValue)

			f := &fakeTB{name: "TestFake/" + tc.name}
			got := Require(f, "TESTENV_PROBE_KEY")
			for _, fn := range f.cleanups {
				fn()
			}
			if got != tc.want {
				t.Errorf("Require = %q, want %q", got, tc.want)
			}
			if (f.fatal != "") != tc.wantFatal || (f.skip != "") != tc.wantSkip {
				t.Errorf("fatal=%q skip=%q, want fatal %v skip %v", f.fatal, f.skip, tc.wantFatal, tc.wantSkip)
			}
			if msg := f.fatal + f.skip; msg != "" && !strings.Contains(msg, "make services") {
				t.Errorf("message %q does not say to run make services", msg)
			}
			logged, err := os.ReadFile(filepath.Join(dir, LogFileName))
			if err != nil {
				t.Fatalf("usage log: %v", err)
			}
			fields := strings.Split(strings.TrimSpace(string(logged)), "\t")
			if len(fields) != 5 || fields[1] != "TESTENV_PROBE_KEY" || fields[3] != f.name || fields[4] != tc.wantLog {
				t.Errorf("usage log line = %q, want key TESTENV_PROBE_KEY, test %s, outcome %s", logged, f.name, tc.wantLog)
			}
		})
	}
}

func TestEnvFileWalksUpToModuleRoot(t *testing.T) {
	t.Setenv(EnvFileVar, "")
	got, err := EnvFile()
	if err != nil {
		t.Fatal(err)
	}
	// This package lives two levels below the module root.
	wd, _ := os.Getwd()
	want := filepath.Join(filepath.Dir(filepath.Dir(wd)), "build", "services.env")
	if got != want {
		t.Fatalf("EnvFile = %q, want %q", got, want)
	}
}
