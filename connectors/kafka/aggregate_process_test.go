package kafka

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// An aggregate stage (transforms/stats) in a consumer group of two `sluice run` processes: one
// is killed with kill -9 mid-stream and started again, so partitions move from one process to
// the other and back. The state of each partition follows it through the source's state log;
// the windows must be those an uninterrupted run computes from each partition's records.

type aggInput struct {
	partition int
	commodity string
	price     float64
	ts        int64
}

type aggRow struct {
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

type aggKey struct {
	key   string
	start int64
}

// aggDataset makes n records per partition, each partition with its own commodities, event time
// advancing 40 ms a record with up to 5 s of disorder and one record in 300 more than a minute
// late; event times are unique within a partition.
func aggDataset(partitions, n int, seed int64) [][]aggInput {
	rng := rand.New(rand.NewSource(seed))
	out := make([][]aggInput, partitions)
	for p := range partitions {
		used := map[int64]bool{}
		price := map[string]float64{}
		base := int64(1_714_564_800_000)
		for i := range n {
			c := fmt.Sprintf("c%d_%d", p, rng.Intn(3))
			if price[c] == 0 {
				price[c] = 100 + float64(rng.Intn(900))
			}
			price[c] = math.Round(price[c]*(1+rng.NormFloat64()*0.002)*100) / 100
			ts := base + int64(i)*40 - int64(rng.Intn(5000))
			if rng.Intn(300) == 0 {
				ts -= 70_000 + int64(rng.Intn(20_000))
			}
			for used[ts] {
				ts++
			}
			used[ts] = true
			out[p] = append(out[p], aggInput{partition: p, commodity: c, price: price[c], ts: ts})
		}
	}
	return out
}

// aggExpect computes, for one partition's records in order, the 1-minute windows with 10 s of
// allowed lateness that its watermark closed, with two-pass formulas.
func aggExpect(in []aggInput, into map[aggKey]aggRow) {
	const size, lateness = 60_000, 10_000
	type acc struct {
		vals            []float64
		firstTs, lastTs int64
		first, last     float64
	}
	accs := map[aggKey]*acc{}
	maxTs := int64(math.MinInt64)
	for _, r := range in {
		start := r.ts - ((r.ts%size)+size)%size
		if maxTs != math.MinInt64 && start+size <= maxTs-lateness {
			continue // late
		}
		maxTs = max(maxTs, r.ts)
		k := aggKey{r.commodity, start}
		a := accs[k]
		if a == nil {
			a = &acc{firstTs: math.MaxInt64, lastTs: math.MinInt64}
			accs[k] = a
		}
		a.vals = append(a.vals, r.price)
		if r.ts < a.firstTs {
			a.firstTs, a.first = r.ts, r.price
		}
		if r.ts > a.lastTs {
			a.lastTs, a.last = r.ts, r.price
		}
	}
	for k, a := range accs {
		if k.start+size > maxTs-lateness {
			continue // still open
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
		into[k] = aggRow{Key: k.key, WindowStart: k.start, WindowEnd: k.start + size, Count: int64(len(a.vals)), Min: mn, Max: mx,
			Mean: mean, Stddev: math.Sqrt(ss / float64(len(a.vals))), First: a.first, Last: a.last}
	}
}

func aggClose(a, b float64) bool {
	return math.Abs(a-b) <= 1e-9*math.Max(1, math.Max(math.Abs(a), math.Abs(b)))
}

func readAggRows(t *testing.T, paths ...string) []aggRow {
	t.Helper()
	var rows []aggRow
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			if l == "" {
				continue
			}
			var r aggRow
			if err := json.Unmarshal([]byte(l), &r); err != nil {
				t.Fatalf("%s: %q: %v", p, l, err)
			}
			rows = append(rows, r)
		}
	}
	return rows
}

func TestAggregateStateFollowsPartitionsIntegration(t *testing.T) {
	b := sharedBroker(t)
	bin := sluiceBinary(t)
	const partitions, perPart = 3, 40_000
	topic := b.topic(t, partitions, nil)
	group := uniqueName(t, "agg")
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	data := aggDataset(partitions, perPart, seed)
	want := map[aggKey]aggRow{}
	for _, in := range data {
		aggExpect(in, want)
	}
	stats, err := filepath.Abs("../../transforms/stats/stats.wasm")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	transforms := fmt.Sprintf(`  transforms:
    - name: stats
      aggregate: {wasm: %q, key: $.commodity, time: $.ts, window: {tumbling: 1m}, allowed_lateness: 10s, late: drop, config: {field: price}}
`, stats)
	var outs []string
	start := func(name string) *proc {
		out := filepath.Join(dir, name+".jsonl")
		outs = append(outs, out)
		m := writeManifest(t, filepath.Join(dir, name+".yaml"), "agg", groupSource(b.addr, topic, group, ""),
			fmt.Sprintf("    - {name: out, type: file, config: {path: %q}}\n", out), procSpecExtra+transforms)
		p := startSluice(t, bin, dir, name, m)
		waitFor(t, time.Minute, name+" ready", func() bool {
			if p.exited() {
				t.Fatalf("%s exited:\n%s", name, p.logTail())
			}
			code, _ := p.readyz()
			return code == 200
		})
		return p
	}
	rows := func() int {
		n := 0
		for _, o := range outs {
			n += countLines(o)
		}
		return n
	}
	a, bp := start("a"), start("b")
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.addr), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	produce := func(from, to int) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for p, in := range data {
			for i := from; i < to; i++ {
				r := in[i]
				v := fmt.Sprintf(`{"seq":%d,"commodity":%q,"price":%s,"ts":%d}`, i, r.commodity, strconv.FormatFloat(r.price, 'f', -1, 64), r.ts)
				cl.Produce(ctx, &kgo.Record{Topic: topic, Partition: int32(p), Value: []byte(v)}, nil)
			}
		}
		if err := cl.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	produce(0, perPart/4)
	waitFor(t, 2*time.Minute, "windows from both processes", func() bool { return countLines(outs[0]) > 0 && countLines(outs[1]) > 0 })
	produce(perPart/4, perPart/2)
	time.Sleep(200 * time.Millisecond)
	a.kill()
	t.Logf("killed a (kill -9) at %d rows", rows())
	produce(perPart/2, 3*perPart/4)
	// b is given a's partitions once a's session expires; a2 then takes some back from b, so
	// state moves both from a dead process and from a live one.
	waitFor(t, 2*time.Minute, "b to be given a's partitions", func() bool { return strings.Count(bp.logText(), "partitions assigned") >= 2 })
	a2 := start("a2")
	produce(3*perPart/4, perPart)
	waitFor(t, 3*time.Minute, "every closed window in the sinks", func() bool {
		if bp.exited() || a2.exited() {
			t.Fatalf("a process exited:\nb:\n%s\na2:\n%s", bp.logTail(), a2.logTail())
		}
		seen := map[aggKey]bool{}
		for _, r := range readAggRows(t, outs...) {
			seen[aggKey{r.Key, r.WindowStart}] = true
		}
		for k := range want {
			if !seen[k] {
				return false
			}
		}
		return true
	})
	bp.terminate()
	a2.terminate()
	got := readAggRows(t, outs...)
	seen := map[aggKey]int{}
	bad := 0
	for _, r := range got {
		k := aggKey{r.Key, r.WindowStart}
		w, ok := want[k]
		switch {
		case !ok:
			t.Errorf("unexpected window %+v", r)
			bad++
		case r.Count != w.Count || r.Min != w.Min || r.Max != w.Max || r.First != w.First || r.Last != w.Last || r.WindowEnd != w.WindowEnd ||
			!aggClose(r.Mean, w.Mean) || !aggClose(r.Stddev, w.Stddev):
			t.Errorf("window %s@%d:\n got %+v\nwant %+v", r.Key, r.WindowStart, r, w)
			bad++
		}
		seen[k]++
		if bad > 10 {
			t.FailNow()
		}
	}
	dups := 0
	for _, n := range seen {
		dups += max(n-1, 0)
	}
	for _, p := range []string{"a", "b", "a2"} {
		t.Logf("%s group events:\n%s", p, grepLines(readFileString(filepath.Join(dir, p+".log")), "partitions assigned", "partitions revoked", "partitions lost"))
	}
	t.Logf("%d windows expected, %d rows written, %d emitted again after the kill", len(want), len(got), dups)
}

func readFileString(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}
