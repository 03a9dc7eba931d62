package main_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

var sluiceBin string

// TestMain compiles the binary once for every test of the package.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sluice-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	sluiceBin = filepath.Join(dir, "sluice")
	cmd := exec.Command("go", "build", "-o", sluiceBin, ".")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build sluice:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func buildSluice(t *testing.T) string {
	t.Helper()
	return sluiceBin
}

func lines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

// TestKill9LosesNothing copies a 100,000-line file through file → file and kills `sluice run`
// with SIGKILL at random moments, restarting it with the same data directory each time, until a
// run completes. Every input line must be in the output, in input order once duplicates from the
// un-checkpointed tail are set aside, and the output holds nothing else.
func TestKill9LosesNothing(t *testing.T) {
	bin := buildSluice(t)
	const n = 100_000
	var in bytes.Buffer
	for i := 0; i < n; i++ {
		fmt.Fprintf(&in, `{"line":%d,"payload":"%080d"}`+"\n", i, i)
	}
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewSource(seed))
	t.Logf("seed %d", seed)
	for trial := 0; trial < 3; trial++ {
		t.Run(fmt.Sprintf("trial%d", trial), func(t *testing.T) {
			dir := t.TempDir()
			inPath, outPath := filepath.Join(dir, "in.jsonl"), filepath.Join(dir, "out.jsonl")
			if err := os.WriteFile(inPath, in.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			// Small batches, and a source held to 50,000 lines/s: eight kills at most 160ms into a
			// run (64,000 lines) all come before the end, however fast the machine.
			manifest := fmt.Sprintf(`apiVersion: sluice.dev/v1
kind: Pipeline
metadata: {name: copy}
spec:
  source: {type: file, config: {path: %q, read_buffer: 4KiB, rate: 50000}}
  sinks:
    - {name: out, type: file, config: {path: %q}}
  batch: {max_records: 40, linger: 1ms}
  buffer: {max_records: 2000}
`, inPath, outPath)
			mPath := filepath.Join(dir, "copy.yaml")
			if err := os.WriteFile(mPath, []byte(manifest), 0o644); err != nil {
				t.Fatal(err)
			}
			kills := 0
			for attempt := 0; ; attempt++ {
				if attempt > 60 {
					t.Fatalf("no run completed after %d attempts", attempt)
				}
				var stderr bytes.Buffer
				cmd := exec.Command(bin, "run", "--data-dir", filepath.Join(dir, "data"), "--admin-addr", "", mPath)
				cmd.Stderr = &stderr
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				done := make(chan error, 1)
				go func() { done <- cmd.Wait() }()
				// Kill the first eight runs at random moments, then let one run to the end.
				var timer <-chan time.Time
				if attempt < 8 {
					timer = time.After(time.Duration(rng.Intn(150)+10) * time.Millisecond)
				}
				select {
				case err := <-done:
					if err != nil {
						t.Fatalf("run failed: %v\n%s", err, stderr.String())
					}
					if attempt < 8 {
						t.Fatalf("run %d finished before it was killed", attempt)
					}
				case <-timer:
					_ = cmd.Process.Signal(syscall.SIGKILL)
					<-done
					kills++
					continue
				}
				break
			}
			got := lines(t, outPath)
			want := lines(t, inPath)
			// Walk the output: each line is either the next expected input line, or a repeat of
			// one already seen (replayed after a kill).
			seen := make(map[string]bool, n)
			next, dups := 0, 0
			for i, l := range got {
				switch {
				case next < n && l == want[next]:
					seen[l] = true
					next++
				case seen[l]:
					dups++
				default:
					t.Fatalf("output line %d %q is out of order or not from the input (expected %q)", i, l, want[min(next, n-1)])
				}
			}
			if next != n {
				t.Fatalf("lost data: only the first %d of %d input lines reached the output (%d kills)", next, n, kills)
			}
			// Each replay repeats at most the records in flight (buffer) plus the un-checkpointed tail.
			if kills > 0 && dups > kills*4000 {
				t.Fatalf("%d duplicates after %d kills: more than the in-flight tail", dups, kills)
			}
			t.Logf("%d kills, %d lines out, %d duplicates", kills, len(got), dups)
		})
	}
}
