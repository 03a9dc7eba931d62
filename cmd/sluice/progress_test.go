package main_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestRunProgressLine runs `sluice run` on a bounded file source held to 20,000 lines/s, once in
// a pseudo-terminal (util-linux script) and once with stderr in a pipe. In the terminal a status
// line is drawn in place (\r, erase line) with the pipeline's records and a share that moves
// through values below 100% to 100%, the logs still show, and the line is cleared at the end;
// with --progress=never, or without a terminal, only the logs are printed.
func TestRunProgressLine(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the terminal check is Linux's")
	}
	scriptBin, err := exec.LookPath("script")
	if err != nil {
		t.Fatal("this test needs script(1) (util-linux) to give sluice a pseudo-terminal: apt-get install bsdutils")
	}
	bin := buildSluice(t)
	const n = 60000
	dir := t.TempDir()
	var text strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&text, "%d\n", i)
	}
	in := writeFile(t, filepath.Join(dir, "in.txt"), text.String())
	manifest := func(name string) string {
		return writeFile(t, filepath.Join(dir, name+".yaml"), fmt.Sprintf(`apiVersion: sluice.dev/v1
kind: Pipeline
metadata: {name: %s}
spec:
  source: {type: file, config: {path: %q, rate: 20000, read_buffer: 16KiB}}
  sinks: [{name: out, type: file, config: {path: %q}}]
`, name, in, filepath.Join(dir, name+".out")))
	}
	inTerminal := func(name string, args ...string) string {
		t.Helper()
		cmdline := fmt.Sprintf("'%s' run --data-dir '%s' --admin-addr '' %s '%s'", bin, filepath.Join(dir, "data-"+name), strings.Join(args, " "), manifest(name))
		cmd := exec.Command(scriptBin, "-qec", cmdline, "/dev/null")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		cmd.Stdin = nil
		if err := cmd.Run(); err != nil {
			t.Fatalf("%s: %v\n%s", cmdline, err, out.String())
		}
		if got := len(lines(t, filepath.Join(dir, name+".out"))); got != n {
			t.Fatalf("%s delivered %d lines, want %d", name, got, n)
		}
		return out.String()
	}

	out := inTerminal("tty")
	drawn := regexp.MustCompile(`\r\x1b\[Ktty · ([0-9,]+) records · [0-9,]+/s · (\d+)%`).FindAllStringSubmatch(out, -1)
	if len(drawn) == 0 {
		t.Fatalf("no status line in the terminal's output:\n%q", out)
	}
	below, full := 0, false
	for _, d := range drawn {
		switch d[2] {
		case "100":
			full = true
		case "0":
		default:
			below++
		}
	}
	if !full || below == 0 {
		t.Fatalf("the status line went through %d values between 0%% and 100%% and reached 100%%: %t; want both:\n%q", below, full, out)
	}
	if last := drawn[len(drawn)-1]; last[1] != "60,000" || last[2] != "100" {
		t.Fatalf("last status line %q: want 60,000 records at 100%%", last[0])
	}
	if !strings.Contains(out, "finished") {
		t.Fatalf("the logs are missing beside the status line:\n%q", out)
	}
	if !strings.HasSuffix(strings.TrimRight(out, "\r\n"), "\r\x1b[K") && !strings.Contains(out[strings.LastIndex(out, "100%"):], "\r\x1b[K") {
		t.Fatalf("the status line is not cleared at the end:\n%q", out)
	}

	if out := inTerminal("never", "--progress=never"); strings.Contains(out, "\x1b[K") || strings.Contains(out, " records · ") {
		t.Fatalf("--progress=never drew a status line:\n%q", out)
	}

	// Without a terminal: the logs alone.
	var stderr bytes.Buffer
	cmd := exec.Command(bin, "run", "--data-dir", filepath.Join(dir, "data-pipe"), "--admin-addr", "", manifest("pipe"))
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	if s := stderr.String(); strings.ContainsAny(s, "\r\x1b") || strings.Contains(s, " records · ") || !strings.Contains(s, "finished") {
		t.Fatalf("without a terminal stderr must hold the logs alone (took %s):\n%q", time.Since(start), s)
	}
	_ = os.Remove(filepath.Join(dir, "pipe.out"))
}
