package main

import (
	"encoding/json"
	"math"
	"math/rand"
	"strconv"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/sdk/go/abi"
	"github.com/sluicehq/sluice/sdk/go/aggregate"
)

func value(x float64) []byte {
	return []byte(`{"commodity":"c","price":` + strconv.FormatFloat(x, 'g', -1, 64) + `}`)
}

// reference is the test's own baseline: the values folded so far, and the exponentially weighted
// mean and variance by their recurrence.
type reference struct {
	values        []float64
	ewMean, ewVar float64
}

func (r *reference) add(x, alpha float64) {
	if len(r.values) == 0 {
		r.ewMean, r.ewVar = x, 0
	} else {
		d := x - r.ewMean
		r.ewMean += alpha * d
		r.ewVar = (1 - alpha) * (r.ewVar + alpha*d*d)
	}
	r.values = append(r.values, x)
}

// expected returns the mean and standard deviation by the two-pass formula (zscore) or the
// recurrence (ewma).
func (r *reference) expected(ewma bool) (float64, float64) {
	if ewma {
		return r.ewMean, math.Sqrt(r.ewVar)
	}
	sum := 0.0
	for _, v := range r.values {
		sum += v
	}
	mean := sum / float64(len(r.values))
	ss := 0.0
	for _, v := range r.values {
		ss += (v - mean) * (v - mean)
	}
	return mean, math.Sqrt(ss / float64(len(r.values)))
}

func near(a, b float64) bool {
	return math.Abs(a-b) <= 1e-6*math.Max(1, math.Max(math.Abs(a), math.Abs(b)))
}

type alertJSON struct {
	Key         *string
	Value       float64
	ExpectedMin float64 `json:"expected_min"`
	ExpectedMax float64 `json:"expected_max"`
	Mean        float64
	Stddev      float64
	Score       *float64
	Ts          *int64
}

// TestFlagsInjectedOutliers runs noisy series of two keys with injected outliers through the
// module in frames of random sizes: exactly the outliers are flagged, each with the record itself
// on main and an alert on alerts whose numbers match the test's own baseline; the noise passes.
func TestFlagsInjectedOutliers(t *testing.T) {
	for _, tc := range []struct {
		name   string
		config string
		ewma   bool
		thr    float64
		alpha  float64
	}{
		{"zscore", `{}`, false, 3, 0.1},
		{"ewma", `{"method":"ewma","threshold":4,"alpha":0.05,"min_samples":30}`, true, 4, 0.05},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewSource(3))
			levels := map[string]float64{"corn": 100, "wheat": 5000}
			noise := map[string]float64{"corn": 1, "wheat": 25}
			refs := map[string]*reference{"corn": {}, "wheat": {}}
			seen := map[string]int{}
			h := aggregate.Local{Config: []byte(tc.config)}
			type sent struct {
				key     string
				x       float64
				outlier bool
				ts      int64
			}
			var batch []sent
			flush := func() {
				recs := make([]aggregate.LocalRecord, len(batch))
				for i, s := range batch {
					recs[i] = aggregate.LocalRecord{Slot: aggregate.LocalSlot{Key: s.key}, Key: []byte("rk-" + s.key), Value: value(s.x), Time: s.ts}
				}
				out, err := h.Step(recs)
				if err != nil {
					t.Fatal(err)
				}
				for i, s := range batch {
					o, ref := out[i], refs[s.key]
					if !s.outlier {
						if o.Action != abi.Pass {
							t.Fatalf("%s %v (noise): %v %+v", s.key, s.x, o.Action, o.Emitted)
						}
						ref.add(s.x, tc.alpha)
						continue
					}
					if o.Action != abi.Emit || len(o.Emitted) != 2 {
						t.Fatalf("%s %v (outlier): %v %+v", s.key, s.x, o.Action, o.Emitted)
					}
					in, al := o.Emitted[0], o.Emitted[1]
					if in.Port != "main" || !in.ValueInherited || !in.KeyInherited || !in.HeadersInherited || in.Time != abi.NoTimestamp {
						t.Fatalf("the record itself: %+v", in)
					}
					if al.Port != "alerts" || string(al.Key) != s.key || al.KeyNull || !al.HeadersInherited {
						t.Fatalf("alert record: %+v", al)
					}
					var a alertJSON
					if err := json.Unmarshal(al.Value, &a); err != nil {
						t.Fatalf("%v: %s", err, al.Value)
					}
					mean, sd := ref.expected(tc.ewma)
					z := (s.x - mean) / sd
					if *a.Key != s.key || a.Value != s.x || !near(a.Mean, mean) || !near(a.Stddev, sd) || !near(*a.Score, z) ||
						!near(a.ExpectedMin, mean-tc.thr*sd) || !near(a.ExpectedMax, mean+tc.thr*sd) || *a.Ts != s.ts {
						t.Fatalf("alert %s\nwant mean %v stddev %v score %v", al.Value, mean, sd, z)
					}
				}
				batch = batch[:0]
			}
			outliers := 0
			for i := 0; i < 4000; i++ {
				key := "corn"
				if rng.Intn(3) == 0 {
					key = "wheat"
				}
				seen[key]++
				x := levels[key] + (2*rng.Float64()-1)*noise[key]
				outlier := seen[key] > 50 && rng.Intn(60) == 0
				if outlier {
					x = levels[key] + float64(15+rng.Intn(20))*noise[key]*float64(1-2*rng.Intn(2))
					outliers++
				}
				batch = append(batch, sent{key, x, outlier, int64(i) * 1000})
				if rng.Intn(200) == 0 {
					flush()
				}
			}
			flush()
			if outliers < 30 {
				t.Fatalf("only %d outliers injected", outliers)
			}
		})
	}
}

// TestBaseline: the first min_samples records pass whatever their value; an outlier leaves the
// baseline as it was; with no spread in the baseline any other value is an outlier (score null).
func TestBaseline(t *testing.T) {
	h := aggregate.Local{Config: []byte(`{"min_samples":3,"field":"v"}`)}
	k := aggregate.LocalSlot{Key: "k"}
	step := func(x string) aggregate.Outcome {
		t.Helper()
		out, err := h.Step([]aggregate.LocalRecord{{Slot: k, Value: []byte(`{"v":` + x + `}`), Time: 9}})
		if err != nil {
			t.Fatal(err)
		}
		return out[0]
	}
	for _, x := range []string{"5", "5", "5000"} { // warm-up: all pass
		if o := step(x); o.Action != abi.Pass {
			t.Fatalf("warm-up %s: %v", x, o.Action)
		}
	}
	if o := step("100000"); o.Action != abi.Emit {
		t.Fatalf("outlier: %v", o.Action)
	}
	before := string(h.State(k))
	if o := step("-100000"); o.Action != abi.Emit {
		t.Fatalf("outlier: %v", o.Action)
	}
	if string(h.State(k)) != before {
		t.Fatal("an outlier changed the baseline")
	}
	var b baseline
	if err := b.decode(h.State(k)); err != nil || b.count != 3 {
		t.Fatalf("baseline %+v %v", b, err)
	}

	flat := aggregate.LocalSlot{KeyNull: true}
	for i := 0; i < 3; i++ {
		if _, err := h.Step([]aggregate.LocalRecord{{Slot: flat, Value: []byte(`{"v":"7"}`), Time: aggregate.NoTimestamp}}); err != nil {
			t.Fatal(err)
		}
	}
	out, err := h.Step([]aggregate.LocalRecord{
		{Slot: flat, Value: []byte(`{"v":7}`)},
		{Slot: flat, Value: []byte(`{"v":7.5}`), Time: aggregate.NoTimestamp},
	})
	if err != nil {
		t.Fatal(err)
	}
	if out[0].Action != abi.Pass || out[1].Action != abi.Emit {
		t.Fatalf("flat baseline: %v %v", out[0].Action, out[1].Action)
	}
	al := out[1].Emitted[1]
	want := `{"key":null,"value":7.5,"expected_min":7,"expected_max":7,"mean":7,"stddev":0,"score":null,"ts":null}`
	if string(al.Value) != want || !al.KeyNull {
		t.Fatalf("alert %s (key null %v)\nwant  %s", al.Value, al.KeyNull, want)
	}
	em, err := h.Emit(true, k, flat)
	if err != nil || len(em) != 0 {
		t.Fatalf("emit: %+v %v", em, err)
	}
}

func TestRejects(t *testing.T) {
	h := aggregate.Local{}
	k := aggregate.LocalSlot{Key: "k"}
	out, err := h.Step([]aggregate.LocalRecord{
		{Slot: k, Value: []byte(`{"price":1}`)},
		{Slot: k, Value: []byte(`{"cost":1}`)},
		{Slot: k, Value: []byte(`{"price":"x"}`)},
		{Slot: k, Value: []byte(`nope`)},
	})
	if err != nil {
		t.Fatal(err)
	}
	got := []string{}
	for _, o := range out {
		got = append(got, o.Action.String()+" "+strconv.Itoa(int(o.Code))+" "+o.Reason)
	}
	want := "PASS 0 |REJECT 2 price: missing|REJECT 2 price: must be a number or a string holding one|REJECT 1 not valid JSON"
	if strings.Join(got, "|") != want {
		t.Fatalf("got %q\nwant %q", strings.Join(got, "|"), want)
	}
	var b baseline
	if err := b.decode(h.State(k)); err != nil || b.count != 1 {
		t.Fatalf("rejected records were folded: %+v %v", b, err)
	}
}

func TestConfig(t *testing.T) {
	for cfg, want := range map[string]string{
		`{"method":"mad"}`:     "method",
		`{"threshold":0}`:      "threshold",
		`{"threshold":-1}`:     "threshold",
		`{"min_samples":0}`:    "min_samples",
		`{"min_samples":2.5}`:  "cannot unmarshal",
		`{"alpha":0}`:          "alpha",
		`{"alpha":1.5}`:        "alpha",
		`{"field":"a."}`:       "empty path segment",
		`{"window":"1m"}`:      "unknown field",
		`{"threshold":"high"}`: "cannot unmarshal",
	} {
		h := aggregate.Local{Config: []byte(cfg)}
		if _, err := h.Step([]aggregate.LocalRecord{{Slot: aggregate.LocalSlot{Key: "k"}, Value: value(1)}}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an init error mentioning %q", cfg, err, want)
		}
	}
	var meta struct {
		Ports        []string
		StateVersion int `json:"state_version"`
	}
	if err := json.Unmarshal(aggregate.MetaJSON(), &meta); err != nil || strings.Join(meta.Ports, ",") != "main,alerts" || meta.StateVersion != 1 {
		t.Fatalf("meta %s", aggregate.MetaJSON())
	}
}

// TestMerge: the Welford parts of two merged baselines equal one baseline of all the values (the
// exponentially weighted parts are an approximation, see merge).
func TestMerge(t *testing.T) {
	var a, b, all aggregate.Local
	k := aggregate.LocalSlot{Key: "k"}
	rng := rand.New(rand.NewSource(4))
	for i := 0; i < 300; i++ {
		r := []aggregate.LocalRecord{{Slot: k, Value: value(50 + rng.Float64())}}
		h := &a
		if i%3 == 0 {
			h = &b
		}
		if _, err := h.Step(r); err != nil {
			t.Fatal(err)
		}
		if _, err := all.Step(r); err != nil {
			t.Fatal(err)
		}
	}
	res, err := aggregate.RunMerge(nil, []abi.Slot{{Start: 1, End: 2, Key: []byte("k"), State: a.State(k), Other: b.State(k)}})
	if err != nil {
		t.Fatal(err)
	}
	var m, one baseline
	if err := m.decode(res.States[0].State); err != nil {
		t.Fatal(err)
	}
	if err := one.decode(all.State(k)); err != nil {
		t.Fatal(err)
	}
	if m.count != one.count || !near(m.mean, one.mean) || !near(m.m2, one.m2) {
		t.Fatalf("merged %+v\none slot %+v", m, one)
	}
}
