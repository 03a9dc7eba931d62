package main

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand"
	"strconv"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/sdk/go/abi"
	"github.com/sluicehq/sluice/sdk/go/aggregate"
)

func minute(k int64) aggregate.LocalSlot {
	return aggregate.LocalSlot{Start: k * 60000, End: (k + 1) * 60000}
}

func slotOf(key string, w aggregate.LocalSlot) aggregate.LocalSlot {
	w.Key = key
	return w
}

func price(v string) []byte { return []byte(`{"commodity":"x","price":` + v + `,"ts":1}`) }

func TestMeta(t *testing.T) {
	var m map[string]any
	if err := json.Unmarshal(aggregate.MetaJSON(), &m); err != nil {
		t.Fatal(err)
	}
	if m["name"] != "stats" || m["abi"] != "1.1" || m["state_version"] != 1.0 || m["kinds"].([]any)[0] != "aggregate" {
		t.Fatalf("meta %s", aggregate.MetaJSON())
	}
}

// TestOutput checks the emitted record byte for byte against values computed by hand.
func TestOutput(t *testing.T) {
	var h aggregate.Local
	w := slotOf("corn", minute(0))
	// Values 1, 2, 3, 4 folded in this order, at times 40, 10, 30, 20: first is 2 (time 10),
	// last 1 (time 40); mean 2.5; population variance ((1.5² + 0.5²) * 2) / 4 = 1.25.
	var recs []aggregate.LocalRecord
	for i, ts := range []int64{40, 10, 30, 20} {
		recs = append(recs, aggregate.LocalRecord{Slot: w, Value: price(strconv.Itoa(i + 1)), Time: ts})
	}
	out, err := h.Step(recs)
	if err != nil {
		t.Fatal(err)
	}
	for i, o := range out {
		if o.Action != abi.Drop {
			t.Fatalf("record %d: %v, want DROP", i, o.Action)
		}
	}
	if n := len(h.State(w)); n != 72 {
		t.Fatalf("state of %d bytes, want 72", n)
	}
	em, err := h.Emit(true, w)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"key":"corn","window_start":0,"window_end":60000,"count":4,"min":1,"max":4,"mean":2.5,"stddev":` +
		strconv.FormatFloat(math.Sqrt(1.25), 'g', -1, 64) + `,"first":2,"last":1}`
	if len(em) != 1 || string(em[0].Value) != want {
		t.Fatalf("emitted %+v\nwant %s", em, want)
	}
	e := em[0]
	if e.Port != "main" || !e.KeyInherited || e.Time != abi.NoTimestamp {
		t.Fatalf("emitted record: port %s, key inherited %v, time %d (want main, the slot's key, window_end - 1)", e.Port, e.KeyInherited, e.Time)
	}
	if h.Len() != 0 {
		t.Fatal("the final emit left the slot")
	}

	// One value: stddev 0. No window and a null key: nulls.
	one := aggregate.LocalSlot{KeyNull: true}
	if _, err := h.Step([]aggregate.LocalRecord{{Slot: one, Value: price(`"-0.5"`), Time: 7}}); err != nil {
		t.Fatal(err)
	}
	em, err = h.Emit(false, one)
	if err != nil {
		t.Fatal(err)
	}
	want = `{"key":null,"window_start":null,"window_end":null,"count":1,"min":-0.5,"max":-0.5,"mean":-0.5,"stddev":0,"first":-0.5,"last":-0.5}`
	if len(em) != 1 || string(em[0].Value) != want {
		t.Fatalf("emitted %+v\nwant %s", em, want)
	}
	if h.Len() != 1 {
		t.Fatal("an early update removed the slot")
	}
}

// expect is computed straight from the values, with the two-pass formulas.
type expect struct {
	count                  int
	min, max, mean, stddev float64
	first, last            float64
	firstTs, lastTs        int64
	values                 []float64
}

func (e *expect) add(x float64, ts int64) {
	if len(e.values) == 0 || ts < e.firstTs {
		e.first, e.firstTs = x, ts
	}
	if len(e.values) == 0 || ts >= e.lastTs {
		e.last, e.lastTs = x, ts
	}
	e.values = append(e.values, x)
}

func (e *expect) finish() {
	e.count = len(e.values)
	e.min, e.max = math.Inf(1), math.Inf(-1)
	sum := 0.0
	for _, v := range e.values {
		sum += v
		e.min, e.max = math.Min(e.min, v), math.Max(e.max, v)
	}
	e.mean = sum / float64(e.count)
	ss := 0.0
	for _, v := range e.values {
		ss += (v - e.mean) * (v - e.mean)
	}
	e.stddev = math.Sqrt(ss / float64(e.count))
}

func near(a, b float64) bool {
	return math.Abs(a-b) <= 1e-9*math.Max(1, math.Max(math.Abs(a), math.Abs(b)))
}

func check(t *testing.T, what string, value []byte, e *expect, key string, w aggregate.LocalSlot) {
	t.Helper()
	var got struct {
		Key         string
		WindowStart int64 `json:"window_start"`
		WindowEnd   int64 `json:"window_end"`
		Count       int
		Min, Max    float64
		Mean        float64
		Stddev      float64
		First, Last float64
	}
	dec := json.NewDecoder(bytes.NewReader(value))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("%s: %v: %s", what, err, value)
	}
	e.finish()
	if got.Key != key || got.WindowStart != w.Start || got.WindowEnd != w.End || got.Count != e.count ||
		got.Min != e.min || got.Max != e.max || !near(got.Mean, e.mean) || !near(got.Stddev, e.stddev) ||
		got.First != e.first || got.Last != e.last {
		t.Fatalf("%s: got %s\nwant count %d min %v max %v mean %v stddev %v first %v last %v", what, value,
			e.count, e.min, e.max, e.mean, e.stddev, e.first, e.last)
	}
}

// TestAgainstTwoPass folds random records of several keys and windows in frames of random sizes,
// with repeated times, and compares every window's output with the two-pass computation.
func TestAgainstTwoPass(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	keys := []string{"corn", "wheat", "soy"}
	h := aggregate.Local{Config: []byte(`{"field":"quote.bid"}`)}
	want := map[aggregate.LocalSlot]*expect{}
	var frame []aggregate.LocalRecord
	for i := 0; i < 5000; i++ {
		key := keys[rng.Intn(len(keys))]
		ts := int64(rng.Intn(40)) * 7500 // 8 times per minute window: many ties
		w := slotOf(key, minute(ts/60000))
		x := rng.NormFloat64()*50 + 1000
		if i%10 == 0 {
			x = math.Round(x) // integers too
		}
		text := strconv.FormatFloat(x, 'g', -1, 64)
		if i%3 == 0 {
			text = `"` + text + `"` // a numeric string
		}
		frame = append(frame, aggregate.LocalRecord{Slot: w, Value: []byte(`{"quote":{"bid":` + text + `}}`), Time: ts})
		if want[w] == nil {
			want[w] = &expect{}
		}
		want[w].add(x, ts)
		if rng.Intn(300) == 0 || i == 4999 {
			if _, err := h.Step(frame); err != nil {
				t.Fatal(err)
			}
			frame = frame[:0]
		}
	}
	for w, e := range want {
		em, err := h.Emit(true, w)
		if err != nil {
			t.Fatal(err)
		}
		if len(em) != 1 {
			t.Fatalf("%v: %d records", w, len(em))
		}
		check(t, w.Key+" "+strconv.FormatInt(w.Start, 10), em[0].Value, e, w.Key, w)
	}
}

// TestMerge: two sessions merged give what one slot of all their records gives; on equal times
// first is the earlier session's and last the later one's.
func TestMerge(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	var a, b, all aggregate.Local
	sa, sb := aggregate.LocalSlot{Key: "k", Start: 1, End: 2}, aggregate.LocalSlot{Key: "k", Start: 3, End: 4}
	e := &expect{}
	for i := 0; i < 400; i++ {
		x := rng.Float64()*10 - 5
		ts := int64(rng.Intn(5))
		r := aggregate.LocalRecord{Value: price(strconv.FormatFloat(x, 'g', -1, 64)), Time: ts}
		r.Slot = sb
		h := &b
		if i < 150 {
			r.Slot, h = sa, &a
		}
		if _, err := h.Step([]aggregate.LocalRecord{r}); err != nil {
			t.Fatal(err)
		}
		r.Slot = sa
		if _, err := all.Step([]aggregate.LocalRecord{r}); err != nil {
			t.Fatal(err)
		}
		e.add(x, ts)
	}
	res, err := aggregate.RunMerge(nil, []abi.Slot{{Start: 1, End: 4, Key: []byte("k"), State: a.State(sa), Other: b.State(sb)}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.States) != 1 || res.States[0].Delete {
		t.Fatalf("merge states %+v", res.States)
	}
	em, err := aggregate.RunEmit(nil, []abi.Slot{{Start: 1, End: 4, Key: []byte("k"), State: res.States[0].State, Final: true}})
	if err != nil {
		t.Fatal(err)
	}
	check(t, "merged", em.Emitted[0].Value, e, "k", aggregate.LocalSlot{Start: 1, End: 4})
	var m, one stats
	if err := m.decode(res.States[0].State); err != nil {
		t.Fatal(err)
	}
	if err := one.decode(all.State(sa)); err != nil {
		t.Fatal(err)
	}
	if m.count != one.count || !near(m.mean, one.mean) || !near(m.m2, one.m2) || m.min != one.min || m.max != one.max ||
		m.first != one.first || m.last != one.last {
		t.Fatalf("merged %+v\none slot %+v", m, one)
	}
}

func TestRejects(t *testing.T) {
	var h aggregate.Local
	w := slotOf("k", minute(0))
	values := []string{
		`{"price":5}`,
		`{"price":"abc"}`,
		`{"price":null}`,
		`{"cost":1}`,
		`{"price":1,"price":2}`,
		`{"price":1e999}`,
		`[1,2]`,
		`not json`,
		`{"price":"7"}`,
	}
	var recs []aggregate.LocalRecord
	for _, v := range values {
		recs = append(recs, aggregate.LocalRecord{Slot: w, Value: []byte(v), Time: 1})
	}
	out, err := h.Step(recs)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"DROP 0 ",
		"REJECT 2 price: must be a number or a string holding one",
		"REJECT 2 price: must be a number or a string holding one",
		"REJECT 2 price: missing",
		"REJECT 2 price: duplicate key",
		"REJECT 3 price: out of the range of a double",
		"REJECT 1 not a JSON object",
		"REJECT 1 not valid JSON",
		"DROP 0 ",
	}
	for i, o := range out {
		if got := o.Action.String() + " " + strconv.Itoa(int(o.Code)) + " " + o.Reason; got != want[i] {
			t.Errorf("%s: %s, want %s", values[i], got, want[i])
		}
	}
	em, err := h.Emit(true, w)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(em[0].Value), `"count":2,"min":5,"max":7`) {
		t.Fatalf("rejected records were folded: %s", em[0].Value)
	}
}

func TestConfig(t *testing.T) {
	w := slotOf("k", minute(0))
	for cfg, want := range map[string]string{
		`{"field":""}`:       "field: must not be empty",
		`{"field":"a..b"}`:   "empty path segment",
		`{"fields":"price"}`: "unknown field",
		`{"field":3}`:        "cannot unmarshal",
	} {
		h := aggregate.Local{Config: []byte(cfg)}
		if _, err := h.Step([]aggregate.LocalRecord{{Slot: w, Value: price("1")}}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an init error mentioning %q", cfg, err, want)
		}
	}
}
