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

// A module that fails on every call is broken after the descent of bisection to the first record
// (2 + ⌈log2 n⌉ calls, 12 for 1,024 records) and 7 probes of single records spread over the batch,
// 19 calls, instead of bisecting every batch down to single records (about 2n+1 calls each).
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
			if !strings.HasPrefix(err.Error(), `stage is broken: all 8 records probed across the batch of 1024 failed alone and no guest call of the batch succeeded`) {
				t.Fatalf("err = %v", err)
			}
			if n := failedCalls(s.Stats()); n != 19 {
				t.Fatalf("%d failed calls, want 19", n)
			}
			// The next batch is refused after one more failed call.
			if _, err := s.Process(context.Background(), records(tc.value)); !errors.Is(err, transform.ErrBroken) {
				t.Fatalf("second batch: err = %v", err)
			}
			if n := failedCalls(s.Stats()); n != 20 {
				t.Fatalf("%d failed calls after the second batch, want 20", n)
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

// Defect 3: a run of poison records at the start of a batch is isolated whatever its length and
// the number of instances; before, 12 leading poison records in 1,024 made one instance report
// the stage broken (24 failed calls with none succeeding) while two instances isolated them.
func TestLeadingPoisonRunIsIsolated(t *testing.T) {
	for _, run := range []int{12, 30, 60, 500} {
		for _, inst := range []int{1, 2} {
			h, _ := newHost(t)
			s := newStage(t, h, hostileWasm, wasmhost.StageConfig{Name: "t", Instances: inst})
			vals := repeat("a", 1024)
			for i := range run {
				vals[i] = "trap"
			}
			res, err := s.Process(context.Background(), records(vals...))
			if err != nil {
				t.Fatalf("%d poison, %d instances: %v", run, inst, err)
			}
			if len(res.Rejected) != run || countPass(res) != 1024-run {
				t.Fatalf("%d poison, %d instances: %d rejected, %d passed", run, inst, len(res.Rejected), countPass(res))
			}
			for k, r := range res.Rejected {
				if r.Input != k {
					t.Fatalf("rejected %d: %+v", k, r)
				}
			}
			if st := s.Stats(); st.Broken != 0 {
				t.Fatalf("stats %+v", st)
			}
		}
	}
}

// A batch whose records fail alone at all 8 probed places, spread evenly over it, is broken: the
// answer depends on the records only.
func TestProbesAllFailingIsBroken(t *testing.T) {
	for _, inst := range []int{1, 2} {
		h, _ := newHost(t)
		s := newStage(t, h, hostileWasm, wasmhost.StageConfig{Name: "t", Instances: inst})
		vals := repeat("trap", 1024)
		vals[1] = "a" // not probed: the batch is still broken
		_, err := s.Process(context.Background(), records(vals...))
		if !errors.Is(err, transform.ErrBroken) {
			t.Fatalf("%d instances: err = %v", inst, err)
		}
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

// Defect 3: batches of one record (a slow stream) with a run of poison records are isolated;
// before, four poison records in a row made the stage broken ("no guest call succeeded in the
// last 3 batches nor in this one"). Each costs two failed calls (the frame and its retry), so 31
// in a row are 62 failed calls, under the limit of 64.
func TestPoisonRunInOneRecordBatches(t *testing.T) {
	h, _ := newHost(t)
	s := newStage(t, h, hostileWasm, wasmhost.StageConfig{Name: "t", Instances: 1})
	for round := 0; round < 2; round++ {
		for i := 0; i < 31; i++ {
			res, err := s.Process(context.Background(), records("trap"))
			if err != nil || len(res.Rejected) != 1 {
				t.Fatalf("round %d, batch %d: %v %+v", round, i, err, res)
			}
		}
		if res, err := s.Process(context.Background(), records("a")); err != nil || countPass(res) != 1 {
			t.Fatalf("round %d: %v %+v", round, err, res)
		}
	}
	if st := s.Stats(); st.Broken != 0 || st.Poison != 62 {
		t.Fatalf("stats %+v", st)
	}
}

// A module failing every call on batches of one record is broken after 64 failed calls in a row
// with no successful call between them: the first failed call of the 32nd batch that reaches it.
func TestBrokenAcrossSmallBatches(t *testing.T) {
	h, _ := newHost(t)
	s := newStage(t, h, hostileWasm, wasmhost.StageConfig{Name: "t", Instances: 1})
	for i := 0; i < 31; i++ {
		res, err := s.Process(context.Background(), records("trap"))
		if err != nil || len(res.Rejected) != 1 {
			t.Fatalf("batch %d: %v %+v", i, err, res)
		}
	}
	_, err := s.Process(context.Background(), records("trap"))
	if !errors.Is(err, transform.ErrBroken) || !strings.Contains(err.Error(), "64 guest calls in a row failed") {
		t.Fatalf("32nd batch: err = %v", err)
	}
	if n := failedCalls(s.Stats()); n != 64 {
		t.Fatalf("%d failed calls, want 64", n)
	}
}
