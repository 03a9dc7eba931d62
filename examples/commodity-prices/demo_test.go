package commodityprices_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/examples/commodity-prices/ledger"
)

// binDir holds the binaries the tests build, once per run of the package.
var (
	binDir   string
	binMu    sync.Mutex
	binBuilt = map[string]string{}
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "commodity-prices-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// build compiles a main package of this module, once per run of the tests.
func build(t *testing.T, pkg string) string {
	t.Helper()
	binMu.Lock()
	defer binMu.Unlock()
	if out, ok := binBuilt[pkg]; ok {
		return out
	}
	out := filepath.Join(binDir, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", out, pkg)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	binBuilt[pkg] = out
	return out
}

// startAPI runs the price API with args on a free port and returns its base URL.
func startAPI(t *testing.T, bin string, args ...string) string {
	t.Helper()
	ready := filepath.Join(t.TempDir(), "api.url")
	var stderr bytes.Buffer
	cmd := exec.Command(bin, append([]string{"-addr", "127.0.0.1:0", "-ready-file", ready}, args...)...)
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if b, err := os.ReadFile(ready); err == nil && len(b) > 0 {
			return strings.TrimSpace(string(b))
		}
		select {
		case err := <-exited:
			t.Fatalf("priceapi exited: %v\n%s", err, stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("priceapi did not write %s\n%s", ready, stderr.String())
		}
	}
}

// apiRecord is a record as the API served it: malformed ones may lack fields or hold odd types.
type apiRecord struct {
	Seq       int64
	Commodity string
	Price     float64
	TS        time.Time
}

// fetchAll pages through GET /v1/prices the way a client would.
func fetchAll(t *testing.T, base string) map[int64]map[string]any {
	t.Helper()
	out := map[int64]map[string]any{}
	next := "/v1/prices?page_size=337"
	for next != "" {
		resp, err := http.Get(base + next)
		if err != nil {
			t.Fatal(err)
		}
		var page struct {
			Data []map[string]any `json:"data"`
			Next *string          `json:"next"`
		}
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page.Data {
			out[int64(r["seq"].(float64))] = r
		}
		next = ""
		if page.Next != nil {
			next = *page.Next
		}
	}
	return out
}

// TestDemoAccountsForEveryRecord runs the demo's flow as `make demo` does, on a small bounded
// history with more malformed records and outliers than the demo's defaults: the price API, then
// `sluice run` of examples/commodity-prices/demo (both pipelines), then reads the Iceberg tables
// back through iceberg-go. Every record the API produced must be in the prices table (the valid
// ones, with the price, commodity and time the API served) or in each pipeline's dead letters
// (the malformed ones, by seq); every outlier, and nothing else, must raise an alert; each minute
// window of the stats table must hold the count, minimum, maximum, first and last price of the
// table's rows of that commodity and minute. The summary program must agree.
func TestDemoAccountsForEveryRecord(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs sluice")
	}
	sluice := build(t, "github.com/sluicehq/sluice/cmd/sluice")
	priceapi := build(t, "github.com/sluicehq/sluice/examples/commodity-prices/priceapi")
	summary := build(t, "github.com/sluicehq/sluice/examples/commodity-prices/summary")

	const total = 3000
	api := startAPI(t, priceapi, "-seed", "7", "-total", fmt.Sprint(total), "-rate", "0.5",
		"-start", "2026-01-05T09:00:00Z", "-backfill", "24h", "-malformed", "0.05", "-outlier", "0.02")
	served := fetchAll(t, api)

	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	run := exec.CommandContext(ctx, sluice, "run", "--watch=false", "--data-dir", filepath.Join(dir, "data"),
		"--admin-addr", "", "--log-level", "warn", "demo")
	run.Env = append(os.Environ(), "PRICE_API="+api, "DEMO_DIR="+dir)
	if out, err := run.CombinedOutput(); err != nil {
		t.Fatalf("sluice run demo: %v\n%s", err, out)
	}

	produced, err := ledger.APIStats(ctx, api)
	if err != nil {
		t.Fatal(err)
	}
	if !produced.Done || produced.Produced != total || len(served) != total {
		t.Fatalf("the API produced %d (done %v) and served %d records, want %d", produced.Produced, produced.Done, len(served), total)
	}
	if produced.Malformed == 0 || produced.Outliers == 0 {
		t.Fatalf("the API made no malformed records or no outliers: %+v", produced)
	}
	malformed := map[int64]bool{}
	for _, s := range produced.MalformedSeqs {
		malformed[s] = true
	}
	want := map[int64]apiRecord{}
	for seq, r := range served {
		if malformed[seq] {
			continue
		}
		ts, err := time.Parse(time.RFC3339, r["ts"].(string))
		if err != nil {
			t.Fatalf("seq %d: a valid record with ts %v: %v", seq, r["ts"], err)
		}
		want[seq] = apiRecord{Seq: seq, Commodity: r["commodity"].(string), Price: r["price"].(float64), TS: ts}
	}

	lake, err := ledger.OpenLake(ctx, filepath.Join(dir, "catalog.db"), filepath.Join(dir, "warehouse"))
	if err != nil {
		t.Fatal(err)
	}
	defer lake.Close()
	rows, err := lake.Prices(ctx)
	if err != nil {
		t.Fatal(err)
	}
	windows, err := lake.Windows(ctx)
	if err != nil {
		t.Fatal(err)
	}

	// The prices table: every valid record once, as served.
	if int64(len(rows)) != produced.Valid || len(rows) != len(want) {
		t.Errorf("market.prices has %d rows; the API produced %d valid records", len(rows), produced.Valid)
	}
	got := map[int64]bool{}
	for _, r := range rows {
		w, ok := want[r.Seq]
		switch {
		case got[r.Seq]:
			t.Errorf("seq %d is in market.prices twice", r.Seq)
		case !ok:
			t.Errorf("seq %d is in market.prices but was not a valid record", r.Seq)
		case w.Commodity != r.Commodity || w.Price != r.Price || !w.TS.Equal(r.TS):
			t.Errorf("seq %d: table has %s %v at %s, the API served %s %v at %s", r.Seq, r.Commodity, r.Price, r.TS, w.Commodity, w.Price, w.TS)
		}
		got[r.Seq] = true
	}
	for seq := range want {
		if !got[seq] {
			t.Errorf("valid seq %d is missing from market.prices", seq)
		}
	}

	// The dead letters of each pipeline: exactly the malformed records, each with its reason.
	for _, f := range []string{"rejected.jsonl", "stats-rejected.jsonl"} {
		letters, err := ledger.ReadJSONLines[ledger.DeadLetter](filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		seen := map[int64]bool{}
		for _, d := range letters {
			s := d.Seq()
			if !malformed[s] || seen[s] || d.Stage != "validate" || d.Reason == "" {
				t.Errorf("%s: unexpected dead letter (seq %d, stage %q, reason %q, seen before %v)", f, s, d.Stage, d.Reason, seen[s])
			}
			seen[s] = true
		}
		if len(seen) != len(malformed) {
			t.Errorf("%s holds %d malformed records, the API produced %d", f, len(seen), len(malformed))
		}
	}

	// Alerts: one per outlier, matched by commodity and event time.
	alerts, err := ledger.ReadJSONLines[ledger.Alert](filepath.Join(dir, "alerts.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	type at struct {
		commodity string
		ms        int64
	}
	outliers := map[at]float64{}
	for _, s := range produced.OutlierSeqs {
		w := want[s]
		outliers[at{w.Commodity, w.TS.UnixMilli()}] = w.Price
	}
	for _, a := range alerts {
		p, ok := outliers[at{a.Key, a.TS}]
		if !ok || p != a.Value {
			t.Errorf("alert for %s %v at %d is no outlier the API produced", a.Key, a.Value, a.TS)
		}
		delete(outliers, at{a.Key, a.TS})
	}
	for k := range outliers {
		t.Errorf("outlier %s at %d raised no alert", k.commodity, k.ms)
	}

	// The minute windows, recomputed from the table's rows.
	type slot struct {
		commodity string
		start     int64
	}
	type agg struct {
		n                 int64
		min, max          float64
		first, last       float64
		firstSeq, lastSeq int64
	}
	expect := map[slot]*agg{}
	for _, r := range rows {
		k := slot{r.Commodity, r.TS.UnixMilli() / 60000 * 60000}
		a := expect[k]
		if a == nil {
			a = &agg{min: math.Inf(1), max: math.Inf(-1), firstSeq: math.MaxInt64}
			expect[k] = a
		}
		a.n++
		a.min, a.max = min(a.min, r.Price), max(a.max, r.Price)
		if r.Seq < a.firstSeq {
			a.first, a.firstSeq = r.Price, r.Seq
		}
		if r.Seq > a.lastSeq {
			a.last, a.lastSeq = r.Price, r.Seq
		}
	}
	if len(windows) != len(expect) {
		t.Errorf("market.price_stats_1m has %d windows; the rows fall in %d commodity minutes", len(windows), len(expect))
	}
	for _, w := range windows {
		k := slot{w.Commodity, w.Start.UnixMilli()}
		e := expect[k]
		switch {
		case e == nil:
			t.Errorf("window %s %s holds no row of market.prices", w.Commodity, w.Start)
		case w.End.Sub(w.Start) != time.Minute || w.Count != e.n || w.Min != e.min || w.Max != e.max || w.First != e.first || w.Last != e.last:
			t.Errorf("window %s %s: %+v, the rows give count %d min %v max %v first %v last %v", w.Commodity, w.Start, w, e.n, e.min, e.max, e.first, e.last)
		}
		delete(expect, k)
	}

	// The summary program reads the same tables and must find the same.
	var out bytes.Buffer
	sum := exec.CommandContext(ctx, summary, "-dir", dir, "-api", api)
	sum.Stdout, sum.Stderr = &out, &out
	if err := sum.Run(); err != nil {
		t.Fatalf("summary: %v\n%s", err, out.String())
	}
	perCommodity := map[string]int{}
	for _, r := range rows {
		perCommodity[r.Commodity]++
	}
	names := make([]string, 0, len(perCommodity))
	for c := range perCommodity {
		names = append(names, c)
	}
	sort.Strings(names)
	for _, want := range []string{
		fmt.Sprintf("market.prices             %d rows", len(rows)),
		fmt.Sprintf("%d table rows + %d dead letters = %d", len(rows), produced.Malformed, total),
		fmt.Sprintf("%d produced, %d alerts", produced.Outliers, len(alerts)),
		"OK: nothing lost, nothing counted twice",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("summary output lacks %q:\n%s", want, out.String())
		}
	}
	for _, c := range names {
		if !regexp.MustCompile(fmt.Sprintf(`(?m)^\s*%s\s+%d\s`, c, perCommodity[c])).MatchString(out.String()) {
			t.Errorf("summary output lacks %d rows for %s:\n%s", perCommodity[c], c, out.String())
		}
	}
	t.Logf("%d records: %d rows, %d malformed, %d outliers alerted, %d windows", total, len(rows), produced.Malformed, len(alerts), len(windows))
}
