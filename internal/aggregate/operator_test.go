package aggregate

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	bolt "go.etcd.io/bbolt"

	"github.com/sluicehq/sluice/runtime/transform"
	"github.com/sluicehq/sluice/sdk/go/abi"
	"github.com/sluicehq/sluice/sdk/go/connector"
	"github.com/sluicehq/sluice/sdk/go/template"
)

// sumGuest is an aggregate guest in Go for the operator's tests: its state is {count u64, sum
// f64} over the value's "v"; a record without one is rejected; a negative v is also emitted
// on port "alerts".
type sumGuest struct {
	name    string
	version int
	steps   int
}

func (g *sumGuest) Name() string                    { return "sum" }
func (g *sumGuest) Module() (string, int)           { return g.name, g.version }
func (g *sumGuest) CanMerge() bool                  { return true }
func (g *sumGuest) Close(ctx context.Context) error { return nil }

func decodeSum(st []byte) (uint64, float64) {
	if len(st) == 0 {
		return 0, 0
	}
	return binary.LittleEndian.Uint64(st), math.Float64frombits(binary.LittleEndian.Uint64(st[8:]))
}

func encodeSum(c uint64, s float64) []byte {
	b := make([]byte, 16)
	binary.LittleEndian.PutUint64(b, c)
	binary.LittleEndian.PutUint64(b[8:], math.Float64bits(s))
	return b
}

func (g *sumGuest) Step(ctx context.Context, inputs []connector.Record, recs []abi.AggRecord, slots []abi.Slot) (transform.StepResult, error) {
	g.steps++
	var out transform.StepResult
	out.Actions = make([]transform.Action, len(inputs))
	cur := make([][]byte, len(slots))
	changed := make([]bool, len(slots))
	for i := range slots {
		cur[i] = slots[i].State
	}
	for _, r := range recs {
		raw, ok, _ := template.Lookup(r.Value, []string{"v"})
		v, err := strconv.ParseFloat(string(raw), 64)
		if !ok || err != nil {
			out.Actions[r.Seq] = transform.Reject
			out.Rejected = append(out.Rejected, transform.Rejected{Input: int(r.Seq), Code: 2, Reason: "v: missing"})
			continue
		}
		c, s := decodeSum(cur[r.Slot])
		cur[r.Slot], changed[r.Slot] = encodeSum(c+1, s+v), true
		if v < 0 && out.Actions[r.Seq] != transform.Emit {
			out.Actions[r.Seq] = transform.Emit
			out.Emitted = append(out.Emitted, transform.Emitted{Input: int(r.Seq), Port: "alerts", Record: connector.Record{Value: []byte(fmt.Sprintf(`{"neg":%s}`, raw))}})
		} else if out.Actions[r.Seq] != transform.Emit {
			out.Actions[r.Seq] = transform.Drop
		}
	}
	for i, ch := range changed {
		if ch {
			out.States = append(out.States, transform.StateChange{Slot: i, State: cur[i]})
		}
	}
	return out, nil
}

func (g *sumGuest) Emit(ctx context.Context, slots []abi.Slot) (transform.EmitResult, error) {
	var out transform.EmitResult
	for i, s := range slots {
		c, sum := decodeSum(s.State)
		v, _ := json.Marshal(map[string]any{"key": string(s.Key), "start": s.Start, "end": s.End, "count": c, "sum": sum, "final": s.Final})
		out.Records = append(out.Records, transform.SlotRecord{Slot: i, Port: "main", Record: connector.Record{Key: s.Key, Value: v}})
	}
	return out, nil
}

func (g *sumGuest) Merge(ctx context.Context, slots []abi.Slot) ([]transform.StateChange, error) {
	var out []transform.StateChange
	for i, s := range slots {
		c1, s1 := decodeSum(s.State)
		c2, s2 := decodeSum(s.Other)
		out = append(out, transform.StateChange{Slot: i, State: encodeSum(c1+c2, s1+s2)})
	}
	return out, nil
}

func testMetrics() Metrics {
	return Metrics{Late: prometheus.NewCounter(prometheus.CounterOpts{Name: "l"}), WindowsClosed: prometheus.NewCounter(prometheus.CounterOpts{Name: "w"}),
		Slots: prometheus.NewGauge(prometheus.GaugeOpts{Name: "s"}), StateBytes: prometheus.NewGauge(prometheus.GaugeOpts{Name: "b"}),
		Spilled: prometheus.NewGauge(prometheus.GaugeOpts{Name: "sp"}), Watermark: prometheus.NewGauge(prometheus.GaugeOpts{Name: "wm"})}
}

func openDB(t *testing.T, dir string) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(filepath.Join(dir, "state.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func mustPath(s string) Path {
	p, err := ParsePath(s)
	if err != nil {
		panic(err)
	}
	return p
}

func rec(i int, key string, ts int64, v float64) connector.Record {
	return connector.Record{Value: []byte(fmt.Sprintf(`{"k":%q,"ts":%d,"v":%s}`, key, ts, strconv.FormatFloat(v, 'g', -1, 64))),
		Position: connector.Position{Offset: int64(i)}}
}

// window is one expected or emitted aggregate.
type window struct {
	Key        string
	Start, End int64
	Count      uint64
	Sum        float64
}

func decodeOuts(t *testing.T, outs []Out) []window {
	t.Helper()
	var ws []window
	for _, o := range outs {
		var w struct {
			Key   string  `json:"key"`
			Start int64   `json:"start"`
			End   int64   `json:"end"`
			Count uint64  `json:"count"`
			Sum   float64 `json:"sum"`
		}
		if err := json.Unmarshal(o.Record.Value, &w); err != nil {
			t.Fatal(err)
		}
		ws = append(ws, window{w.Key, w.Start, w.End, w.Count, w.Sum})
	}
	return ws
}

func sortWindows(ws []window) {
	sort.Slice(ws, func(i, j int) bool {
		if ws[i].Start != ws[j].Start {
			return ws[i].Start < ws[j].Start
		}
		return ws[i].Key < ws[j].Key
	})
}

// dataset makes n records over keys with event times that mostly move forward, some out of
// order by up to 3s; the values are small integers so sums are exact.
func dataset(n, keys int, seed uint64) []connector.Record {
	r := rand.New(rand.NewPCG(seed, 1))
	var out []connector.Record
	ts := int64(1_700_000_000_000)
	for i := 0; i < n; i++ {
		ts += int64(r.IntN(400))
		t := ts - int64(r.IntN(3000))
		if r.IntN(60) == 0 {
			t -= 60_000 + int64(r.IntN(5000)) // now and then far behind: late
		}
		out = append(out, rec(i, fmt.Sprintf("k%d", r.IntN(keys)), t, float64(r.IntN(100))))
	}
	return out
}

// expectTumbling computes, independently of the operator, the windows a tumbling stage with the
// given lateness emits, and which records are late: a record is late when its window ended at
// or before the watermark (the largest time seen before it, minus lateness).
func expectTumbling(recs []connector.Record, size, lateness int64) (ws []window, late []int) {
	type k struct {
		key   string
		start int64
	}
	acc := map[k]*window{}
	maxTs := int64(math.MinInt64)
	for i, r := range recs {
		var v struct {
			K  string  `json:"k"`
			TS int64   `json:"ts"`
			V  float64 `json:"v"`
		}
		_ = json.Unmarshal(r.Value, &v)
		start := v.TS - ((v.TS%size)+size)%size
		wm := int64(math.MinInt64)
		if maxTs != math.MinInt64 {
			wm = maxTs - lateness
		}
		if start+size <= wm {
			late = append(late, i)
			continue
		}
		w := acc[k{v.K, start}]
		if w == nil {
			w = &window{Key: v.K, Start: start, End: start + size}
			acc[k{v.K, start}] = w
		}
		w.Count++
		w.Sum += v.V
		maxTs = max(maxTs, v.TS)
	}
	for _, w := range acc {
		ws = append(ws, *w)
	}
	sortWindows(ws)
	return ws, late
}

func tumblingConfig() Config {
	return Config{Key: mustPath("$.k"), Time: mustPath("$.ts"), Window: Window{Kind: Tumbling, Size: time.Minute}, Lateness: 2 * time.Second}
}

// run feeds recs in batches of the given sizes; commitEvery > 0 commits through every that many
// batches. It returns the outputs and late inputs (by offset).
func feed(t *testing.T, o *Operator, db *bolt.DB, recs []connector.Record, batch int, first uint64, flush bool) ([]window, []int64) {
	t.Helper()
	ctx := context.Background()
	var outs []Out
	var late []int64
	id := first
	for lo := 0; lo < len(recs); lo += batch {
		hi := min(lo+batch, len(recs))
		res, err := o.Process(ctx, id, recs[lo:hi])
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range res.Letters {
			late = append(late, recs[lo+l.Input].Position.Offset)
		}
		outs = append(outs, res.Out...)
		commit(t, o, db, id)
		id++
	}
	if flush {
		res, err := o.Flush(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		outs = append(outs, res.Out...)
		commit(t, o, db, id)
	}
	ws := decodeOuts(t, outs)
	sortWindows(ws)
	return ws, late
}

func commit(t *testing.T, o *Operator, db *bolt.DB, through uint64) {
	t.Helper()
	c := o.Committable(through)
	if c == nil {
		return
	}
	if err := db.Update(c.Write); err != nil {
		t.Fatal(err)
	}
	c.Done()
}

func TestTumblingWindowsMatchAnIndependentComputation(t *testing.T) {
	recs := dataset(5000, 7, 1)
	want, wantLate := expectTumbling(recs, 60_000, 2000)
	if len(wantLate) == 0 {
		t.Fatal("the dataset has no late records; the test would not check them")
	}
	db := openDB(t, t.TempDir())
	defer db.Close()
	o, err := New(tumblingConfig(), &sumGuest{name: "sum"}, Store{DB: db}, "p", "stats", testMetrics())
	if err != nil {
		t.Fatal(err)
	}
	got, late := feed(t, o, db, recs, 97, 1, true)
	if !slices.Equal(got, want) {
		t.Fatalf("windows differ: got %d, want %d\nfirst got %+v\nfirst want %+v", len(got), len(want), got[:min(3, len(got))], want[:min(3, len(want))])
	}
	var wl []int64
	for _, i := range wantLate {
		wl = append(wl, recs[i].Position.Offset)
	}
	if !slices.Equal(late, wl) {
		t.Fatalf("late records: got %v, want %v", late, wl)
	}
}

// A restart from the store at any batch resumes with exactly the state of the positions saved
// with it: the run's windows equal an uninterrupted run's.
func TestRestartAtAnyBatchGivesTheSameWindows(t *testing.T) {
	recs := dataset(3000, 5, 2)
	want, _ := expectTumbling(recs, 60_000, 2000)
	const batch = 50
	for _, cut := range []int{1, 7, 23, 41, 59} {
		dir := t.TempDir()
		db := openDB(t, dir)
		o, err := New(tumblingConfig(), &sumGuest{name: "sum"}, Store{DB: db}, "p", "stats", testMetrics())
		if err != nil {
			t.Fatal(err)
		}
		// First process: cut batches, of which the last few are processed but not committed
		// (as when the process dies with batches in flight); their outputs are lost with them
		// unless committed, exactly as the engine would deliver them again.
		ctx := context.Background()
		var outs []Out
		committed := 0
		for b := 0; b < cut; b++ {
			res, err := o.Process(ctx, uint64(b+1), recs[b*batch:(b+1)*batch])
			if err != nil {
				t.Fatal(err)
			}
			if b < cut-3 {
				commit(t, o, db, uint64(b+1))
				outs = append(outs, res.Out...)
				committed = b + 1
			}
		}
		db.Close()
		db = openDB(t, dir)
		o2, err := New(tumblingConfig(), &sumGuest{name: "sum"}, Store{DB: db}, "p", "stats", testMetrics())
		if err != nil {
			t.Fatal(err)
		}
		if err := o2.Restore(); err != nil {
			t.Fatal(err)
		}
		rest, _ := feed(t, o2, db, recs[committed*batch:], batch, 1000, true)
		got := append(decodeOuts(t, outs), rest...)
		sortWindows(got)
		db.Close()
		if !slices.Equal(got, want) {
			t.Fatalf("cut at batch %d (committed %d): %d windows, want %d", cut, committed, len(got), len(want))
		}
	}
}

func TestSpilledStateReadsBack(t *testing.T) {
	recs := dataset(4000, 300, 3)
	want, _ := expectTumbling(recs, 60_000, 2000)
	db := openDB(t, t.TempDir())
	defer db.Close()
	cfg := tumblingConfig()
	cfg.MemoryBytes = 16 * 20 // about 20 slots' blobs
	o, err := New(cfg, &sumGuest{name: "sum"}, Store{DB: db}, "p", "stats", testMetrics())
	if err != nil {
		t.Fatal(err)
	}
	spilledOnce := false
	ctx := context.Background()
	var outs []Out
	for b := 0; b*40 < len(recs); b++ {
		res, err := o.Process(ctx, uint64(b+1), recs[b*40:min((b+1)*40, len(recs))])
		if err != nil {
			t.Fatal(err)
		}
		outs = append(outs, res.Out...)
		commit(t, o, db, uint64(b+1))
		spilledOnce = spilledOnce || o.spilled > 0
	}
	res, err := o.Flush(ctx, 10_000)
	if err != nil {
		t.Fatal(err)
	}
	outs = append(outs, res.Out...)
	if !spilledOnce {
		t.Fatal("no slot was ever spilled; the bound does not work or the test is too small")
	}
	got := decodeOuts(t, outs)
	sortWindows(got)
	if !slices.Equal(got, want) {
		t.Fatalf("%d windows, want %d", len(got), len(want))
	}
}

func TestHoppingWindowsHoldEveryRecordInEachWindow(t *testing.T) {
	db := openDB(t, t.TempDir())
	defer db.Close()
	cfg := Config{Key: mustPath("$.k"), Time: mustPath("$.ts"), Window: Window{Kind: Hopping, Size: 3 * time.Second, Every: time.Second}}
	o, err := New(cfg, &sumGuest{name: "sum"}, Store{DB: db}, "p", "h", testMetrics())
	if err != nil {
		t.Fatal(err)
	}
	recs := []connector.Record{rec(0, "a", 500, 1), rec(1, "a", 1500, 2), rec(2, "a", 2500, 4), rec(3, "a", 3500, 8)}
	got, _ := feed(t, o, db, recs, 2, 1, true)
	want := []window{
		{"a", -2000, 1000, 1, 1}, {"a", -1000, 2000, 2, 3}, {"a", 0, 3000, 3, 7},
		{"a", 1000, 4000, 3, 14}, {"a", 2000, 5000, 2, 12}, {"a", 3000, 6000, 1, 8},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
}

func TestSessionsMergeWhenARecordBridgesThem(t *testing.T) {
	db := openDB(t, t.TempDir())
	defer db.Close()
	cfg := Config{Key: mustPath("$.k"), Time: mustPath("$.ts"), Window: Window{Kind: Session, Gap: time.Second}, Lateness: 10 * time.Second}
	o, err := New(cfg, &sumGuest{name: "sum"}, Store{DB: db}, "p", "s", testMetrics())
	if err != nil {
		t.Fatal(err)
	}
	// Two sessions of a (0..1000 and 1800..2800), bridged by 900; b alone; then a gap.
	recs := []connector.Record{rec(0, "a", 0, 1), rec(1, "a", 1800, 2), rec(2, "b", 100, 4), rec(3, "a", 900, 8), rec(4, "a", 9000, 16)}
	got, _ := feed(t, o, db, recs, 1, 1, true)
	want := []window{{"a", 0, 2800, 3, 11}, {"b", 100, 1100, 1, 4}, {"a", 9000, 10000, 1, 16}}
	sortWindows(want)
	if !slices.Equal(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
}

func TestKeysWithoutWindowExpireByTTL(t *testing.T) {
	db := openDB(t, t.TempDir())
	defer db.Close()
	cfg := Config{Key: mustPath("$.k"), Time: mustPath("$.ts"), TTL: 10 * time.Second}
	g := &sumGuest{name: "sum"}
	o, err := New(cfg, g, Store{DB: db}, "p", "d", testMetrics())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// a at 0 and 5s share a slot; at 16s it was idle 11s: a new slot. b keeps a's time moving.
	recs := []connector.Record{rec(0, "a", 0, 1), rec(1, "a", 5000, 2), rec(2, "b", 12000, 1), rec(3, "a", 16000, 4)}
	for i, r := range recs {
		if _, err := o.Process(ctx, uint64(i+1), []connector.Record{r}); err != nil {
			t.Fatal(err)
		}
	}
	s := o.parts[""].slots.get(slotID{key: "a"})
	if c, sum := decodeSum(s.state); c != 1 || sum != 4 {
		t.Fatalf("slot a after its TTL: count %d sum %v, want a fresh slot with 1 and 4", c, sum)
	}
	// A watermark far ahead sweeps both.
	if _, err := o.Process(ctx, 10, []connector.Record{rec(4, "c", 100_000, 1)}); err != nil {
		t.Fatal(err)
	}
	if o.parts[""].slots.get(slotID{key: "a"}) != nil {
		t.Fatal("slot a outlived its TTL")
	}
}

func TestRejectsAndAlertsOfTheGuestAndTheHost(t *testing.T) {
	db := openDB(t, t.TempDir())
	defer db.Close()
	cfg := tumblingConfig()
	cfg.Late, cfg.LatePort = LatePort, "late"
	o, err := New(cfg, &sumGuest{name: "sum"}, Store{DB: db}, "p", "stats", testMetrics())
	if err != nil {
		t.Fatal(err)
	}
	recs := []connector.Record{
		{Value: []byte(`{"ts":1}`)},                         // no key: the host rejects it
		{Value: []byte(`{"k":"a","ts":"yesterday","v":1}`)}, // bad time
		{Value: []byte(`{"k":"a","ts":1000}`)},              // no v: the guest rejects it
		{Value: []byte(`{"k":"a","ts":2000,"v":-5}`)},       // an alert
		{Value: []byte(`{"k":"a","ts":600000,"v":1}`)},      // moves the watermark
		{Value: []byte(`{"k":"a","ts":3000,"v":1}`)},        // late: to port "late"
	}
	res, err := o.Process(context.Background(), 1, recs)
	if err != nil {
		t.Fatal(err)
	}
	wantActions := []transform.Action{transform.Reject, transform.Reject, transform.Reject, transform.Emit, transform.Drop, transform.Emit}
	if !slices.Equal(res.Actions, wantActions) {
		t.Fatalf("actions %v, want %v", res.Actions, wantActions)
	}
	if len(res.Rejected) != 3 || res.Rejected[0].Code != abi.CodeAggregateInput || res.Rejected[0].Reason != "aggregate: key $.k is missing" ||
		res.Rejected[1].Code != abi.CodeAggregateInput || res.Rejected[2].Code != 2 {
		t.Fatalf("rejected %+v", res.Rejected)
	}
	if len(res.Emitted) != 2 || res.Emitted[0].Port != "alerts" || res.Emitted[1].Port != "late" || res.Emitted[1].Input != 5 {
		t.Fatalf("emitted %+v", res.Emitted)
	}
	if len(res.Out) != 1 || res.Out[0].At != 4 {
		t.Fatalf("the window of a should close at the record that moved the watermark: %+v", res.Out)
	}
}

func TestStateOfAnotherModuleIsRefused(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, dir)
	o, err := New(tumblingConfig(), &sumGuest{name: "sum", version: 1}, Store{DB: db}, "p", "stats", testMetrics())
	if err != nil {
		t.Fatal(err)
	}
	feed(t, o, db, dataset(100, 3, 4), 10, 1, false)
	o2, _ := New(tumblingConfig(), &sumGuest{name: "sum", version: 2}, Store{DB: db}, "p", "stats", testMetrics())
	err = o2.Restore()
	if !errors.Is(err, ErrStateMismatch) {
		t.Fatalf("err = %v, want ErrStateMismatch", err)
	}
	t.Log(err)
	// A damaged record is named.
	_ = db.Update(func(tx *bolt.Tx) error {
		sb, err := tx.Bucket(bucketName("p", "stats")).CreateBucketIfNotExists(slotsBucket)
		if err != nil {
			return err
		}
		return sb.Put(slotKey(slotID{key: "zz", start: 1}), []byte{9, 9})
	})
	o3, _ := New(tumblingConfig(), &sumGuest{name: "sum", version: 1}, Store{DB: db}, "p", "stats", testMetrics())
	if err := o3.Restore(); err == nil || !contains(err.Error(), `key "zz" is damaged`) {
		t.Fatalf("err = %v", err)
	}
	db.Close()
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func TestParsePath(t *testing.T) {
	for in, want := range map[string]Path{"$": {}, "$.a": {"a"}, "$.a.b": {"a", "b"}, "$.items[0].sku": {"items", "0", "sku"}, "$['odd key'].x": {"odd key", "x"}} {
		got, err := ParsePath(in)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("ParsePath(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"a", "$.", "$[x]", "$['a'", "$..a", "$a"} {
		if _, err := ParsePath(bad); err == nil {
			t.Errorf("ParsePath(%q) succeeded", bad)
		}
	}
}

// TTL expiry does not depend on how records are batched: one record per batch and random
// batches leave every key with the same state, out-of-order records and TTLs passed inside a
// batch included.
func TestTTLDoesNotDependOnBatching(t *testing.T) {
	recs := dataset(4000, 9, 21)
	final := func(batches func() int) map[string][2]float64 {
		db := openDB(t, t.TempDir())
		defer db.Close()
		cfg := Config{Key: mustPath("$.k"), Time: mustPath("$.ts"), TTL: 2 * time.Second}
		o, err := New(cfg, &sumGuest{name: "sum"}, Store{DB: db}, "p", "d", testMetrics())
		if err != nil {
			t.Fatal(err)
		}
		id := uint64(0)
		for lo := 0; lo < len(recs); {
			hi := min(lo+batches(), len(recs))
			id++
			if _, err := o.Process(context.Background(), id, recs[lo:hi]); err != nil {
				t.Fatal(err)
			}
			lo = hi
		}
		out := map[string][2]float64{}
		for k, s := range o.parts[""].slots.all {
			c, sum := decodeSum(s.state)
			out[k.key] = [2]float64{float64(c), sum}
		}
		return out
	}
	one := final(func() int { return 1 })
	r := rand.New(rand.NewPCG(3, 3))
	for trial := 0; trial < 5; trial++ {
		got := final(func() int { return 1 + r.IntN(300) })
		if fmt.Sprint(got) != fmt.Sprint(one) {
			t.Fatalf("trial %d: state %v\nwith one record per batch %v", trial, got, one)
		}
	}
}
