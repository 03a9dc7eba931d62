package kafka

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/transforms/stats/statsref"
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

func readAggRows(t *testing.T, paths ...string) []statsref.Row {
	t.Helper()
	var rows []statsref.Row
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			if l == "" {
				continue
			}
			var r statsref.Row
			if err := json.Unmarshal([]byte(l), &r); err != nil {
				t.Fatalf("%s: %q: %v", p, l, err)
			}
			rows = append(rows, r)
		}
	}
	return rows
}

// aggExpect returns the windows of the stats stage of these tests (1-minute tumbling windows,
// 10 s of allowed lateness), computed by statsref from each partition's records: a partition has
// its own watermark.
func aggExpect(data [][]aggInput) map[statsref.Window]statsref.Row {
	want := map[statsref.Window]statsref.Row{}
	for _, in := range data {
		ref := make([]statsref.Input, len(in))
		for i, r := range in {
			ref[i] = statsref.Input{Key: r.commodity, Price: r.price, TS: r.ts}
		}
		w, _ := statsref.Expect(ref, 60_000, 10_000, false)
		maps.Copy(want, w)
	}
	return want
}

// aggGroup starts `sluice run` processes of one consumer group reading topic through that stats
// stage, each writing its windows to a file of its own (outs, in start order).
type aggGroup struct {
	t                 *testing.T
	bin, addr         string
	topic, group, dir string
	outs              []string
}

// start starts the process name and waits until it is ready.
func (g *aggGroup) start(name string) *proc {
	t := g.t
	t.Helper()
	if g.dir == "" {
		g.dir = t.TempDir()
	}
	stats, err := filepath.Abs("../../transforms/stats/stats.wasm")
	if err != nil {
		t.Fatal(err)
	}
	transforms := fmt.Sprintf(`  transforms:
    - name: stats
      aggregate: {wasm: %q, key: $.commodity, time: $.ts, window: {tumbling: 1m}, allowed_lateness: 10s, late: drop, config: {field: price}}
`, stats)
	out := filepath.Join(g.dir, name+".jsonl")
	g.outs = append(g.outs, out)
	m := writeManifest(t, filepath.Join(g.dir, name+".yaml"), "agg", groupSource(g.addr, g.topic, g.group, ""),
		fmt.Sprintf("    - {name: out, type: file, config: {path: %q}}\n", out), procSpecExtra+transforms)
	p := startSluice(t, g.bin, g.dir, name, m)
	waitFor(t, time.Minute, name+" ready", func() bool {
		if p.exited() {
			t.Fatalf("%s exited:\n%s", name, p.logTail())
		}
		code, _ := p.readyz()
		return code == 200
	})
	return p
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
	want := aggExpect(data)
	g := &aggGroup{t: t, bin: bin, addr: b.addr, topic: topic, group: group}
	start := g.start
	rows := func() int {
		n := 0
		for _, o := range g.outs {
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
	waitFor(t, 2*time.Minute, "windows from both processes", func() bool { return countLines(g.outs[0]) > 0 && countLines(g.outs[1]) > 0 })
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
		seen := map[statsref.Window]bool{}
		for _, r := range readAggRows(t, g.outs...) {
			seen[statsref.Window{Key: r.Key, Start: r.WindowStart}] = true
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
	got := readAggRows(t, g.outs...)
	dups := statsref.Check(t, got, want)
	for _, p := range []string{"a", "b", "a2"} {
		t.Logf("%s group events:\n%s", p, grepLines(readFileString(filepath.Join(g.dir, p+".log")), "partitions assigned", "partitions revoked", "partitions lost"))
	}
	t.Logf("%d windows expected, %d rows written, %d emitted again after the kill", len(want), len(got), dups)
}

func readFileString(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}
