// Package testenv gives integration tests the addresses of the real services that `make services`
// starts (see scripts/services), read from the KEY=VALUE file build/services.env.
//
// A test asks for what it needs with Require; when the service is missing the test fails if the
// environment variable CI is "true" and is skipped with a hint otherwise. Every Require also appends a
// line to build/test-services.log (key, package, test, outcome), which `make services-summary`
// turns into a summary of what ran against which service.
package testenv

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// EnvFileVar names the environment variable that, when set, gives the path of the services env
// file instead of <module root>/build/services.env.
const EnvFileVar = "SLUICE_SERVICES_ENV"

// LogFileName is the name of the usage log written next to the env file.
const LogFileName = "test-services.log"

// EnvFile returns the path of the services env file: $SLUICE_SERVICES_ENV when set, else
// build/services.env under the nearest directory at or above the working directory that holds a
// go.mod. It fails when neither is found; the file itself need not exist.
func EnvFile() (string, error) {
	if p := os.Getenv(EnvFileVar); p != "" {
		return p, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("testenv: working dir: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "build", "services.env"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("testenv: no go.mod at or above the working directory")
		}
		dir = parent
	}
}

// Parse reads KEY=VALUE lines; blank lines and lines starting with # are ignored, surrounding
// spaces are trimmed and the value is everything after the first '='. A malformed line is an error.
func Parse(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("testenv: open env file: %w", err)
	}
	defer f.Close()
	vals := make(map[string]string)
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("testenv: %s:%d: want KEY=VALUE, got %q", path, n, line)
		}
		vals[k] = strings.TrimSpace(v)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("testenv: read env file: %w", err)
	}
	return vals, nil
}

// Lookup returns the value of key: the process environment wins (so a test run can be pointed at
// other servers), then the env file. It returns "" and an explanation when the key is unset.
// It reads the file on every call and is safe for concurrent use.
func Lookup(key string) (value, why string) {
	if v := os.Getenv(key); v != "" {
		return v, ""
	}
	path, err := EnvFile()
	if err != nil {
		return "", err.Error()
	}
	vals, err := Parse(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Sprintf("%s does not exist", path)
	}
	if err != nil {
		return "", err.Error()
	}
	if v := vals[key]; v != "" {
		return v, ""
	}
	return "", fmt.Sprintf("%s has no %s (that service did not come up)", path, key)
}

// Require returns the address (or path) registered under key, such as "KAFKA_BOOTSTRAP". When it is
// missing the test fails with t.Fatalf if CI=true and is skipped with t.Skipf otherwise, both with a
// message that says to run `make services`. It records the test's use of the service and, at the
// end of the test, its outcome in the usage log; logging problems are ignored.
func Require(t testing.TB, key string) string {
	t.Helper()
	v, why := Lookup(key)
	if v == "" {
		record(t, key, "missing")
		Missing(t, fmt.Sprintf("service %s is not available: %s; run `make services` (scripts/services/README.md)", key, why))
		return ""
	}
	t.Cleanup(func() {
		outcome := "pass"
		switch {
		case t.Skipped():
			outcome = "skip"
		case t.Failed():
			outcome = "fail"
		}
		record(t, key, outcome)
	})
	return v
}

// record appends one tab-separated line to the usage log next to the env file (build/ is created
// when missing; beside an explicit $SLUICE_SERVICES_ENV only when that file exists).
func record(t testing.TB, key, outcome string) {
	path, err := EnvFile()
	if err != nil {
		return
	}
	pkg := "."
	if wd, err := os.Getwd(); err == nil {
		root := filepath.Dir(filepath.Dir(path))
		if rel, err := filepath.Rel(root, wd); err == nil && !strings.HasPrefix(rel, "..") {
			pkg = "./" + filepath.ToSlash(rel)
		}
	}
	logPath := filepath.Join(filepath.Dir(path), LogFileName)
	if os.Getenv(EnvFileVar) != "" {
		// An explicit env file: log beside it only when it exists, never into an arbitrary dir.
		if _, err := os.Stat(path); err != nil {
			return
		}
	} else if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return
	}
	f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	line := fmt.Sprintf("%s\t%s\t%s\t%s\t%s\n", time.Now().UTC().Format(time.RFC3339), key, pkg, t.Name(), outcome)
	_, _ = f.WriteString(line) // one write: O_APPEND keeps lines from parallel test binaries whole
}
