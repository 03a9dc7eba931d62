package pluginhost

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// buildSluice builds the sluice binary into dir.
func buildSluice(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "sluice")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/sluicehq/sluice/cmd/sluice")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("build sluice: %v", err)
	}
	return bin
}

// buildExamplePlugin builds examples/plugin-csv, its own module, into dir. -mod=mod lets its
// go.mod follow dependency upgrades of the SDK module it replaces.
func buildExamplePlugin(t *testing.T, dir string) {
	t.Helper()
	cmd := exec.Command("go", "build", "-mod=mod", "-o", filepath.Join(dir, "sluice-plugin-csv"), ".")
	cmd.Dir = filepath.Join("..", "..", "examples", "plugin-csv")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("build example plugin: %v", err)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// The example plugin as source and sink of a pipeline run by the sluice binary: every row arrives.
func TestPipelineExamplePlugin(t *testing.T) {
	dir := t.TempDir()
	plugins := filepath.Join(dir, "plugins")
	if err := os.Mkdir(plugins, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := buildSluice(t, dir)
	buildExamplePlugin(t, plugins)
	in, out := filepath.Join(dir, "in.csv"), filepath.Join(dir, "out.csv")
	var b strings.Builder
	b.WriteString("sku,price,note\n")
	const rows = 20_000
	for i := range rows {
		fmt.Fprintf(&b, "sku-%d,%d.%02d,\"a, b %d\"\n", i, i, i%100, i)
	}
	writeFile(t, in, b.String())
	// The manifest's pin is what lets discovery run the binary (no .sha256 file beside it).
	manifest := filepath.Join(dir, "p.yaml")
	writeFile(t, manifest, fmt.Sprintf(`apiVersion: sluice.dev/v1
kind: Pipeline
metadata: {name: csv-copy}
spec:
  source: {type: "plugin:csv", config: {path: %q, key_column: sku, batch_size: 500, sha256: %s}}
  sinks:
    - name: out
      type: "plugin:csv"
      config: {path: %q, columns: [sku, price]}
`, in, fileSum(t, filepath.Join(plugins, "sluice-plugin-csv")), out))
	cmd := exec.Command(bin, "run", "--data-dir", filepath.Join(dir, "data"), "--plugins-dir", plugins, "--admin-addr", "", manifest)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("sluice run: %v\n%s", err, stderr.String())
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != rows+1 || strings.Join(got[0], ",") != "sku,price" {
		t.Fatalf("out.csv has %d rows (header %v), want %d and sku,price", len(got), got[0], rows+1)
	}
	seen := map[string]bool{}
	for _, r := range got[1:] {
		i, err := strconv.Atoi(strings.TrimPrefix(r[0], "sku-"))
		if err != nil || r[1] != fmt.Sprintf("%d.%02d", i, i%100) {
			t.Fatalf("bad row %v", r)
		}
		seen[r[0]] = true
	}
	if len(seen) != rows {
		t.Fatalf("%d distinct rows delivered, want %d", len(seen), rows)
	}
}

// childPids returns the processes whose parent is ppid and whose executable is exe.
func childPids(ppid int, exe string) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		fs := strings.Fields(string(stat[i+1:]))
		if len(fs) < 2 || fs[1] != strconv.Itoa(ppid) {
			continue
		}
		if link, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe")); err == nil && link == exe {
			out = append(out, pid)
		}
	}
	return out
}

// kill -9 of the plugin processes (source and sink) in the middle of a pipeline run: the host
// restarts them and every record arrives.
func TestPipelineKill9Plugins(t *testing.T) {
	dir := t.TempDir()
	plugins := pluginDir(t, "seq")
	pluginBin, _ := filepath.Abs(filepath.Join(plugins, "seq"))
	bin := buildSluice(t, dir)
	out := filepath.Join(dir, "out.txt")
	const count = 400_000
	manifest := filepath.Join(dir, "p.yaml")
	writeFile(t, manifest, fmt.Sprintf(`apiVersion: sluice.dev/v1
kind: Pipeline
metadata: {name: seq-kill}
spec:
  source: {type: "plugin:seq", config: {count: %d, batch: 1000}}
  sinks:
    - name: out
      type: "plugin:lines"
      config: {path: %q}
`, count, out))
	cmd := exec.Command(bin, "run", "--data-dir", filepath.Join(dir, "data"), "--plugins-dir", plugins, "--admin-addr", "", manifest)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	kills := 0
	deadline := time.After(3 * time.Minute)
	// Kill one plugin process at a time once the output has grown past a few marks.
	marks := []int64{200_000, 900_000, 1_800_000}
	for kills < len(marks) {
		select {
		case err := <-done:
			t.Fatalf("sluice run ended (%v) after %d of %d kills; make count larger\n%s", err, kills, len(marks), stderr.String())
		case <-deadline:
			cmd.Process.Kill()
			t.Fatalf("no progress\n%s", stderr.String())
		case <-time.After(5 * time.Millisecond):
		}
		st, err := os.Stat(out)
		if err != nil || st.Size() < marks[kills] {
			continue
		}
		pids := childPids(cmd.Process.Pid, pluginBin)
		if len(pids) == 0 {
			continue
		}
		if err := syscall.Kill(pids[kills%len(pids)], syscall.SIGKILL); err != nil {
			t.Fatalf("kill -9: %v", err)
		}
		kills++
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("sluice run: %v\n%s", err, stderr.String())
		}
	case <-time.After(3 * time.Minute):
		cmd.Process.Kill()
		t.Fatalf("sluice run did not finish\n%s", stderr.String())
	}
	seen := map[string]int{}
	for _, r := range readLines(t, out) {
		seen[string(r.Value)]++
	}
	if len(seen) != count {
		t.Fatalf("%d distinct records delivered, want %d\n%s", len(seen), count, stderr.String())
	}
	if !strings.Contains(stderr.String(), "restarting plugin") {
		t.Fatalf("no restart logged:\n%s", stderr.String())
	}
	t.Logf("%d kills, %d lines for %d records", kills, len(readLines(t, out)), count)
}
