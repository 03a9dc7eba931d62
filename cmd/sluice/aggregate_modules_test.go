package main_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluicehq/sluice/transforms/stats/statsref"

	"github.com/sluicehq/sluice/internal/testenv"
)

// The anomaly and dedupe modules, processing-time windows, early updates, the aggregate metrics
// and the manifest checks of aggregate stages, through the built binary. Expected outputs are
// computed here from the generated inputs.

// moduleWasm returns the path of a first-party module built by `make wasm-go`.
func moduleWasm(t *testing.T, name string) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	p := filepath.Join(filepath.Dir(file), "..", "..", "transforms", name, name+".wasm")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%v: run `make wasm-go`", err)
	}
	return p
}

func writeFile(t *testing.T, path, text string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// appendLines appends lines to path in one write.
func appendLines(t *testing.T, path string, ls []string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(strings.Join(ls, "\n") + "\n"); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// runToEnd runs `sluice run` on a pipeline with a bounded source until it exits, which must be
// with status 0.
func runToEnd(t *testing.T, dir, manifest string) {
	t.Helper()
	out, err := exec.Command(buildSluice(t), "run", "--data-dir", filepath.Join(dir, "data"), "--admin-addr", "", "--log-level", "warn", manifest).CombinedOutput()
	if err != nil {
		t.Fatalf("sluice run: %v\n%s", err, out)
	}
}

// running is a `sluice run` process started by startRun.
type running struct {
	cmd    *exec.Cmd
	stderr *testenv.Buffer
	done   chan struct{}
	err    error // set when done is closed
}

// startRun starts `sluice run` on manifest with the data directory dir/data and the admin server
// at admin ("" for none). The process is killed when the test ends, if it is still running.
func startRun(t *testing.T, dir, manifest, admin string) *running {
	t.Helper()
	return startSluice(t, nil, "run", "--data-dir", filepath.Join(dir, "data"), "--admin-addr", admin, "--log-level", "warn", manifest)
}

// startSluice starts the binary with args and env added to the test's environment, its stderr
// kept (safely read while it runs), and kills it when the test ends if it is still running.
func startSluice(t *testing.T, env []string, args ...string) *running {
	t.Helper()
	r := &running{stderr: &testenv.Buffer{}, done: make(chan struct{})}
	r.cmd = exec.Command(buildSluice(t), args...)
	if env != nil {
		r.cmd.Env = append(os.Environ(), env...)
	}
	r.cmd.Stderr = r.stderr
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.err = r.cmd.Wait(); close(r.done) }()
	t.Cleanup(func() {
		select {
		case <-r.done:
		default:
			_ = r.cmd.Process.Kill()
			<-r.done
		}
	})
	return r
}

// waitFor polls cond until it holds; it fails the test when the process exits first or after
// 30 s, with what and the process's stderr.
func (r *running) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		select {
		case <-r.done:
			if cond() {
				return
			}
			t.Fatalf("sluice run exited (%v) before %s; stderr:\n%s", r.err, what, r.stderr)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 30 s, still waiting for %s; stderr:\n%s", what, r.stderr)
		}
	}
}

// stop sends SIGTERM and waits for the process, which must exit with status 0.
func (r *running) stop(t *testing.T) {
	t.Helper()
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("sluice run did not stop within 30 s of SIGTERM; stderr:\n%s", r.stderr)
	}
	if r.err != nil {
		t.Fatalf("sluice run after SIGTERM: %v, want exit 0; stderr:\n%s", r.err, r.stderr)
	}
}

// relClose reports whether a and b agree to tol, relative to the larger of 1 and their sizes.
func relClose(a, b, tol float64) bool {
	return math.Abs(a-b) <= tol*math.Max(1, math.Max(math.Abs(a), math.Abs(b)))
}

// ---- anomaly ----

// anomalyInput is one generated price.
type anomalyInput struct {
	seq       int
	commodity string
	price     float64
	ts        int64
	outlier   bool // injected far outside the noise
	line      string
}

// writeAnomalyInput writes n prices of five commodities, each its level times 1 + 0.2% of
// Gaussian noise clipped at ±3σ, into dir/prices.jsonl. From each key's 40th record on, about one
// record in 150 is an outlier 25σ to 60σ away from the level (up or down), and gold has a burst of
// three outliers in a row (its records 300 to 302, counted from 0). Event times are unique.
func writeAnomalyInput(t *testing.T, dir string, n int, seed int64) (string, []anomalyInput) {
	t.Helper()
	rng := rand.New(rand.NewSource(seed))
	names := []string{"corn", "wheat", "gold", "crude_oil", "coffee"}
	level := map[string]float64{"corn": 450, "wheat": 600, "gold": 2300, "crude_oil": 80, "coffee": 190}
	const sigma = 0.002
	perKey := map[string]int{}
	base := int64(1_714_564_800_000)
	var in []anomalyInput
	var buf bytes.Buffer
	for i := 1; i <= n; i++ {
		c := names[rng.Intn(len(names))]
		k := perKey[c]
		perKey[c]++
		p := anomalyInput{seq: i, commodity: c, ts: base + int64(i)*100}
		if k >= 40 && (rng.Intn(150) == 0 || c == "gold" && k >= 300 && k <= 302) {
			p.outlier = true
			dev := 25 + rng.Float64()*35
			if rng.Intn(2) == 0 {
				dev = -dev
			}
			p.price = level[c] * (1 + sigma*dev)
		} else {
			z := math.Max(-3, math.Min(3, rng.NormFloat64()))
			p.price = level[c] * (1 + sigma*z)
		}
		p.line = fmt.Sprintf(`{"seq":%d,"commodity":%q,"price":%s,"ts":%d}`, i, c, strconv.FormatFloat(p.price, 'f', -1, 64), p.ts)
		buf.WriteString(p.line + "\n")
		in = append(in, p)
	}
	path := filepath.Join(dir, "prices.jsonl")
	writeFile(t, path, buf.String())
	return path, in
}

// anomalyAlert is the alert the test expects for one input.
type anomalyAlert struct {
	seq                 int
	key                 string
	value, mean, stddev float64
	score               float64
	ts                  int64
}

// expectAnomalies scores each input against its key's baseline before folding it, as the
// anomaly README describes: zscore with the mean and population standard deviation of the
// baseline's values (computed here in two passes), ewma with mean ← mean + α·d and
// var ← (1 − α)·(var + α·d²). Inputs are scored once the baseline holds minSamples values; an
// input whose |score| exceeds threshold is an outlier and is not folded. It returns the alerts
// by input seq.
func expectAnomalies(in []anomalyInput, method string, threshold float64, minSamples int, alpha float64) map[int]anomalyAlert {
	type ewma struct {
		n         int
		mean, vr  float64
		hasValues bool
	}
	values := map[string][]float64{}
	ew := map[string]*ewma{}
	alerts := map[int]anomalyAlert{}
	for _, p := range in {
		var mean, sd float64
		var n int
		switch method {
		case "zscore":
			vs := values[p.commodity]
			n = len(vs)
			if n > 0 {
				sum := 0.0
				for _, v := range vs {
					sum += v
				}
				mean = sum / float64(n)
				ss := 0.0
				for _, v := range vs {
					ss += (v - mean) * (v - mean)
				}
				sd = math.Sqrt(ss / float64(n))
			}
		case "ewma":
			e := ew[p.commodity]
			if e == nil {
				e = &ewma{}
				ew[p.commodity] = e
			}
			n, mean, sd = e.n, e.mean, math.Sqrt(e.vr)
		}
		if n >= minSamples {
			if z := (p.price - mean) / sd; math.Abs(z) > threshold {
				alerts[p.seq] = anomalyAlert{seq: p.seq, key: p.commodity, value: p.price, mean: mean, stddev: sd, score: z, ts: p.ts}
				continue
			}
		}
		switch method {
		case "zscore":
			values[p.commodity] = append(values[p.commodity], p.price)
		case "ewma":
			e := ew[p.commodity]
			if e.n == 0 {
				e.mean, e.vr = p.price, 0
			} else {
				d := p.price - e.mean
				e.mean += alpha * d
				e.vr = (1 - alpha) * (e.vr + alpha*d*d)
			}
			e.n++
		}
	}
	return alerts
}

// checkPassThrough checks that the main output holds every input line exactly once, unchanged,
// in input order within each key.
func checkPassThrough(t *testing.T, in []anomalyInput, out []string) {
	t.Helper()
	bySeq := map[int]anomalyInput{}
	for _, p := range in {
		bySeq[p.seq] = p
	}
	seen := map[int]int{}
	last := map[string]int{}
	bad := 0
	for i, l := range out {
		var v struct {
			Seq       int    `json:"seq"`
			Commodity string `json:"commodity"`
		}
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatalf("main output line %d %q: %v", i+1, l, err)
		}
		p, ok := bySeq[v.Seq]
		switch {
		case !ok:
			t.Errorf("main output line %d is no input: %q", i+1, l)
			bad++
		case l != p.line:
			t.Errorf("main output line %d:\n got %s\nwant %s", i+1, l, p.line)
			bad++
		case v.Seq <= last[v.Commodity]:
			t.Errorf("main output line %d: input %d of %s after input %d", i+1, v.Seq, v.Commodity, last[v.Commodity])
			bad++
		}
		seen[v.Seq]++
		last[v.Commodity] = max(last[v.Commodity], v.Seq)
		if bad > 10 {
			t.FailNow()
		}
	}
	for _, p := range in {
		if seen[p.seq] != 1 {
			t.Errorf("input %d (%s, outlier %v) is %d times in the main output, want once", p.seq, p.commodity, p.outlier, seen[p.seq])
			if bad++; bad > 10 {
				t.FailNow()
			}
		}
	}
}

// alertRow is one record of port alerts; pointers tell a missing field from a zero.
type alertRow struct {
	Key         *string  `json:"key"`
	Value       *float64 `json:"value"`
	ExpectedMin *float64 `json:"expected_min"`
	ExpectedMax *float64 `json:"expected_max"`
	Mean        *float64 `json:"mean"`
	Stddev      *float64 `json:"stddev"`
	Score       *float64 `json:"score"`
	Ts          *int64   `json:"ts"`
}

// checkAlerts checks that the alerts are exactly the expected ones, each with the fields of the
// README and values that agree with the test's baseline. eventTime says whether the stage read
// the event time (alerts then carry the input's ts; otherwise the runtime's clock).
func checkAlerts(t *testing.T, lines []string, want map[int]anomalyAlert, threshold float64, eventTime bool) {
	t.Helper()
	// Alerts are matched to inputs by event time, or by key and value (values are unique).
	byTs := map[int64]anomalyAlert{}
	byValue := map[string]anomalyAlert{}
	for _, a := range want {
		byTs[a.ts] = a
		byValue[a.key+"/"+strconv.FormatFloat(a.value, 'g', -1, 64)] = a
	}
	got := map[int]int{}
	for i, l := range lines {
		var r alertRow
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("alert %d %q: %v", i+1, l, err)
		}
		if r.Key == nil || r.Value == nil || r.ExpectedMin == nil || r.ExpectedMax == nil || r.Mean == nil || r.Stddev == nil || r.Score == nil || r.Ts == nil {
			t.Errorf("alert %d lacks a field or has a null one: %s", i+1, l)
			continue
		}
		var w anomalyAlert
		var ok bool
		if eventTime {
			w, ok = byTs[*r.Ts]
		} else {
			w, ok = byValue[*r.Key+"/"+strconv.FormatFloat(*r.Value, 'g', -1, 64)]
		}
		if !ok {
			t.Errorf("alert %d is for no injected outlier: %s", i+1, l)
			continue
		}
		got[w.seq]++
		m, sd := *r.Mean, *r.Stddev
		switch {
		case *r.Key != w.key || *r.Value != w.value:
			t.Errorf("alert %d: key %q value %v, want %q %v", i+1, *r.Key, *r.Value, w.key, w.value)
		case !relClose(m, w.mean, 1e-9) || !relClose(sd, w.stddev, 1e-6) || !relClose(*r.Score, w.score, 1e-6):
			t.Errorf("alert %d: mean %v stddev %v score %v, want %v %v %v", i+1, m, sd, *r.Score, w.mean, w.stddev, w.score)
		case !relClose(*r.ExpectedMin, m-threshold*sd, 1e-12) || !relClose(*r.ExpectedMax, m+threshold*sd, 1e-12):
			t.Errorf("alert %d: expected range [%v, %v], want mean ∓ %v·stddev = [%v, %v]", i+1, *r.ExpectedMin, *r.ExpectedMax, threshold, m-threshold*sd, m+threshold*sd)
		case *r.Value >= *r.ExpectedMin && *r.Value <= *r.ExpectedMax:
			t.Errorf("alert %d: value %v inside its expected range [%v, %v]", i+1, *r.Value, *r.ExpectedMin, *r.ExpectedMax)
		case math.Abs(*r.Score) <= threshold || (*r.Score > 0) != (*r.Value > m):
			t.Errorf("alert %d: score %v for value %v and mean %v (threshold %v)", i+1, *r.Score, *r.Value, m, threshold)
		case eventTime && *r.Ts != w.ts, !eventTime && *r.Ts <= 0:
			t.Errorf("alert %d: ts %d, want %d", i+1, *r.Ts, w.ts)
		}
	}
	for seq, a := range want {
		if got[seq] != 1 {
			t.Errorf("outlier input %d (%s %v, score %.1f) has %d alerts, want 1", seq, a.key, a.value, a.score, got[seq])
		}
	}
}

// TestAnomalyOutliers runs prices with injected outliers through anomaly (no window, one
// baseline per commodity), with the main port to one file and the alerts port to another.
func TestAnomalyOutliers(t *testing.T) {
	for _, tc := range []struct {
		method     string
		threshold  float64
		minSamples int
		alpha      float64
		eventTime  bool
		config     string
	}{
		{method: "zscore", threshold: 6, minSamples: 30, eventTime: true, config: "{field: price, method: zscore, threshold: 6, min_samples: 30}"},
		{method: "ewma", threshold: 8, minSamples: 30, alpha: 0.05, config: "{field: price, method: ewma, alpha: 0.05, threshold: 8, min_samples: 30}"},
	} {
		t.Run(tc.method, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			inPath, in := writeAnomalyInput(t, dir, 3000, 42)
			want := expectAnomalies(in, tc.method, tc.threshold, tc.minSamples, tc.alpha)
			// The generator's outliers are far outside the noise: the test's own scoring flags
			// exactly them.
			injected := 0
			for _, p := range in {
				if p.outlier {
					injected++
					if _, ok := want[p.seq]; !ok {
						t.Fatalf("generated outlier %d (%s %v) is not flagged by the test's own %s scoring", p.seq, p.commodity, p.price, tc.method)
					}
				} else if a, ok := want[p.seq]; ok {
					t.Fatalf("generated noise %d (%s %v) is flagged by the test's own %s scoring (score %v)", p.seq, p.commodity, p.price, tc.method, a.score)
				}
			}
			timeLine := ""
			if tc.eventTime {
				timeLine = "\n        time: $.ts"
			}
			outPath, alertsPath := filepath.Join(dir, "out.jsonl"), filepath.Join(dir, "alerts.jsonl")
			m := writeFile(t, filepath.Join(dir, "anomaly.yaml"), fmt.Sprintf(`apiVersion: sluice.dev/v1
kind: Pipeline
metadata: {name: anomaly}
spec:
  source: {type: file, config: {path: %q}}
  transforms:
    - name: anomaly
      aggregate:
        wasm: %q
        key: $.commodity%s
        config: %s
  sinks:
    - {name: prices, type: file, config: {path: %q}}
    - {name: alerts, type: file, from: alerts, config: {path: %q}}
`, inPath, moduleWasm(t, "anomaly"), timeLine, tc.config, outPath, alertsPath))
			runToEnd(t, dir, m)
			checkPassThrough(t, in, lines(t, outPath))
			alerts := lines(t, alertsPath)
			checkAlerts(t, alerts, want, tc.threshold, tc.eventTime)
			t.Logf("%d inputs, %d injected outliers, %d alerts", len(in), injected, len(alerts))
		})
	}
}

// ---- dedupe ----

// dedupeEvent is one generated record of dedupe's input.
type dedupeEvent struct {
	seq  int
	id   string
	ts   int64
	line string
}

const dedupeTTL = 60_000 // ttl: 1m

// dedupeEvents makes records of 30 random ids and 4 more over 15 minutes of event time, in event-time order
// (ties in input order), with these cases among them: an id that repeats exactly ttl after its
// last record (remembered: dropped) and one that repeats ttl + 1 ms after (passes again); an id
// that comes every 50 s for 7 minutes (every record keeps it remembered: one pass); an id that
// comes three times in a second, then again after 100 s (passes again) and 1 s later (dropped).
func dedupeEvents(seed int64) []dedupeEvent {
	rng := rand.New(rand.NewSource(seed))
	var evs []dedupeEvent
	add := func(id string, ts int64) { evs = append(evs, dedupeEvent{id: id, ts: ts}) }
	for range 700 {
		add(fmt.Sprintf("order-%02d", rng.Intn(30)), int64(rng.Intn(900_000)))
	}
	add("edge-equal", 100_000)
	add("edge-equal", 100_000+dedupeTTL)
	add("edge-after", 100_000)
	add("edge-after", 100_000+dedupeTTL+1)
	for ts := int64(0); ts <= 420_000; ts += 50_000 {
		add("steady", ts)
	}
	for _, ts := range []int64{200_000, 200_400, 200_900, 300_900, 301_900} {
		add("burst", ts)
	}
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].ts < evs[j].ts })
	return numberEvents(evs)
}

// numberEvents numbers events in their order and writes their lines, with event times from
// 2024-05-01T12:00:00Z.
func numberEvents(evs []dedupeEvent) []dedupeEvent {
	base := int64(1_714_564_800_000)
	for i := range evs {
		evs[i].seq = i + 1
		evs[i].line = fmt.Sprintf(`{"seq":%d,"id":%q,"ts":%d}`, evs[i].seq, evs[i].id, base+evs[i].ts)
	}
	return evs
}

// expectDedupe returns the records dedupe forwards with key $.id, time $.ts and ttl, in input
// order. The operator (internal/aggregate addRecord and sweep) keeps one slot per key with the
// largest event time of the key's records, passed or dropped; a record finds its key's slot gone
// when its time is more than ttl after that (addRecord), or when the sweep removed the slot
// because the largest event time seen was more than ttl after it. With event times in
// non-decreasing order both come to the same rule: a record passes when its key is new or its
// time is more than ttl after the key's previous record.
func expectDedupe(evs []dedupeEvent) []string {
	last := map[string]int64{}
	var out []string
	for _, e := range evs {
		prev, ok := last[e.id]
		if !ok || e.ts-prev > dedupeTTL {
			out = append(out, e.line)
		}
		last[e.id] = max(prev, e.ts)
	}
	return out
}

// diffLines reports, for a failure message, the first lines where got and want differ and the
// lines only one of them holds.
func diffLines(got, want []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d lines, want %d", len(got), len(want))
	g, w := map[string]bool{}, map[string]bool{}
	for _, l := range got {
		g[l] = true
	}
	for _, l := range want {
		w[l] = true
	}
	n := 0
	for _, l := range want {
		if !g[l] && n < 10 {
			fmt.Fprintf(&b, "\n  missing:    %s", l)
			n++
		}
	}
	n = 0
	for _, l := range got {
		if !w[l] && n < 10 {
			fmt.Fprintf(&b, "\n  unexpected: %s", l)
			n++
		}
	}
	return b.String()
}

// TestDedupeTTL runs records with repeats through dedupe with event time and ttl: 1m, once with
// every record in a batch of its own and once in the default batches, and four records of one id
// in one batch; each run must forward the records computed by expectDedupe, whatever the batches.
func TestDedupeTTL(t *testing.T) {
	evs := dedupeEvents(5)
	// One id at 0 s (passes), 10 s (dropped), 100 s (passes: 90 s after the previous record) and
	// 110 s (dropped): four lines that the source reads in one batch.
	small := numberEvents([]dedupeEvent{{id: "a", ts: 0}, {id: "a", ts: 10_000}, {id: "a", ts: 100_000}, {id: "a", ts: 110_000}})
	want := expectDedupe(evs)
	// The input exercises both sides of the ttl.
	passedAgain, dropped := 0, len(evs)-len(want)
	ids := map[string]bool{}
	for _, l := range want {
		var v struct{ ID string }
		_ = json.Unmarshal([]byte(l), &v)
		if ids[v.ID] {
			passedAgain++
		}
		ids[v.ID] = true
	}
	if passedAgain < 10 || dropped < 100 {
		t.Fatalf("the input has %d records passing again after ttl and %d dropped repeats; want at least 10 and 100", passedAgain, dropped)
	}
	for _, tc := range []struct {
		name, batch string
		evs         []dedupeEvent
	}{
		{"one record per batch", "  batch: {max_records: 1}\n", evs},
		{"default batches", "", evs},
		{"one id in one batch", "", small},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			var in strings.Builder
			for _, e := range tc.evs {
				in.WriteString(e.line + "\n")
			}
			want := expectDedupe(tc.evs)
			inPath := writeFile(t, filepath.Join(dir, "in.jsonl"), in.String())
			outPath := filepath.Join(dir, "out.jsonl")
			m := writeFile(t, filepath.Join(dir, "dedupe.yaml"), fmt.Sprintf(`apiVersion: sluice.dev/v1
kind: Pipeline
metadata: {name: dedupe}
spec:
  source: {type: file, config: {path: %q}}
  transforms:
    - name: dedupe
      aggregate:
        wasm: %q
        key: $.id
        time: $.ts
        ttl: 1m
  sinks:
    - {name: out, type: file, config: {path: %q}}
%s`, inPath, moduleWasm(t, "dedupe"), outPath, tc.batch))
			runToEnd(t, dir, m)
			if got := lines(t, outPath); !slices.Equal(got, want) {
				t.Errorf("output differs from the first record of each id per ttl: %s", diffLines(got, want))
			}
			t.Logf("%d records, %d forwarded, %d dropped", len(tc.evs), len(want), len(tc.evs)-len(want))
		})
	}
}

// TestDedupeWholeValue dedupes on the whole value (key: $), without time or ttl: the output is
// the first occurrence of each distinct line, in input order. Half the values are longer than 128
// bytes (keys replaced by their SHA-256) and differ only in their last bytes.
func TestDedupeWholeValue(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewSource(9))
	pad := strings.Repeat("x", 200)
	var pool []string
	for i := range 30 {
		pool = append(pool, fmt.Sprintf(`{"sku":"item-%d","qty":%d}`, i, i%4))
		pool = append(pool, fmt.Sprintf(`{"note":%q,"n":%d}`, pad, i))
	}
	var in []string
	for range 500 {
		in = append(in, pool[rng.Intn(len(pool))])
	}
	var want []string
	seen := map[string]bool{}
	for _, l := range in {
		if !seen[l] {
			seen[l] = true
			want = append(want, l)
		}
	}
	dir := t.TempDir()
	inPath := writeFile(t, filepath.Join(dir, "in.jsonl"), strings.Join(in, "\n")+"\n")
	outPath := filepath.Join(dir, "out.jsonl")
	m := writeFile(t, filepath.Join(dir, "dedupe.yaml"), fmt.Sprintf(`apiVersion: sluice.dev/v1
kind: Pipeline
metadata: {name: dedupe-value}
spec:
  source: {type: file, config: {path: %q}}
  transforms:
    - name: dedupe
      aggregate: {wasm: %q, key: $}
  sinks:
    - {name: out, type: file, config: {path: %q}}
`, inPath, moduleWasm(t, "dedupe"), outPath))
	runToEnd(t, dir, m)
	if got := lines(t, outPath); !slices.Equal(got, want) {
		t.Errorf("output differs from the first occurrence of each value: %s", diffLines(got, want))
	}
	t.Logf("%d records, %d distinct", len(in), len(want))
}

// ---- timers ----

// readStatsFile reads the stats rows of a file that a running pipeline may be writing (a last
// line without its newline yet is left out).
func readStatsFile(t *testing.T, path string) []statsref.Row {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var rows []statsref.Row
	for _, l := range strings.SplitAfter(string(b), "\n") {
		if !strings.HasSuffix(l, "\n") {
			break
		}
		var r statsref.Row
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("output line %q: %v", l, err)
		}
		rows = append(rows, r)
	}
	return rows
}

func sumCounts(rows []statsref.Row) int64 {
	var n int64
	for _, r := range rows {
		n += r.Count
	}
	return n
}

// TestTimerProcessingTimeWindows runs stats in 1 s processing-time windows on a file source that
// follows its file. Two bursts of records are appended, the second once every record of the first
// is in an emitted window: with no further input, only the operator's ticks can close those
// windows. The process is stopped with SIGTERM once the second burst's windows have closed by the
// clock (a window still open at SIGTERM is not emitted), and the windows then hold every record
// once.
func TestTimerProcessingTimeWindows(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	inPath := writeFile(t, filepath.Join(dir, "in.jsonl"), "")
	outPath := filepath.Join(dir, "out.jsonl")
	m := writeFile(t, filepath.Join(dir, "timers.yaml"), fmt.Sprintf(`apiVersion: sluice.dev/v1
kind: Pipeline
metadata: {name: timers}
spec:
  source: {type: file, config: {path: %q, follow: true, poll_interval: 50ms}}
  transforms:
    - name: stats
      aggregate:
        wasm: %q
        key: $.commodity
        window: {tumbling: 1s}
        config: {field: price}
  sinks:
    - {name: out, type: file, config: {path: %q}}
`, inPath, statsModule(t), outPath))
	r := startRun(t, dir, m, "")
	names := []string{"corn", "wheat", "gold"}
	count := map[string]int64{}
	sum := map[string]float64{}
	seq := 0
	burst := func(n int) {
		var ls []string
		for range n {
			seq++
			c := names[seq%len(names)]
			price := float64(seq) + 0.25
			count[c]++
			sum[c] += price
			ls = append(ls, fmt.Sprintf(`{"seq":%d,"commodity":%q,"price":%v}`, seq, c, price))
		}
		appendLines(t, inPath, ls)
	}
	burst(60)
	r.waitFor(t, "the first burst's windows to close while the source is idle", func() bool { return sumCounts(readStatsFile(t, outPath)) >= 60 })
	if n := sumCounts(readStatsFile(t, outPath)); n != 60 {
		t.Fatalf("windows after the first burst count %d records, want 60", n)
	}
	burst(90)
	r.waitFor(t, "the second burst's windows to close", func() bool { return sumCounts(readStatsFile(t, outPath)) >= 150 })
	r.stop(t)
	rows := readStatsFile(t, outPath)
	if n := sumCounts(rows); n != 150 {
		t.Errorf("the windows count %d records, want the 150 written", n)
	}
	gotCount, gotSum := map[string]int64{}, map[string]float64{}
	seen := map[statsref.Window]bool{}
	for _, w := range rows {
		if w.WindowEnd-w.WindowStart != 1000 || w.WindowStart%1000 != 0 {
			t.Errorf("window [%d, %d) is not a 1 s tumbling window", w.WindowStart, w.WindowEnd)
		}
		if k := (statsref.Window{Key: w.Key, Start: w.WindowStart}); seen[k] {
			t.Errorf("window %s@%d emitted twice", w.Key, w.WindowStart)
		} else {
			seen[k] = true
		}
		gotCount[w.Key] += w.Count
		gotSum[w.Key] += w.Mean * float64(w.Count)
	}
	for _, c := range names {
		if gotCount[c] != count[c] || !relClose(gotSum[c], sum[c], 1e-9) {
			t.Errorf("%s: %d records summing to %v in the windows, want %d summing to %v", c, gotCount[c], gotSum[c], count[c], sum[c])
		}
	}
	t.Logf("%d windows", len(rows))
}

// TestEarlyUpdates runs stats in 1-minute event-time windows with early: 200ms on a file source
// that follows its file. Records all inside one window are appended in two bursts: early updates
// of the window appear while it is open (no record has yet moved the watermark to its end), one
// per change; a record of the next minute then closes it, and its final row follows.
func TestEarlyUpdates(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	inPath := writeFile(t, filepath.Join(dir, "in.jsonl"), "")
	outPath := filepath.Join(dir, "out.jsonl")
	m := writeFile(t, filepath.Join(dir, "early.yaml"), fmt.Sprintf(`apiVersion: sluice.dev/v1
kind: Pipeline
metadata: {name: early}
spec:
  source: {type: file, config: {path: %q, follow: true, poll_interval: 50ms}}
  transforms:
    - name: stats
      aggregate:
        wasm: %q
        key: $.commodity
        time: $.ts
        window: {tumbling: 1m}
        early: 200ms
        config: {field: price}
  sinks:
    - {name: out, type: file, config: {path: %q}}
`, inPath, statsModule(t), outPath))
	const start = int64(1_714_564_800_000) // a whole minute
	rec := func(seq int, ts int64, price float64) string {
		return fmt.Sprintf(`{"seq":%d,"commodity":"corn","price":%v,"ts":%d}`, seq, price, ts)
	}
	rowsOf := func(count int64) int {
		n := 0
		for _, r := range readStatsFile(t, outPath) {
			if r.WindowStart == start && r.Count == count {
				n++
			}
		}
		return n
	}
	r := startRun(t, dir, m, "")
	appendLines(t, inPath, []string{rec(1, start+1000, 10), rec(2, start+2000, 12), rec(3, start+3000, 11), rec(4, start+4000, 9), rec(5, start+5000, 13)})
	r.waitFor(t, "an early update of the open window with the first 5 records", func() bool { return rowsOf(5) > 0 })
	appendLines(t, inPath, []string{rec(6, start+10_000, 20), rec(7, start+11_000, 8), rec(8, start+12_000, 14)})
	r.waitFor(t, "an early update of the open window with 8 records", func() bool { return rowsOf(8) > 0 })
	appendLines(t, inPath, []string{rec(9, start+61_000, 30)})
	r.waitFor(t, "the final row of the window, closed by a record of the next minute", func() bool { return rowsOf(8) == 2 })
	r.stop(t)
	var counts []int64
	for _, w := range readStatsFile(t, outPath) {
		if w.WindowStart != start {
			continue
		}
		if w.WindowEnd != start+60_000 {
			t.Errorf("row %+v: window end %d, want %d", w, w.WindowEnd, start+60_000)
		}
		counts = append(counts, w.Count)
		if w.Count == 8 && (w.Min != 8 || w.Max != 20 || w.First != 10 || w.Last != 14 || !relClose(w.Mean, 97.0/8, 1e-12)) {
			t.Errorf("row %+v, want min 8 max 20 first 10 last 14 mean %v", w, 97.0/8)
		}
		if w.Count == 5 && (w.Min != 9 || w.Max != 13 || w.First != 10 || w.Last != 13 || !relClose(w.Mean, 11, 1e-12)) {
			t.Errorf("row %+v, want min 9 max 13 first 10 last 13 mean 11", w)
		}
	}
	// Early updates grow with each change (an unchanged window is not emitted again); the final
	// row repeats the last one.
	for i := 1; i < len(counts)-1; i++ {
		if counts[i] <= counts[i-1] {
			t.Errorf("counts of the window's rows %v: early updates must grow", counts)
			break
		}
	}
	if len(counts) < 3 || counts[len(counts)-1] != 8 || counts[len(counts)-2] != 8 {
		t.Errorf("counts of the window's rows %v: want early updates ending at 8, then the final row with 8", counts)
	}
	t.Logf("rows of the window: counts %v", counts)
}

// ---- metrics ----

// metricValue returns the value of the sample of name with labels pipeline and component in a
// Prometheus text exposition.
func metricValue(body, name, pipelineName, component string) (float64, bool) {
	for _, l := range strings.Split(body, "\n") {
		if !strings.HasPrefix(l, name+"{") {
			continue
		}
		end := strings.Index(l, "} ")
		if end < 0 {
			continue
		}
		labels := strings.Split(l[len(name)+1:end], ",")
		if !slices.Contains(labels, fmt.Sprintf("pipeline=%q", pipelineName)) || !slices.Contains(labels, fmt.Sprintf("component=%q", component)) {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(l[end+2:]), 64)
		return v, err == nil
	}
	return 0, false
}

// TestAggregateMetrics runs stats (1-minute windows, 10 s of allowed lateness, late: drop) on
// prices with late records, from a file source that follows its file so that the process keeps
// serving /metrics, and checks the aggregate metrics against the test's own computation: late
// records, windows closed, slots still open.
func TestAggregateMetrics(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	inPath, in := writePrices(t, dir, 5000, 11)
	closed, letters := expectStats(in, false)
	all, _ := expectStats(in, true)
	late := 0
	for _, k := range letters {
		if k == "late" {
			late++
		}
	}
	if late == 0 {
		t.Fatal("the input has no late records")
	}
	outPath := filepath.Join(dir, "out.jsonl")
	m := writeFile(t, filepath.Join(dir, "metrics.yaml"), fmt.Sprintf(`apiVersion: sluice.dev/v1
kind: Pipeline
metadata: {name: aggmetrics}
spec:
  source: {type: file, config: {path: %q, follow: true}}
%s  sinks:
    - {name: out, type: file, config: {path: %q}}
`, inPath, statsStage(statsModule(t), "drop", "drop"), outPath))
	addr := freeAddr(t)
	r := startRun(t, dir, m, addr)
	var body string
	// The stage counts its records in when a call returns; the windows those records close are
	// counted as the watermark passes them, which may come a moment later. So the wait is for both
	// to reach the input, and then every metric must be exactly right (none may overshoot).
	r.waitFor(t, "the stage's records_in to reach the input's 5000 records and its closed windows the expected count", func() bool {
		_, body = get(t, "http://"+addr+"/metrics")
		n, _ := metricValue(body, "sluice_records_in_total", "aggmetrics", "stats")
		w, _ := metricValue(body, "sluice_aggregate_windows_closed_total", "aggmetrics", "stats")
		return n >= float64(len(in)) && w >= float64(len(closed))
	})
	for _, c := range []struct {
		name string
		want int
	}{
		{"sluice_aggregate_late_records_total", late},
		{"sluice_aggregate_windows_closed_total", len(closed)},
		{"sluice_aggregate_slots", len(all) - len(closed)},
	} {
		v, ok := metricValue(body, c.name, "aggmetrics", "stats")
		switch {
		case !ok:
			t.Errorf(`/metrics lacks %s{component="stats",pipeline="aggmetrics"}`, c.name)
		case v != float64(c.want):
			t.Errorf("%s = %v, want %d", c.name, v, c.want)
		}
	}
	r.stop(t)
	// The sink has the closed windows; the open ones are not emitted at SIGTERM.
	if dups := statsref.Check(t, readStatsRows(t, outPath), closed); dups != 0 {
		t.Errorf("%d windows emitted twice", dups)
	}
	t.Logf("%d records, %d late, %d windows closed, %d open", len(in), late, len(closed), len(all)-len(closed))
}

// ---- manifest checks ----

// TestAggregateManifestErrors checks that `sluice validate` refuses, at the offending key, a plain
// module under aggregate:, an aggregate module under wasm:, a processing-time aggregate stage
// under delivery exactly_once, and early updates under exactly_once.
func TestAggregateManifestErrors(t *testing.T) {
	bin := buildSluice(t)
	plain := filepath.Join(filepath.Dir(moduleWasm(t, "stats")), "..", "validate_price", "go", "validate_price.wasm")
	if _, err := os.Stat(plain); err != nil {
		t.Fatalf("%v: run `make wasm-go`", err)
	}
	stats := statsModule(t)
	tests := []struct {
		name, transform, delivery string
		at, key                   string // the line holding at, and the column of key on it
		msg                       string // DELIVERY stands for the line of delivery:
	}{
		{"plain module under aggregate", "    - name: prices\n      aggregate:\n        wasm: " + plain + "\n        key: $.commodity\n", "",
			"wasm: " + plain, "wasm", "is not an aggregate module (ABI 1.1, kinds: aggregate); use it as a transform with wasm:"},
		{"aggregate module under wasm", "    - name: prices\n      wasm: " + stats + "\n", "",
			"wasm: " + stats, "wasm", "is an aggregate module; use it under aggregate:"},
		{"exactly_once with processing time", "    - name: prices\n      aggregate:\n        wasm: " + stats + "\n        key: $.commodity\n        window: {tumbling: 1m}\n        config: {field: price}\n",
			"  delivery: exactly_once\n", "aggregate:", "aggregate", "delivery exactly_once (line DELIVERY) needs event time, and the stage sets no time:"},
		{"exactly_once with early", "    - name: prices\n      aggregate:\n        wasm: " + stats + "\n        key: $.commodity\n        time: $.ts\n        window: {tumbling: 1m}\n        early: 1s\n        config: {field: price}\n",
			"  delivery: exactly_once\n", "early:", "early", "delivery exactly_once (line DELIVERY) refuses early updates"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			text := fmt.Sprintf("apiVersion: sluice.dev/v1\nkind: Pipeline\nmetadata: {name: checks}\nspec:\n  source: {type: file, config: {path: %q}}\n  transforms:\n%s  sinks:\n    - {name: out, type: file, config: {path: %q}}\n%s",
				filepath.Join(dir, "in.jsonl"), tc.transform, filepath.Join(dir, "out.jsonl"), tc.delivery)
			path := writeFile(t, filepath.Join(dir, "pipeline.yaml"), text)
			line, col := 0, 0
			for i, l := range strings.Split(text, "\n") {
				if strings.Contains(l, tc.at) {
					line, col = i+1, strings.Index(l, tc.key)+1
					break
				}
			}
			// delivery: is the last line.
			msg := strings.ReplaceAll(tc.msg, "DELIVERY", strconv.Itoa(strings.Count(text, "\n")))
			out, err := exec.Command(bin, "--data-dir", filepath.Join(dir, "data"), "validate", path).CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Fatalf("sluice validate: %v, want exit 1; output:\n%s", err, out)
			}
			want := fmt.Sprintf("%s:%d:%d: ", path, line, col)
			for _, l := range strings.Split(string(out), "\n") {
				if strings.HasPrefix(l, want) && strings.Contains(l, msg) {
					return
				}
			}
			t.Errorf("output lacks %q … %q:\n%s", want, msg, out)
		})
	}
}
