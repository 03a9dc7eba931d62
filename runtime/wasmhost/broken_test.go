package wasmhost_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/runtime/transform"
	"github.com/sluicehq/sluice/runtime/wasmhost"
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

// A module that fails on every call is broken after a fixed number of calls, whatever the batch
// size, instead of bisecting every batch down to single records (about 2n+1 calls each).
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
			if !strings.HasPrefix(err.Error(), `stage is broken: 8 guest calls in a row failed`) {
				t.Fatalf("err = %v", err)
			}
			if n := failedCalls(s.Stats()); n != 8 {
				t.Fatalf("%d failed calls, want 8", n)
			}
			// The next batch is refused after one more failed call.
			if _, err := s.Process(context.Background(), records(tc.value)); !errors.Is(err, transform.ErrBroken) {
				t.Fatalf("second batch: err = %v", err)
			}
			if n := failedCalls(s.Stats()); n != 9 {
				t.Fatalf("%d failed calls after the second batch, want 9", n)
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

// Poison records dense enough to cost more failed calls than a batch's budget, although successful
// calls keep interrupting the failures, also make the stage broken.
func TestFailureBudgetPerBatch(t *testing.T) {
	h, _ := newHost(t)
	s := newStage(t, h, hostileWasm, wasmhost.StageConfig{Name: "t", Instances: 1})
	vals := repeat("a", 256)
	// Sixteen poison records placed so that no eight failed calls come in a row; isolating them
	// all would take 91 failed calls, over the budget of 8·(2+8) = 80.
	for _, i := range []int{46, 55, 58, 68, 77, 90, 117, 126, 128, 151, 187, 194, 214, 225, 243, 248} {
		vals[i] = "trap"
	}
	_, err := s.Process(context.Background(), records(vals...))
	if !errors.Is(err, transform.ErrBroken) || !strings.Contains(err.Error(), "81 guest calls failed on one batch, over its budget of 80") {
		t.Fatalf("err = %v", err)
	}
	if n := failedCalls(s.Stats()); n != 81 {
		t.Fatalf("%d failed calls, want 81", n)
	}
}

// Batches of one record carry the count from one batch to the next: each costs two failed calls
// (the frame and its retry), so the fourth is refused.
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
	if n := failedCalls(s.Stats()); n != 8 {
		t.Fatalf("%d failed calls, want 8", n)
	}
}
