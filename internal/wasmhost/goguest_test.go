package wasmhost_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/testenv"
	"github.com/sluicehq/sluice/internal/wasmhost"
	"github.com/sluicehq/sluice/runtime/transform"
)

var (
	goGuestOnce sync.Once
	goGuestPath string
	goGuestErr  error
)

// buildGoGuest compiles testdata/goguest with the Go toolchain running the tests (GOOS=wasip1,
// c-shared), once per test binary.
func buildGoGuest(t testing.TB) string {
	t.Helper()
	goGuestOnce.Do(func() {
		dir, err := filepath.Abs("testdata/goguest")
		if err != nil {
			goGuestErr = err
			return
		}
		out := filepath.Join(goGuestTmp, "goguest.wasm")
		cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", out, ".")
		cmd.Dir = dir
		cmd.Env = append(cmd.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			goGuestErr = fmt.Errorf("build go guest: %v\n%s", err, b)
			return
		}
		goGuestPath = out
	})
	if goGuestErr != nil {
		t.Fatal(goGuestErr)
	}
	return goGuestPath
}

// newCachedHost is newHost with a compilation cache shared by the tests of this run, so the Go
// guest (about a second to compile, much more under the race detector) is compiled once.
func newCachedHost(t testing.TB) (*wasmhost.Host, *testenv.Buffer) {
	t.Helper()
	logs := &testenv.Buffer{}
	h, err := wasmhost.New(context.Background(), wasmhost.Options{CacheDir: filepath.Join(goGuestTmp, "cache"),
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close(context.Background()) })
	return h, logs
}

func TestGoGuest(t *testing.T) {
	path := buildGoGuest(t)
	h, logs := newCachedHost(t)
	s := newStage(t, h, path, wasmhost.StageConfig{Name: "go", Instances: 1, MemoryBytes: 32 << 20})
	res, err := s.Process(context.Background(), records("a", "upper", "print"))
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(res.Actions) != fmt.Sprint([]transform.Action{transform.Pass, transform.Emit, transform.Pass}) ||
		len(res.Emitted) != 1 || string(res.Emitted[0].Record.Value) != "UPPER" || string(res.Emitted[0].Record.Key) != "k1" {
		t.Fatalf("result %+v", res)
	}
	if !strings.Contains(logs.String(), "hello from go guest") {
		t.Fatalf("guest stdout missing from logs:\n%s", logs)
	}

	// A result frame written over the input frame, in the tf_reserve buffer, is read correctly
	// (ABI.md section 7): the host copies out what it keeps before it writes the next frame.
	for i := 0; i < 3; i++ {
		res, err = s.Process(context.Background(), records("inplace", "upper", "b"))
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(res.Actions) != fmt.Sprint([]transform.Action{transform.Pass, transform.Emit, transform.Pass}) ||
			len(res.Emitted) != 1 || string(res.Emitted[0].Record.Value) != "UPPER" || res.Emitted[0].Input != 1 {
			t.Fatalf("in-place result %+v", res)
		}
	}

	tests := []struct {
		name, value string
		code        uint16
		reason      string
	}{
		{"panic", "panic", wasmhost.CodeTrap, "wasm trap: unreachable (stderr: panic: asked to panic)"},
		// Metered mode (the default) knows the refused growth exactly.
		{"unbounded allocation", "alloc", wasmhost.CodeMemory, "memory limit exceeded: growing memory from 32MiB to 33MiB was refused, the limit is 32MiB"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var res transform.Result
			var err error
			runWithin(t, 2*time.Minute, func() { res, err = s.Process(context.Background(), records("x", tc.value, "y")) })
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Rejected) != 1 || res.Rejected[0].Input != 1 || res.Rejected[0].Code != tc.code || res.Rejected[0].Reason != tc.reason {
				t.Fatalf("rejected %+v", res.Rejected)
			}
		})
	}
}

func TestGoGuestSandbox(t *testing.T) {
	path := buildGoGuest(t)
	h, _ := newCachedHost(t)
	s := newStage(t, h, path, wasmhost.StageConfig{Name: "go", Instances: 1, MemoryBytes: 32 << 20})
	res, err := s.Process(context.Background(), records("probe"))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Emitted) != 1 {
		t.Fatalf("result %+v", res)
	}
	var seen struct {
		ReadRootOK bool     `json:"read_root_ok"`
		ReadFileOK bool     `json:"read_file_ok"`
		Env        []string `json:"env"`
		Args       []string `json:"args"`
		Year       int      `json:"year"`
	}
	if err := json.Unmarshal(res.Emitted[0].Record.Value, &seen); err != nil {
		t.Fatalf("%v: %s", err, res.Emitted[0].Record.Value)
	}
	// No filesystem, no environment, no arguments, and a fake clock (wazero's fixed 2022 epoch).
	if seen.ReadRootOK || seen.ReadFileOK || len(seen.Env) != 0 || len(seen.Args) != 0 || seen.Year == time.Now().Year() {
		t.Fatalf("the guest saw more than nothing: %s", res.Emitted[0].Record.Value)
	}
}
