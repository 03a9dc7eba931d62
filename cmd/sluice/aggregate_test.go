package main_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/testenv"
	"github.com/sluicehq/sluice/transforms/stats/statsref"
)

// The stats module (transforms/stats) through `sluice run`: golden aggregates computed here
// from the input, independently of the module and the host, and the same aggregates after
// kill -9 at random moments.

// priceInput is one generated record.
type priceInput struct {
	seq       int
	commodity string
	price     float64 // NaN: the price is not a number (a malformed record)
	ts        int64
}

const (
	statsWindow   = 60_000 // 1m tumbling
	statsLateness = 10_000 // allowed_lateness 10s
)

// writePrices writes n commodity prices over ~n·40 ms of event time: mostly in order, some up to
// 5 s out of order, one in 400 more than a minute behind (late), one in 500 with a price that is
// not a number. Event times are unique, so first and last are well defined.
func writePrices(t *testing.T, dir string, n int, seed int64) (string, []priceInput) {
	t.Helper()
	rng := rand.New(rand.NewSource(seed))
	names := []string{"corn", "wheat", "soybeans", "gold", "crude_oil", "coffee"}
	price := map[string]float64{"corn": 450, "wheat": 600, "soybeans": 1200, "gold": 2300, "crude_oil": 80, "coffee": 190}
	used := map[int64]bool{}
	var in []priceInput
	var buf bytes.Buffer
	base := int64(1_714_564_800_000)
	for i := 1; i <= n; i++ {
		c := names[rng.Intn(len(names))]
		price[c] = math.Round((price[c]*(1+rng.NormFloat64()*0.002))*100) / 100
		ts := base + int64(i)*40 - int64(rng.Intn(5000))
		if rng.Intn(400) == 0 {
			ts -= 70_000 + int64(rng.Intn(20_000))
		}
		for used[ts] {
			ts++
		}
		used[ts] = true
		p := priceInput{seq: i, commodity: c, price: price[c], ts: ts}
		if rng.Intn(500) == 0 {
			p.price = math.NaN()
			fmt.Fprintf(&buf, `{"seq":%d,"commodity":%q,"price":"n/a","ts":%d}`+"\n", i, c, ts)
		} else {
			fmt.Fprintf(&buf, `{"seq":%d,"commodity":%q,"price":%s,"ts":%d}`+"\n", i, c, strconv.FormatFloat(p.price, 'f', -1, 64), ts)
		}
		in = append(in, p)
	}
	path := filepath.Join(dir, "prices.jsonl")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, in
}

// expectStats is statsref.Expect on the generated records, with the dead-letter fates by seq.
func expectStats(in []priceInput, flush bool) (map[statsref.Window]statsref.Row, map[int]string) {
	ref := make([]statsref.Input, len(in))
	for i, p := range in {
		ref[i] = statsref.Input{Key: p.commodity, Price: p.price, TS: p.ts}
	}
	want, fates := statsref.Expect(ref, statsWindow, statsLateness, flush)
	letters := map[int]string{}
	for i, f := range fates {
		if f != "" {
			letters[in[i].seq] = f
		}
	}
	return want, letters
}

func readStatsRows(t *testing.T, path string) []statsref.Row {
	t.Helper()
	var rows []statsref.Row
	for _, l := range lines(t, path) {
		var r statsref.Row
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("output line %q: %v", l, err)
		}
		rows = append(rows, r)
	}
	return rows
}

// checkLetters checks the dead letters: every late and malformed input there with the right
// kind, nothing else.
func checkLetters(t *testing.T, path string, want map[int]string) {
	t.Helper()
	got := map[int]string{}
	for _, l := range lines(t, path) {
		var env struct {
			Kind  string `json:"kind"`
			Code  int    `json:"code"`
			Value string `json:"value"`
		}
		if err := json.Unmarshal([]byte(l), &env); err != nil {
			t.Fatalf("dead letter %q: %v", l, err)
		}
		var v struct {
			Seq int `json:"seq"`
		}
		if err := json.Unmarshal([]byte(env.Value), &v); err != nil {
			t.Fatalf("dead letter value %q: %v", env.Value, err)
		}
		if env.Kind == "late" && env.Code != 0xFF07 {
			t.Errorf("late record %d has code %d, want 0xFF07", v.Seq, env.Code)
		}
		got[v.Seq] = env.Kind
	}
	for seq, kind := range want {
		if got[seq] != kind {
			t.Errorf("input %d: dead letter kind %q, want %q", seq, got[seq], kind)
		}
	}
	for seq := range got {
		if _, ok := want[seq]; !ok {
			t.Errorf("input %d is in the dead letters and should not be", seq)
		}
	}
}

func statsModule(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	p := filepath.Join(filepath.Dir(file), "..", "..", "transforms", "stats", "stats.wasm")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%v: run `make wasm-go`", err)
	}
	return p
}

// statsStage is the transforms section of the tests' stats stage: 1-minute tumbling windows of
// $.ts per $.commodity, 10 s of allowed lateness (the statsWindow and statsLateness the expected
// rows are computed with), late records and malformed ones as late and onReject say.
func statsStage(module, late, onReject string) string {
	s := fmt.Sprintf(`  transforms:
    - name: stats
      aggregate:
        wasm: %q
        key: $.commodity
        time: $.ts
        window: {tumbling: 1m}
        allowed_lateness: 10s
        late: %s
        config: {field: price}
`, module, late)
	if onReject != "" {
		s += "      on_reject: " + onReject + "\n"
	}
	return s
}

func statsManifest(inPath, outPath, dlqPath, module, extraSource, tail string) string {
	return fmt.Sprintf(`apiVersion: sluice.dev/v1
kind: Pipeline
metadata: {name: stats}
spec:
  source: {type: file, config: {path: %q%s}}
%s  sinks:
    - {name: out, type: file, config: {path: %q}}
  dead_letter: {type: file, config: {path: %q}, max_failure_ratio: 1}
%s`, inPath, extraSource, statsStage(module, "dead_letter", ""), outPath, dlqPath, tail)
}

func TestStatsGoldenAggregates(t *testing.T) {
	bin := buildSluice(t)
	dir := t.TempDir()
	inPath, in := writePrices(t, dir, 20_000, 7)
	want, letters := expectStats(in, true)
	outPath, dlqPath := filepath.Join(dir, "out.jsonl"), filepath.Join(dir, "dlq.jsonl")
	mPath := filepath.Join(dir, "stats.yaml")
	if err := os.WriteFile(mPath, []byte(statsManifest(inPath, outPath, dlqPath, statsModule(t), "", "")), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "run", "--data-dir", filepath.Join(dir, "data"), "--admin-addr", "", mPath).CombinedOutput()
	if err != nil {
		t.Fatalf("sluice run: %v\n%s", err, out)
	}
	rows := readStatsRows(t, outPath)
	if dups := statsref.Check(t, rows, want); dups != 0 {
		t.Errorf("%d windows emitted twice in one uninterrupted run", dups)
	}
	checkLetters(t, dlqPath, letters)
	late := 0
	for _, k := range letters {
		if k == "late" {
			late++
		}
	}
	t.Logf("%d inputs, %d windows, %d late and %d malformed inputs in the dead letters", len(in), len(want), late, len(letters)-late)
}

// TestStatsKill9 kills `sluice run` five times at random moments; the final aggregates must be
// those of an uninterrupted run (windows emitted again after a kill are equal to the first).
func TestStatsKill9(t *testing.T) {
	bin := buildSluice(t)
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewSource(seed))
	t.Logf("seed %d", seed)
	dir := t.TempDir()
	inPath, in := writePrices(t, dir, 150_000, seed)
	want, letters := expectStats(in, true)
	outPath, dlqPath := filepath.Join(dir, "out.jsonl"), filepath.Join(dir, "dlq.jsonl")
	mPath := filepath.Join(dir, "stats.yaml")
	// Each run is killed once it has written 20-80 more rows, at most 400 of the ~900 windows in
	// five kills; the source is held to 50,000 lines/s, so the kills fall at any point of a batch's
	// life.
	m := statsManifest(inPath, outPath, dlqPath, statsModule(t), ", read_buffer: 8KiB, rate: 50000", "  batch: {max_records: 100, linger: 1ms}\n")
	if err := os.WriteFile(mPath, []byte(m), 0o644); err != nil {
		t.Fatal(err)
	}
	kills := killRuns(t, bin, dir, mPath, rng, 5, afterRows(outPath, rng), func() string {
		return fmt.Sprintf("%d rows out", len(lines(t, outPath)))
	})
	dups := statsref.Check(t, readStatsRows(t, outPath), want)
	checkLetters(t, dlqPath, letters)
	t.Logf("%d kills; %d windows, %d emitted again after a kill", kills, len(want), dups)
}

// afterRows is a killRuns trigger: the kill is due once the file at path has 20-80 more lines
// than when the run started.
func afterRows(path string, rng *rand.Rand) func(exited <-chan struct{}) <-chan string {
	return afterCount(func() int {
		b, _ := os.ReadFile(path)
		return bytes.Count(b, []byte("\n"))
	}, rng)
}

// afterCount is a killRuns trigger: the kill is due once count has grown by 20-80.
func afterCount(count func() int, rng *rand.Rand) func(exited <-chan struct{}) <-chan string {
	return func(exited <-chan struct{}) <-chan string {
		c := make(chan string, 1)
		start, more := count(), 20+rng.Intn(61)
		go func() {
			for {
				select {
				case <-exited:
					return
				case <-time.After(5 * time.Millisecond):
				}
				if n := count(); n >= start+more {
					c <- fmt.Sprintf("at %d rows", n)
					return
				}
			}
		}()
		return c
	}
}

// TestStatsKill9ExactlyOncePostgresIntegration runs stats into Postgres with exactly_once and
// kills it ten times: every closed window is in the table once, with the right aggregates.
func TestStatsKill9ExactlyOncePostgresIntegration(t *testing.T) {
	dsn := testenv.Require(t, "PG_DSN")
	bin := buildSluice(t)
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewSource(seed))
	t.Logf("seed %d", seed)
	dir := t.TempDir()
	inPath, in := writePrices(t, dir, 250_000, seed)
	want, _ := expectStats(in, false) // exactly_once: the windows still open at the end stay open
	suffix := strconv.FormatInt(time.Now().UnixNano(), 36)
	table, pos := "stats_eo_"+suffix, "stats_eo_pos_"+suffix
	t.Cleanup(func() { psqlRun(t, dsn, fmt.Sprintf("DROP TABLE IF EXISTS %s, %s", table, pos)) })
	m := fmt.Sprintf(`apiVersion: sluice.dev/v1
kind: Pipeline
metadata: {name: stats-eo}
spec:
  source: {type: file, config: {path: %q, read_buffer: 8KiB, rate: 50000}}
%s  sinks:
    - {name: pg, type: postgres, config: {dsn: %q, table: %s, create_table: true, positions_table: %s,
        columns: {key: text, window_start: bigint, window_end: bigint, count: bigint, min: double precision, max: double precision,
                  mean: double precision, stddev: double precision, first: double precision, last: double precision}}}
  delivery: exactly_once
  batch: {max_records: 100, linger: 1ms}
`, inPath, statsStage(statsModule(t), "drop", "drop"), dsn, table, pos)
	mPath := filepath.Join(dir, "stats.yaml")
	if err := os.WriteFile(mPath, []byte(m), 0o644); err != nil {
		t.Fatal(err)
	}
	rows := func() int {
		out, err := exec.Command("psql", dsn, "-X", "-At", "-c", "SELECT count(*) FROM "+table).Output()
		if err != nil {
			return 0 // no table yet
		}
		n, _ := strconv.Atoi(strings.TrimSpace(string(out)))
		return n
	}
	// Each run is killed once the table has 20-80 more rows: at most 800 of the ~1,000 windows
	// in ten kills.
	kills := killRuns(t, bin, dir, mPath, rng, 10, afterCount(rows, rng), func() string { return fmt.Sprintf("%d rows", rows()) })
	raw := psqlRun(t, dsn, fmt.Sprintf(`SELECT coalesce(json_agg(json_build_object('key', key, 'window_start', window_start, 'window_end', window_end,
		'count', count, 'min', min, 'max', max, 'mean', mean, 'stddev', stddev, 'first', first, 'last', last)), '[]') FROM %s`, table))
	var stored []statsref.Row
	if err := json.Unmarshal([]byte(raw), &stored); err != nil {
		t.Fatal(err)
	}
	sort.Slice(stored, func(i, j int) bool { return stored[i].WindowStart < stored[j].WindowStart })
	if dups := statsref.Check(t, stored, want); dups != 0 {
		t.Errorf("%d windows stored more than once after %d kills with exactly_once", dups, kills)
	}
	t.Logf("%d kills; %d windows, each stored once", kills, len(want))
}

// TestStatsRefusesStateOfAnotherModule runs stats, then the same stage with another aggregate
// module over the same data directory: the state the first wrote cannot be resumed by the
// second, which must say so instead of folding records into blobs it cannot read.
func TestStatsRefusesStateOfAnotherModule(t *testing.T) {
	bin := buildSluice(t)
	dir := t.TempDir()
	inPath, _ := writePrices(t, dir, 2_000, 3)
	outPath, dlqPath := filepath.Join(dir, "out.jsonl"), filepath.Join(dir, "dlq.jsonl")
	mPath := filepath.Join(dir, "stats.yaml")
	// A following source keeps windows open, so state remains in the store when it stops.
	m := statsManifest(inPath, outPath, dlqPath, statsModule(t), ", follow: true", "")
	if err := os.WriteFile(mPath, []byte(m), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "--data-dir", filepath.Join(dir, "data"), "--admin-addr", "", mPath)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for len(lines(t, outPath)) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no window after a minute:\n%s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = cmd.Process.Signal(os.Interrupt)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("stop: %v\n%s", err, stderr.String())
	}
	dedupe := filepath.Join(filepath.Dir(statsModule(t)), "..", "dedupe", "dedupe.wasm")
	m2 := strings.Replace(m, statsModule(t), dedupe, 1)
	m2 = strings.Replace(m2, "config: {field: price}", "config: {}", 1)
	if err := os.WriteFile(mPath, []byte(m2), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "run", "--data-dir", filepath.Join(dir, "data"), "--admin-addr", "", mPath).CombinedOutput()
	if err == nil {
		t.Fatalf("the run with another module over the state of stats succeeded:\n%s", out)
	}
	if !strings.Contains(string(out), "module stats with state_version 1 wrote it") || !strings.Contains(string(out), "sluice run --reset") {
		t.Fatalf("unclear error:\n%s", out)
	}
	t.Logf("%s", out)
}
