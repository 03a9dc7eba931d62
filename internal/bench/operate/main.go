// Command operate measures what many pipelines cost one sluice process when they have little to
// do: the time from start until every pipeline runs (/readyz answers 200), the resident memory,
// and the CPU spent while idle. Run it with `make bench-operate` or `go run ./internal/bench/operate`.
//
// Each pipeline tails a file of its own (the file source with follow: true, polling every
// 200 ms), validates each line with the validate_price WASM module and appends to a file sink: a
// pipeline that waits for data, as most do most of the time. The baseline is one such pipeline in
// its own process, measured in the same run, so the cost per added pipeline reads off the two.
// After the idle window, one burst of lines is appended to every tailed file and the time until
// every sink holds its lines is reported (the cost of waking all pipelines at once).
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sluicehq/sluice/internal/bench/sluicebin"
)

var (
	counts = flag.String("pipelines", "1,100", "pipeline counts to measure, each in a fresh process")
	idle   = flag.Duration("idle", 20*time.Second, "idle window over which CPU is measured")
	burst  = flag.Int("burst", 100, "lines appended to every tailed file after the idle window")
	poll   = flag.Duration("poll", 200*time.Millisecond, "the file sources' poll_interval")
	module = flag.String("module", "transforms/validate_price/rust/validate_price.wasm", "the WASM module each pipeline runs")
)

type result struct {
	pipelines int
	start     time.Duration // process start until /readyz answers 200
	rssStart  int64         // VmRSS once ready
	rssIdle   int64         // VmRSS at the end of the idle window
	anonIdle  int64         // RssAnon then: the process's own memory (heap, stacks, WASM)
	fileIdle  int64         // RssFile then: the binary's image, shared page cache
	hwm       int64         // VmHWM at the end
	idleCPU   float64       // share of one core over the idle window
	burstTime time.Duration // first appended line until every sink holds all burst lines
	burstCPU  time.Duration
}

func main() {
	flag.Parse()
	setup, err := sluicebin.Build("sluice-bench-operate-", *module)
	if err != nil {
		fatal(err)
	}
	defer setup.Close()
	mod, tmp, bin := setup.Module, setup.Dir, setup.Bin
	fmt.Printf("operate benchmark: %d cores; each pipeline tails a file (follow, %s polls) → %s → file sink; idle window %s; burst %d lines per pipeline\n\n",
		runtime.NumCPU(), *poll, filepath.Base(mod), *idle, *burst)
	fmt.Printf("%-10s %12s %10s %10s %10s %10s %10s %12s %12s %10s\n", "pipelines", "start→ready", "RSS MiB", "idle MiB", "anon MiB", "file MiB", "peak MiB", "idle CPU %", "burst secs", "burst cpu")
	var results []result
	for _, f := range strings.Split(*counts, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			fatal(fmt.Errorf("-pipelines %q: want positive counts", *counts))
		}
		r, err := measure(bin, mod, filepath.Join(tmp, fmt.Sprintf("n%d", n)), n)
		if err != nil {
			fatal(fmt.Errorf("%d pipelines: %w", n, err))
		}
		results = append(results, r)
		fmt.Printf("%-10d %12s %10.1f %10.1f %10.1f %10.1f %10.1f %12.2f %12.2f %10.2f\n", r.pipelines, r.start.Round(time.Millisecond),
			mib(r.rssStart), mib(r.rssIdle), mib(r.anonIdle), mib(r.fileIdle), mib(r.hwm), 100*r.idleCPU, r.burstTime.Seconds(), r.burstCPU.Seconds())
	}
	if len(results) >= 2 {
		a, b := results[0], results[len(results)-1]
		if d := b.pipelines - a.pipelines; d > 0 {
			fmt.Printf("\nper added pipeline: %.2f MiB resident (%.2f MiB anonymous), %.3f%% of a core idle, %s of start time\n",
				(mib(b.rssIdle)-mib(a.rssIdle))/float64(d), (mib(b.anonIdle)-mib(a.anonIdle))/float64(d), 100*(b.idleCPU-a.idleCPU)/float64(d), ((b.start - a.start) / time.Duration(d)).Round(time.Microsecond))
		}
	}
}

func measure(bin, mod, dir string, n int) (result, error) {
	r := result{pipelines: n}
	for _, d := range []string{"in", "out", "manifests", "data"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return r, err
		}
	}
	for i := range n {
		in := filepath.Join(dir, "in", fmt.Sprintf("p%03d.jsonl", i))
		if err := os.WriteFile(in, nil, 0o644); err != nil {
			return r, err
		}
		m := fmt.Sprintf(`apiVersion: sluice.dev/v1
kind: Pipeline
metadata:
  name: p%03d
spec:
  source:
    type: file
    config: {path: %q, follow: true, poll_interval: %s}
  transforms:
    - name: validate
      wasm: %q
  sinks:
    - name: out
      type: file
      config: {path: %q}
  dead_letter:
    type: file
    config: {path: %q}
`, i, in, *poll, mod, filepath.Join(dir, "out", fmt.Sprintf("p%03d.jsonl", i)), filepath.Join(dir, "out", fmt.Sprintf("p%03d.dlq.jsonl", i)))
		if err := os.WriteFile(filepath.Join(dir, "manifests", fmt.Sprintf("p%03d.yaml", i)), []byte(m), 0o644); err != nil {
			return r, err
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return r, err
	}
	addr := ln.Addr().String()
	ln.Close()
	var stderr bytes.Buffer
	cmd := exec.Command(bin, "--admin-addr", addr, "--data-dir", filepath.Join(dir, "data"), "--log-level", "warn", "run", filepath.Join(dir, "manifests"))
	cmd.Stdout, cmd.Stderr = os.Stdout, &stderr
	began := time.Now()
	if err := cmd.Start(); err != nil {
		return r, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}()
	pid := cmd.Process.Pid
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		select {
		case err := <-exited:
			exited <- err
			return r, fmt.Errorf("sluice exited before ready: %v\n%s", err, stderr.String())
		default:
		}
		if time.Since(began) > 5*time.Minute {
			return r, fmt.Errorf("not ready after 5 minutes\n%s", stderr.String())
		}
		resp, err := client.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	r.start = time.Since(began)
	r.rssStart = procStatus(pid, "VmRSS")
	time.Sleep(2 * time.Second) // let start-up work (compilation, first polls, GC) settle
	cpu0, t0 := procCPU(pid), time.Now()
	time.Sleep(*idle)
	r.idleCPU = (procCPU(pid) - cpu0).Seconds() / time.Since(t0).Seconds()
	r.rssIdle, r.anonIdle, r.fileIdle = procStatus(pid, "VmRSS"), procStatus(pid, "RssAnon"), procStatus(pid, "RssFile")

	// The burst: append to every tailed file, wait until every sink holds all its lines.
	cpu1, t1 := procCPU(pid), time.Now()
	for i := range n {
		var b bytes.Buffer
		for j := range *burst {
			fmt.Fprintf(&b, `{"commodity":"corn","price":%d.25,"currency":"USD","ts":"2026-12-01T10:00:00Z","seq":%d}`+"\n", 400+j%50, j)
		}
		f, err := os.OpenFile(filepath.Join(dir, "in", fmt.Sprintf("p%03d.jsonl", i)), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			return r, err
		}
		_, err = f.Write(b.Bytes())
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return r, err
		}
	}
	for i := 0; i < n; {
		out := filepath.Join(dir, "out", fmt.Sprintf("p%03d.jsonl", i))
		if lines(out)+lines(strings.TrimSuffix(out, ".jsonl")+".dlq.jsonl") >= *burst {
			i++
			continue
		}
		if time.Since(t1) > 2*time.Minute {
			return r, fmt.Errorf("pipeline p%03d did not deliver the burst in 2 minutes\n%s", i, stderr.String())
		}
		time.Sleep(2 * time.Millisecond)
	}
	r.burstTime, r.burstCPU = time.Since(t1), procCPU(pid)-cpu1
	r.hwm = procStatus(pid, "VmHWM")
	if dl := lines(filepath.Join(dir, "out", "p000.dlq.jsonl")); dl > 0 {
		return r, fmt.Errorf("p000 dead-lettered %d burst records: the benchmark's records should all pass", dl)
	}
	return r, nil
}

// lines counts the newline-terminated lines of path (0 when missing).
func lines(path string) int {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		n++
	}
	return n
}

// procCPU is the user and system CPU time of process pid (from /proc/PID/stat).
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')') // the command name may hold spaces
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	const hz = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / hz
}

// procStatus reads a kB field of /proc/PID/status, in bytes.
func procStatus(pid int, field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(v), "%d", &kb)
			return kb * 1024
		}
	}
	return 0
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "operate:", err)
	os.Exit(1)
}
