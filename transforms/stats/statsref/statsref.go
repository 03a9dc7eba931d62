// Package statsref computes, for tests, the windows the stats module emits on tumbling windows,
// independently of the module and of the host: a record is late when its window ended at or
// before the watermark (the largest event time before it, minus the allowed lateness); the rows
// use two-pass formulas (population standard deviation), and first and last are the values of
// the smallest and largest event time.
package statsref

import (
	"math"
	"testing"
)

// Input is one record: its key, its price (NaN for a record whose price is not a number, which
// the module rejects but whose time still moves the watermark) and its event time.
type Input struct {
	Key   string
	Price float64
	TS    int64
}

// Row is one output of stats.
type Row struct {
	Key         string  `json:"key"`
	WindowStart int64   `json:"window_start"`
	WindowEnd   int64   `json:"window_end"`
	Count       int64   `json:"count"`
	Min         float64 `json:"min"`
	Max         float64 `json:"max"`
	Mean        float64 `json:"mean"`
	Stddev      float64 `json:"stddev"`
	First       float64 `json:"first"`
	Last        float64 `json:"last"`
}

// Window names a row.
type Window struct {
	Key   string
	Start int64
}

// Fates of inputs besides being folded.
const (
	Late     = "late"
	Rejected = "rejected"
)

// Expect returns the rows of the windows closed by the final watermark (every window when flush
// is set: the end of a bounded input), and each input's fate: "" (folded), Late or Rejected.
// Inputs are in the order the stage reads them; event times should be unique per key so that
// first and last are well defined.
func Expect(in []Input, size, lateness int64, flush bool) (map[Window]Row, []string) {
	type acc struct {
		vals            []float64
		firstTs, lastTs int64
		first, last     float64
	}
	accs := map[Window]*acc{}
	fates := make([]string, len(in))
	maxTs := int64(math.MinInt64)
	for i, r := range in {
		start := r.TS - ((r.TS%size)+size)%size
		if maxTs != math.MinInt64 && start+size <= maxTs-lateness {
			fates[i] = Late
			continue
		}
		maxTs = max(maxTs, r.TS)
		if math.IsNaN(r.Price) {
			fates[i] = Rejected
			continue
		}
		k := Window{r.Key, start}
		a := accs[k]
		if a == nil {
			a = &acc{firstTs: math.MaxInt64, lastTs: math.MinInt64}
			accs[k] = a
		}
		a.vals = append(a.vals, r.Price)
		if r.TS < a.firstTs {
			a.firstTs, a.first = r.TS, r.Price
		}
		if r.TS > a.lastTs {
			a.lastTs, a.last = r.TS, r.Price
		}
	}
	out := map[Window]Row{}
	for k, a := range accs {
		if !flush && k.Start+size > maxTs-lateness {
			continue // still open at the end
		}
		sum, mn, mx := 0.0, math.Inf(1), math.Inf(-1)
		for _, v := range a.vals {
			sum += v
			mn, mx = math.Min(mn, v), math.Max(mx, v)
		}
		mean := sum / float64(len(a.vals))
		ss := 0.0
		for _, v := range a.vals {
			ss += (v - mean) * (v - mean)
		}
		out[k] = Row{Key: k.Key, WindowStart: k.Start, WindowEnd: k.Start + size, Count: int64(len(a.vals)), Min: mn, Max: mx,
			Mean: mean, Stddev: math.Sqrt(ss / float64(len(a.vals))), First: a.first, Last: a.last}
	}
	return out, fates
}

// Close reports whether two floats agree to 1e-9 relative: Welford's running mean and the
// two-pass mean round differently in the last bits.
func Close(a, b float64) bool {
	return math.Abs(a-b) <= 1e-9*math.Max(1, math.Max(math.Abs(a), math.Abs(b)))
}

// Check compares output rows with the expected ones: every expected window present, each row
// equal to its window's (count, min, max, first, last exactly; mean and stddev by Close),
// nothing else. It returns the number of rows repeated (after a restart).
func Check(t testing.TB, rows []Row, want map[Window]Row) int {
	t.Helper()
	seen := map[Window]int{}
	bad := 0
	for _, r := range rows {
		k := Window{r.Key, r.WindowStart}
		w, ok := want[k]
		switch {
		case !ok:
			t.Errorf("unexpected window %+v", r)
			bad++
		case r.WindowEnd != w.WindowEnd || r.Count != w.Count || r.Min != w.Min || r.Max != w.Max || r.First != w.First || r.Last != w.Last ||
			!Close(r.Mean, w.Mean) || !Close(r.Stddev, w.Stddev):
			t.Errorf("window %s@%d:\n got %+v\nwant %+v", r.Key, r.WindowStart, r, w)
			bad++
		}
		seen[k]++
		if bad > 10 {
			t.FailNow()
		}
	}
	dups := 0
	for k := range want {
		if seen[k] == 0 {
			t.Errorf("window %s@%d missing", k.Key, k.Start)
		}
		dups += max(seen[k]-1, 0)
	}
	return dups
}
