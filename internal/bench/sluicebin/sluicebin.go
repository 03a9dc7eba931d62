// Package sluicebin prepares what the benchmarks that run a real `sluice` process share: the
// repository's root, a WASM module under it, and the binary built into a temporary directory.
package sluicebin

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Setup is a built sluice binary in a temporary directory, beside the benchmark's own files.
type Setup struct {
	Root   string // the repository's root
	Module string // the WASM module, as an absolute path
	Dir    string // the temporary directory; Close removes it
	Bin    string // the sluice binary in Dir
}

// Build finds the repository from the working directory, checks that module (a path relative to
// the root) exists and builds ./cmd/sluice into a new temporary directory named after prefix.
func Build(prefix, module string) (*Setup, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return nil, fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return nil, fmt.Errorf("run it inside the sluice module")
	}
	s := &Setup{Root: filepath.Dir(gomod)}
	s.Module = filepath.Join(s.Root, module)
	if _, err := os.Stat(s.Module); err != nil {
		return nil, fmt.Errorf("module: %w", err)
	}
	if s.Dir, err = os.MkdirTemp("", prefix); err != nil {
		return nil, err
	}
	s.Bin = filepath.Join(s.Dir, "sluice")
	build := exec.Command("go", "build", "-o", s.Bin, "./cmd/sluice")
	build.Dir, build.Stdout, build.Stderr = s.Root, os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		s.Close()
		return nil, fmt.Errorf("go build: %w", err)
	}
	return s, nil
}

// Close removes the temporary directory.
func (s *Setup) Close() { os.RemoveAll(s.Dir) }
