package main_test

import (
	"bytes"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// TestKill9ExactlyOnce runs pipelines with delivery: exactly_once into two file sinks (one with a
// batch of its own, so the two commit at different points) and kills `sluice run` with SIGKILL at
// ten random moments, restarting it with the same data directory each time, then lets a run
// finish. Each sink's file must then hold every record once, in order.
func TestKill9ExactlyOnce(t *testing.T) {
	bin := buildSluice(t)
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewSource(seed))
	t.Logf("seed %d", seed)
	// Sized so that ten kills at most 430ms into a run come before the end: both sources are held
	// to 40,000 records/s (at most 172,000 in ten runs), however fast the machine.
	const n = 200_000
	for _, source := range []string{"generate", "file"} {
		t.Run(source, func(t *testing.T) {
			dir := t.TempDir()
			var src string
			switch source {
			case "generate":
				src = fmt.Sprintf(`{type: generate, config: {count: %d, template: "{{seq}}", batch_size: 100, rate: 40000}}`, n)
			case "file":
				var in bytes.Buffer
				for i := 1; i <= n; i++ {
					fmt.Fprintf(&in, "%d\n", i)
				}
				inPath := filepath.Join(dir, "in.txt")
				if err := os.WriteFile(inPath, in.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				src = fmt.Sprintf(`{type: file, config: {path: %q, read_buffer: 2KiB, rate: 40000}}`, inPath)
			}
			a, b := filepath.Join(dir, "a.txt"), filepath.Join(dir, "b.txt")
			manifest := fmt.Sprintf(`apiVersion: sluice.dev/v1
kind: Pipeline
metadata: {name: eo}
spec:
  source: %s
  sinks:
    - {name: a, type: file, config: {path: %q}}
    - {name: b, type: file, config: {path: %q}, batch: {max_records: 1500, linger: 20ms}}
  delivery: exactly_once
  batch: {max_records: 100, linger: 1ms}
  buffer: {max_records: 6000}
`, src, a, b)
			mPath := filepath.Join(dir, "eo.yaml")
			if err := os.WriteFile(mPath, []byte(manifest), 0o644); err != nil {
				t.Fatal(err)
			}
			kills := killRuns(t, bin, dir, mPath, rng, 10, nil, func() string {
				return fmt.Sprintf("a holds %d lines, b %d", len(lines(t, a)), len(lines(t, b)))
			})
			for _, path := range []string{a, b} {
				got := lines(t, path)
				for i, l := range got {
					if v, err := strconv.Atoi(l); err != nil || v != i+1 {
						t.Fatalf("%s: line %d is %q, want %d: a record twice, lost or out of order after %d kills", filepath.Base(path), i+1, l, i+1, kills)
					}
				}
				if len(got) != n {
					t.Fatalf("%s: %d lines, want %d", filepath.Base(path), len(got), n)
				}
			}
		})
	}
}
