package wasmhost_test

import (
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/wasmhost"
	"github.com/sluicehq/sluice/internal/wasmhost/meter"
	"github.com/sluicehq/sluice/runtime/transform"
)

// Guests that never end without a loop in them: deep recursion (which ends when the stack
// overflows, if the deadline does not come first) and an exponential call tree (2^60 calls, which
// wazero's strict mode cannot stop: it checks only at loop iterations).
func TestRunawayWithoutLoops(t *testing.T) {
	h, _ := newHost(t)
	s := newStage(t, h, hostileWasm, wasmhost.StageConfig{Name: "t", Mode: wasmhost.Metered, Instances: 1, Timeout: 200 * time.Millisecond})
	var res transform.Result
	var err error
	runWithin(t, time.Minute, func() { res, err = s.Process(context.Background(), records("a", "tree", "b", "recurse", "c", "loop")) })
	if err != nil {
		t.Fatal(err)
	}
	if countPass(res) != 3 || len(res.Rejected) != 3 {
		t.Fatalf("result %+v", res)
	}
	for _, r := range res.Rejected {
		ok := r.Code == wasmhost.CodeDeadline && r.Reason == "deadline exceeded"
		if r.Input == 3 { // recursion: the stack may overflow first
			ok = ok || (r.Code == wasmhost.CodeTrap && strings.Contains(r.Reason, "stack overflow"))
		}
		if !ok || (r.Input != 1 && r.Input != 3 && r.Input != 5) {
			t.Fatalf("rejected %+v", r)
		}
	}
	if res, err := s.Process(context.Background(), records("a", "b")); err != nil || countPass(res) != 2 {
		t.Fatalf("after: %v %+v", err, res)
	}
}

// An infinite loop is stopped soon after its deadline: the host sees the deadline at the next
// refill, about a millisecond of guest work later. The test reports the ratio of a call's time to
// its deadline (median of 5) and only fails when a call took ten times its deadline.
func TestDeadlineAccuracy(t *testing.T) {
	h, _ := newHost(t)
	for _, guest := range []string{"loop", "tree"} {
		for _, timeout := range []time.Duration{50 * time.Millisecond, 250 * time.Millisecond} {
			s := newStage(t, h, hostileWasm, wasmhost.StageConfig{Name: "t", Mode: wasmhost.Metered, Instances: 1, Timeout: timeout})
			var ratios []float64
			for i := 0; i < 5; i++ {
				start := time.Now()
				res, err := s.Process(context.Background(), records(guest)) // a call and its retry, then the record is rejected
				took := time.Since(start)
				if err != nil || len(res.Rejected) != 1 || res.Rejected[0].Code != wasmhost.CodeDeadline {
					t.Fatalf("%v %+v", err, res)
				}
				ratios = append(ratios, took.Seconds()/2/timeout.Seconds())
			}
			sort.Float64s(ratios)
			t.Logf("%s, deadline %s: a call took %.3f times its deadline (median of 5; min %.3f, max %.3f)", guest, timeout, ratios[2], ratios[0], ratios[4])
			if ratios[2] > 10 {
				t.Fatalf("calls took %.1f times their deadline", ratios[2])
			}
		}
	}
}

// A garbage collection does not wait for a running metered call: the call comes back into Go at
// each refill. In trusted mode the collection waits for the call to return (runtime/RATIONALE.md).
func TestGCDuringMeteredCall(t *testing.T) {
	h, _ := newHost(t)
	s := newStage(t, h, hostileWasm, wasmhost.StageConfig{Name: "t", Mode: wasmhost.Metered, Instances: 1, Timeout: time.Minute})
	done := make(chan time.Time, 1)
	start := time.Now()
	go func() {
		_, err := s.Process(context.Background(), records("slow")) // 300 million iterations
		if err != nil {
			t.Error(err)
		}
		done <- time.Now()
	}()
	time.Sleep(30 * time.Millisecond)
	gcStart := time.Now()
	runtime.GC()
	gcEnd := time.Now()
	callEnd := <-done
	t.Logf("runtime.GC() took %s during a metered call of %s", gcEnd.Sub(gcStart).Round(time.Microsecond), callEnd.Sub(start).Round(time.Millisecond))
	if !gcEnd.Before(callEnd) {
		t.Fatalf("the collection waited for the call: it ended %s after it", gcEnd.Sub(callEnd))
	}
}

// limits.fuel: a call may use the fuel of its records and no more, which makes the outcome the same
// on any machine; the units are counted exactly.
func TestFuelBudget(t *testing.T) {
	h, _ := newHost(t)
	s := newStage(t, h, hostileWasm, wasmhost.StageConfig{Name: "t", Mode: wasmhost.Metered, Instances: 1, Fuel: 100_000})
	res, err := s.Process(context.Background(), records("a", "spin", "b"))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rejected) != 1 || res.Rejected[0].Input != 1 || res.Rejected[0].Code != wasmhost.CodeDeadline ||
		res.Rejected[0].Reason != "fuel exhausted: the call needed more than its 100000 units" {
		t.Fatalf("rejected %+v", res.Rejected)
	}
	// The same records use the same units.
	free := newStage(t, h, hostileWasm, wasmhost.StageConfig{Name: "t", Mode: wasmhost.Metered, Instances: 1})
	var used []uint64
	for i := 0; i < 3; i++ {
		before := free.Stats().Fuel
		if _, err := free.Process(context.Background(), records("a", "spin", "b")); err != nil {
			t.Fatal(err)
		}
		used = append(used, free.Stats().Fuel-before)
	}
	// The first call on an instance may do more (the guest allocates its output buffer).
	if used[1] < 5_000_000 || used[0] < used[1] || used[1] != used[2] {
		t.Fatalf("units used by the same batch: %v", used)
	}
	t.Logf("%d units for a batch with a loop of a million iterations", used[0])
	// A budget of exactly what the batch needs passes it, one unit less does not.
	per := int64(used[0]+2) / 3
	for _, tc := range []struct {
		fuel int64
		pass int
	}{{per, 3}, {per - 1, 2}} {
		st := newStage(t, h, hostileWasm, wasmhost.StageConfig{Name: "t", Mode: wasmhost.Metered, Instances: 1, Fuel: tc.fuel})
		res, err := st.Process(context.Background(), records("a", "spin", "b"))
		if err != nil {
			t.Fatal(err)
		}
		if countPass(res) != tc.pass {
			t.Fatalf("fuel %d per record (the batch used %d): %d passed, want %d", tc.fuel, used[0], countPass(res), tc.pass)
		}
	}
	m, err := h.Load(context.Background(), hostileWasm, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.NewStage(context.Background(), m, wasmhost.StageConfig{Name: "t", Mode: wasmhost.Strict, Fuel: 10}); err == nil || !strings.Contains(err.Error(), "in metered mode only") {
		t.Fatalf("fuel in strict mode: err = %v", err)
	}
	if ps := m.Check(wasmhost.StageConfig{Mode: wasmhost.Trusted, Fuel: 10}); len(ps) != 1 || ps[0].Setting != "fuel" || ps[0].Message != "a fuel budget needs mode metered, not trusted" {
		t.Fatalf("check: %+v", ps)
	}
}

// withExport returns bin with one more export: the memory under name.
func withExport(t *testing.T, bin []byte, name string) []byte {
	t.Helper()
	out := append([]byte(nil), bin[:8]...)
	p := 8
	for p < len(bin) {
		id := bin[p]
		size, n := binary.Uvarint(bin[p+1:])
		start := p + 1 + n
		payload := bin[start : start+int(size)]
		p = start + int(size)
		if id == 7 {
			count, k := binary.Uvarint(payload)
			np := binary.AppendUvarint(nil, count+1)
			np = append(np, payload[k:]...)
			np = binary.AppendUvarint(np, uint64(len(name)))
			np = append(np, name...)
			np = append(np, 2, 0)
			payload = np
		}
		out = append(out, id)
		out = binary.AppendUvarint(out, uint64(len(payload)))
		out = append(out, payload...)
	}
	return out
}

// A module the rewriter refuses cannot run metered: Check and NewStage say why; strict mode runs it.
func TestModuleThatCannotBeMetered(t *testing.T) {
	bin, err := os.ReadFile(hostileWasm)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "m.wasm")
	if err := os.WriteFile(p, withExport(t, bin, meter.FuelExport), 0o644); err != nil {
		t.Fatal(err)
	}
	h, _ := newHost(t)
	m, err := h.Load(context.Background(), p, "")
	if err != nil {
		t.Fatal(err)
	}
	want := `the module cannot be metered: at byte 0x`
	ps := m.Check(wasmhost.StageConfig{Mode: wasmhost.Metered})
	if len(ps) != 1 || ps[0].Setting != "mode" || !strings.HasPrefix(ps[0].Message, want) || !strings.Contains(ps[0].Message, `the module exports "sluice_meter_fuel", a name reserved for the host; run it in strict mode`) {
		t.Fatalf("check: %+v", ps)
	}
	if _, err := h.NewStage(context.Background(), m, wasmhost.StageConfig{Name: "t", Mode: wasmhost.Metered}); err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("new stage: %v", err)
	}
	s := newStage(t, h, p, wasmhost.StageConfig{Name: "t", Mode: wasmhost.Strict, Instances: 1})
	if res, err := s.Process(context.Background(), records("a")); err != nil || countPass(res) != 1 {
		t.Fatalf("strict: %v %+v", err, res)
	}
}
