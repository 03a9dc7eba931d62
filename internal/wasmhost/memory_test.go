package wasmhost_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/internal/wasmhost"
)

// peakRSSChild is set in the environment of the child process TestMemoryBoundedByLimit starts.
const peakRSSChild = "SLUICE_WASMHOST_PEAK_RSS_CHILD"

// vmHWM returns the process's peak resident set size in bytes (VmHWM of /proc/self/status).
func vmHWM(t testing.TB) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Skipf("peak RSS needs /proc: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("VmHWM %q: %v", rest, err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc/self/status")
	return 0
}

// runMeasuringChild re-runs the calling test (this test binary, so that nothing else the tests did
// counts towards the peak RSS) with env set to the Go guest's path, and scans the line the child
// printed in format into vals, the last of which is the peak RSS and must not be 0. It skips where
// peak RSS cannot be measured or bounded, and returns the child's output.
func runMeasuringChild(t *testing.T, env, format string, vals ...*int64) []byte {
	t.Helper()
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("peak RSS needs /proc")
	}
	if raceEnabled {
		t.Skip("the race detector's shadow memory is not part of the bound")
	}
	guest := buildGoGuest(t)
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), env+"="+guest)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%.4000s", err, out)
	}
	prefix, _, _ := strings.Cut(format, "%")
	args := make([]any, len(vals))
	for i, v := range vals {
		args[i] = v
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, prefix) {
			if _, err := fmt.Sscanf(line, format, args...); err != nil {
				t.Fatalf("child line %q: %v", line, err)
			}
		}
	}
	if *vals[len(vals)-1] == 0 {
		t.Fatalf("child printed no measurement:\n%.4000s", out)
	}
	return out
}

// TestMemoryBoundedByLimit runs a module that grows its memory until refused, writing all of it,
// and then fails (the Go guest's "fill": the Go runtime exits out of memory), on
// a batch whose retries and bisection create instance after instance, and checks the process's
// peak RSS against the bound of ABI.md section 11: instances × limit plus a fixed overhead. It
// measures in a child process (this test binary, re-run) so that nothing else the tests did
// counts.
func TestMemoryBoundedByLimit(t *testing.T) {
	const (
		limit     = 256 << 20
		instances = 2
		overhead  = wasmhost.HostMemoryOverhead
	)
	if guest := os.Getenv(peakRSSChild); guest != "" {
		h, _ := newHost(t)
		s := newStage(t, h, guest, wasmhost.StageConfig{Name: "t", Instances: instances, MemoryBytes: limit})
		vals := make([]string, 600)
		for i := range vals {
			vals[i] = "a"
		}
		// Poison spread over the batch: every frame fails, is retried and is bisected.
		for _, i := range []int{3, 150, 299, 301, 450, 599} {
			vals[i] = "fill"
		}
		res, err := s.Process(context.Background(), records(vals...))
		if err != nil {
			t.Fatal(err)
		}
		st := s.Stats()
		fmt.Printf("rejected=%d memory_faults=%d restarts=%d peak_rss=%d\n", len(res.Rejected), st.MemoryFaults, st.InstanceRestarts, vmHWM(t))
		return
	}
	var rejected, faults, restarts, peak int64
	out := runMeasuringChild(t, peakRSSChild, "rejected=%d memory_faults=%d restarts=%d peak_rss=%d", &rejected, &faults, &restarts, &peak)
	if rejected != 6 || faults < 12 {
		t.Fatalf("child rejected %d records after %d memory faults, want 6 and at least 12:\n%s", rejected, faults, out)
	}
	bound := int64(instances*limit + overhead)
	t.Logf("peak RSS %d MiB after %d memory faults and %d instance restarts; bound %d MiB", peak>>20, faults, restarts, bound>>20)
	if peak > bound {
		t.Fatalf("peak RSS %d MiB is over the bound of %d instances × %d MiB + %d MiB", peak>>20, instances, limit>>20, overhead>>20)
	}
}

// overlapChild is set in the environment of the child process TestOverlappingEmitsBounded starts.
const overlapChild = "SLUICE_WASMHOST_OVERLAP_CHILD"

// TestOverlappingEmitsBounded runs the Go guest's "overlap" (every record EMITs the same 2,000
// OutDescs, all naming the same 4 KiB value: 8 MB per record from a few KiB of result frame) over
// 300 records at the default 64 MiB limit, and checks the child's peak RSS against the bound of
// ABI.md section 11: one instance's limit, twice the batch's output budget and the fixed overhead.
// Before, the host copied 2.4 GB out of one result frame; now a result over the per-call totals
// is invalid and bisected, and the records past the batch's output budget are rejected.
func TestOverlappingEmitsBounded(t *testing.T) {
	const (
		limit    = wasmhost.DefaultMemoryBytes
		overhead = wasmhost.HostMemoryOverhead
	)
	if guest := os.Getenv(overlapChild); guest != "" {
		h, _ := newHost(t)
		s := newStage(t, h, guest, wasmhost.StageConfig{Name: "t", Instances: 1})
		vals := make([]string, 300)
		for i := range vals {
			vals[i] = "overlap"
		}
		res, err := s.Process(context.Background(), records(vals...))
		if err != nil {
			t.Fatal(err)
		}
		var bytes int64
		for _, e := range res.Emitted {
			bytes += int64(len(e.Record.Value))
		}
		fmt.Printf("emitted=%d bytes=%d rejected=%d peak_rss=%d\n", len(res.Emitted), bytes, len(res.Rejected), vmHWM(t))
		return
	}
	var emitted, bytes, rejected, peak int64
	runMeasuringChild(t, overlapChild, "emitted=%d bytes=%d rejected=%d peak_rss=%d", &emitted, &bytes, &rejected, &peak)
	t.Logf("emitted %d records (%d MiB), rejected %d; peak RSS %d MiB", emitted, bytes>>20, rejected, peak>>20)
	budget := wasmhost.BatchOutputBytes(limit)
	if bytes > budget || emitted == 0 || rejected == 0 {
		t.Fatalf("emitted %d records of %d bytes and rejected %d: want at most %d bytes and the rest rejected", emitted, bytes, rejected, budget)
	}
	if bound := int64(limit) + 2*budget + overhead; peak > bound {
		t.Fatalf("peak RSS %d MiB is over the bound of 1 instance × %d MiB + 2 × %d MiB of output + %d MiB", peak>>20, limit>>20, budget>>20, overhead>>20)
	}
}

// headersChild is set in the environment of the child process TestEmptyHeadersBounded starts.
const headersChild = "SLUICE_WASMHOST_HEADERS_CHILD"

// TestEmptyHeadersBounded runs the Go guest's "headers" (one emitted record of 100,000 empty
// headers: 0.8 MB of result frame, several MB on the host) on every other record of 600 at the
// default 64 MiB limit, and checks the child's peak RSS against the bound of ABI.md section 11.
// Before, empty headers were free for the output budget and the host kept every such record;
// now a record of more than 1,024 headers is an invalid result.
func TestEmptyHeadersBounded(t *testing.T) {
	const (
		limit    = wasmhost.DefaultMemoryBytes
		overhead = wasmhost.HostMemoryOverhead
	)
	if guest := os.Getenv(headersChild); guest != "" {
		h, _ := newHost(t)
		s := newStage(t, h, guest, wasmhost.StageConfig{Name: "t", Instances: 1})
		vals := make([]string, 600)
		for i := range vals {
			vals[i] = "a"
			if i%2 == 1 {
				vals[i] = "headers"
			}
		}
		res, err := s.Process(context.Background(), records(vals...))
		if err != nil {
			t.Fatal(err)
		}
		var headers int64
		for _, e := range res.Emitted {
			headers += int64(len(e.Record.Headers))
		}
		fmt.Printf("emitted=%d headers=%d rejected=%d peak_rss=%d\n", len(res.Emitted), headers, len(res.Rejected), vmHWM(t))
		return
	}
	var emitted, headers, rejected, peak int64
	runMeasuringChild(t, headersChild, "emitted=%d headers=%d rejected=%d peak_rss=%d", &emitted, &headers, &rejected, &peak)
	t.Logf("emitted %d records with %d headers, rejected %d; peak RSS %d MiB", emitted, headers, rejected, peak>>20)
	budget := wasmhost.BatchOutputBytes(limit)
	if bound := int64(limit) + 2*budget + overhead; peak > bound {
		t.Fatalf("peak RSS %d MiB is over the bound of 1 instance × %d MiB + 2 × %d MiB of output + %d MiB", peak>>20, limit>>20, budget>>20, overhead>>20)
	}
	if rejected != 300 || headers != 0 {
		t.Fatalf("rejected %d records and kept %d headers: want the 300 records of 100,000 headers rejected", rejected, headers)
	}
}
