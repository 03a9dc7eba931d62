package wasmhost_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/wasmhost"
	"github.com/sluicehq/sluice/runtime/transform"
)

func repeat(v string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = v
	}
	return out
}

// failedCalls is the number of guest calls of st that failed.
func failedCalls(st wasmhost.Stats) uint64 {
	return st.Traps + st.Timeouts + st.MemoryFaults + st.GuestErrors + st.InvalidResults
}

// A module that fails on every call is broken after 2·(2 + ⌈log2 n⌉) calls (24 for 1,024 records)
// instead of bisecting every batch down to single records (about 2n+1 calls each).
func TestModuleFailingEveryCallIsBroken(t *testing.T) {
	for _, tc := range []struct {
		value   string
		timeout time.Duration
	}{{"trap", 0}, {"loop", 20 * time.Millisecond}, {"fail", 0}} {
		t.Run(tc.value, func(t *testing.T) {
			h, _ := newHost(t)
			s := newStage(t, h, hostileWasm, wasmhost.StageConfig{Name: "t", Instances: 1, Timeout: tc.timeout})
			_, err := s.Process(context.Background(), records(repeat(tc.value, 1024)...))
			if !errors.Is(err, transform.ErrBroken) {
				t.Fatalf("err = %v, want transform.ErrBroken", err)
			}
			if !strings.HasPrefix(err.Error(), `stage is broken: 24 guest calls of one batch failed and none succeeded`) {
				t.Fatalf("err = %v", err)
			}
			if n := failedCalls(s.Stats()); n != 24 {
				t.Fatalf("%d failed calls, want 24", n)
			}
			// The next batch is refused after one more failed call.
			if _, err := s.Process(context.Background(), records(tc.value)); !errors.Is(err, transform.ErrBroken) {
				t.Fatalf("second batch: err = %v", err)
			}
			if n := failedCalls(s.Stats()); n != 25 {
				t.Fatalf("%d failed calls after the second batch, want 25", n)
			}
			if st := s.Stats(); st.Broken != 2 {
				t.Fatalf("stats %+v", st)
			}
			// A call that succeeds resets the count: the module works again.
			if _, err := s.Process(context.Background(), records("a")); err != nil {
				t.Fatal(err)
			}
			if res, err := s.Process(context.Background(), records("a", tc.value)); err != nil || len(res.Rejected) != 1 {
				t.Fatalf("mixed batch: %v %+v", err, res)
			}
		})
	}
}

// Poison records spread over a batch are isolated, not taken for a broken module.
func TestSparsePoisonIsNotBroken(t *testing.T) {
	h, _ := newHost(t)
	s := newStage(t, h, hostileWasm, wasmhost.StageConfig{Name: "t", Instances: 1})
	vals := repeat("a", 1024)
	for _, i := range []int{0, 1, 511, 1023} {
		vals[i] = "trap"
	}
	res, err := s.Process(context.Background(), records(vals...))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rejected) != 4 || res.Rejected[0].Input != 0 || res.Rejected[1].Input != 1 || res.Rejected[2].Input != 511 || res.Rejected[3].Input != 1023 {
		t.Fatalf("rejected %+v", res.Rejected)
	}
	if len(res.Actions) != 1024 || countPass(res) != 1020 {
		t.Fatalf("%d actions, %d passed", len(res.Actions), countPass(res))
	}
}

// Sixteen poison records evenly spaced in 1,024 fail every call down to segments of 64 records
// (31 failed calls before the first success): they are all isolated, not taken for a broken
// module.
func TestEvenlySpacedPoisonIsIsolated(t *testing.T) {
	h, _ := newHost(t)
	s := newStage(t, h, hostileWasm, wasmhost.StageConfig{Name: "t", Instances: 1})
	vals := repeat("a", 1024)
	for i := 32; i < 1024; i += 64 {
		vals[i] = "trap"
	}
	res, err := s.Process(context.Background(), records(vals...))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rejected) != 16 || countPass(res) != 1008 {
		t.Fatalf("%d rejected, %d passed", len(res.Rejected), countPass(res))
	}
	for k, r := range res.Rejected {
		if r.Input != 32+64*k || r.Code != wasmhost.CodeTrap {
			t.Fatalf("rejected %d: %+v", k, r)
		}
	}
	if st := s.Stats(); st.Broken != 0 || st.Poison != 16 {
		t.Fatalf("stats %+v", st)
	}
}

// Calls that overran their deadline are budgeted per batch, 16·(2+⌈log2 n⌉): a module that loops
// on nearly every record is stopped although successful calls keep interrupting the failures.
func TestDeadlineBudgetPerBatch(t *testing.T) {
	h, _ := newHost(t)
	s := newStage(t, h, hostileWasm, wasmhost.StageConfig{Name: "t", Instances: 1, Timeout: 10 * time.Millisecond})
	vals := repeat("loop", 128)
	vals[0] = "a" // one success early, so that only the budget can stop the batch
	_, err := s.Process(context.Background(), records(vals...))
	if !errors.Is(err, transform.ErrBroken) || !strings.Contains(err.Error(), "145 guest calls overran their deadline on one batch, over its budget of 144") {
		t.Fatalf("err = %v", err)
	}
	if st := s.Stats(); st.Timeouts != 145 {
		t.Fatalf("%d deadline failures, want 145", st.Timeouts)
	}
}

// Batches of one record cannot reach the limit of failed calls in one batch: after three batches in a row without a
// successful call (two failed calls each, the frame and its retry), the first failed call of the
// fourth reports the stage broken.
func TestBrokenAcrossSmallBatches(t *testing.T) {
	h, _ := newHost(t)
	s := newStage(t, h, hostileWasm, wasmhost.StageConfig{Name: "t", Instances: 1})
	for i := 0; i < 3; i++ {
		res, err := s.Process(context.Background(), records("trap"))
		if err != nil || len(res.Rejected) != 1 {
			t.Fatalf("batch %d: %v %+v", i, err, res)
		}
	}
	if _, err := s.Process(context.Background(), records("trap")); !errors.Is(err, transform.ErrBroken) {
		t.Fatalf("fourth batch: err = %v", err)
	}
	if n := failedCalls(s.Stats()); n != 7 {
		t.Fatalf("%d failed calls, want 7", n)
	}
}
