// Command aggregate benchmarks an aggregate stage: the stats module (transforms/stats) keyed by
// $.commodity on 1-minute tumbling windows of event time $.ts with allowed_lateness 10s, for 10,
// 10,000 and 1,000,000 distinct keys, beside a plain Go program doing the same aggregation in a map
// in memory (Welford per key and window, no WebAssembly, no durability: the ceiling). Each scenario
// runs in a fresh child process so that its CPU time and peak memory are its own. Run it with
// `make bench-aggregate` or `go run ./internal/bench/aggregate`.
//
// The input is generated in the process, identically for both: records of about 100 bytes,
//
//	{"seq":1234567,"commodity":"k000123","price":12.34,"ts":1767225600000,"venue":"XCME","unit":"USD/oz"}
//
// with the key drawn uniformly from the key count, the price uniformly from 10.00 to 99.99, and
// event time advancing by 1/rate seconds per record (-rate, default 1,000 records per second of
// event time: a 1-minute window holds 60,000 records) less a jitter of up to 2 s, so records arrive
// slightly out of order but none is late. With 10 keys a slot (a key in a window) folds about 6,000
// records; with 10,000 keys about 6; with 1,000,000 keys almost every slot holds one record, so
// nearly every input makes a slot and an output row.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/sluicehq/sluice/connectors/all"
	"github.com/sluicehq/sluice/internal/bench/child"
	"github.com/sluicehq/sluice/internal/bench/peak"
	"github.com/sluicehq/sluice/internal/checkpoint"
	"github.com/sluicehq/sluice/internal/gctune"
	"github.com/sluicehq/sluice/internal/metrics"
	"github.com/sluicehq/sluice/runtime/catalog"
	"github.com/sluicehq/sluice/runtime/pipeline"
	"github.com/sluicehq/sluice/runtime/supervisor"
	"github.com/sluicehq/sluice/sdk/go/connector"
	"github.com/sluicehq/sluice/sdk/go/template"
)

// statsModule is the stats module, relative to the repository root.
const statsModule = "transforms/stats/stats.wasm"

const (
	window    = time.Minute
	lateness  = 10 * time.Second
	jitterMs  = 2000
	batchSize = 1024 // records per source read, and per batch of the baseline
	seed      = 42
	// baseTime is the event time of the first record: 2026-01-01T00:00:00Z.
	baseTime = int64(1767225600000)
)

type result struct {
	Keys     int           `json:"keys"`
	Impl     string        `json:"impl"`
	Records  int64         `json:"records"`
	Elapsed  time.Duration `json:"elapsed"`
	P50, P99 time.Duration
	Samples  int           `json:"samples"` // latency samples
	CPU      time.Duration `json:"cpu"`     // the child's user and system time, start-up included
	RunCPU   time.Duration `json:"run_cpu"` // its CPU time over the timed run
	MaxRSS   int64         `json:"max_rss"`
	StartRSS int64         `json:"start_rss"` // the peak before the scenario started
	Rows     int64         `json:"rows"`      // output rows (slots emitted)
	Folded   int64         `json:"folded"`    // the sum of the rows' counts
	Digest   uint64        `json:"digest"`    // order-independent digest of (key, window_start, count) of the rows
	Late     int64         `json:"late"`      // late inputs (dropped)
	MaxSlots int64         `json:"max_slots"` // the most slots held at once (sampled for sluice)
	StateDB  int64         `json:"state_db"`  // bytes of checkpoints.db at the end (sluice)
}

func main() {
	childName := flag.String("child", "", "run one impl/keys scenario in this process (internal)")
	records := flag.Int64("records", 2_000_000, "input records per scenario")
	rate := flag.Int64("rate", 1000, "records per second of event time")
	keyList := flag.String("keys", "10,10000,1000000", "distinct key counts, comma-separated")
	module := flag.String("module", statsModule, "the stats module")
	mode := flag.String("mode", pipeline.ModeMetered, "the stage's limits.mode: metered (the default of a manifest), strict or trusted")
	cpuprofile := flag.String("cpuprofile", "", "with -child: write a CPU profile")
	memprofile := flag.String("memprofile", "", "with -child: write an allocation profile")
	traceOut := flag.String("trace", "", "with -child: write an execution trace (go tool trace)")
	flag.Parse()
	if *childName != "" {
		impl, k, _ := strings.Cut(*childName, "/")
		keys, err := strconv.Atoi(k)
		if err != nil || keys <= 0 {
			fatal(fmt.Errorf("-child %q: want IMPL/KEYS", *childName))
		}
		startRSS := peak.RSS() // the binary's start-up: the package initialisation of every connector
		if impl == "sluice" {
			gctune.Apply() // as `sluice run` does; the plain program keeps Go's default
		}
		if *cpuprofile != "" {
			f, err := os.Create(*cpuprofile)
			if err != nil {
				fatal(err)
			}
			pprof.StartCPUProfile(f)
			defer pprof.StopCPUProfile()
		}
		if *traceOut != "" {
			f, err := os.Create(*traceOut)
			if err != nil {
				fatal(err)
			}
			if err := trace.Start(f); err != nil {
				fatal(err)
			}
		}
		var r result
		switch impl {
		case "sluice":
			r, err = runSluice(keys, *records, *rate, *module, *mode)
		case "baseline":
			r, err = runBaseline(keys, *records, *rate)
		default:
			err = fmt.Errorf("unknown impl %q", impl)
		}
		if err != nil {
			fatal(err)
		}
		pprof.StopCPUProfile()
		if *traceOut != "" {
			trace.Stop()
		}
		if *memprofile != "" {
			f, err := os.Create(*memprofile)
			if err != nil {
				fatal(err)
			}
			pprof.Lookup("allocs").WriteTo(f, 0)
			f.Close()
		}
		r.MaxRSS, r.StartRSS = peak.RSS(), startRSS
		json.NewEncoder(os.Stdout).Encode(r)
		return
	}

	var keyCounts []int
	for _, s := range strings.Split(*keyList, ",") {
		n, err := strconv.Atoi(strings.ReplaceAll(strings.TrimSpace(s), "_", ""))
		if err != nil || n <= 0 {
			fatal(fmt.Errorf("-keys: %q is not a key count", s))
		}
		keyCounts = append(keyCounts, n)
	}
	fmt.Printf("aggregate benchmark: %s (mode %s) keyed by $.commodity, time $.ts, tumbling 1m, allowed_lateness 10s;\n", *module, *mode)
	fmt.Printf("%d records of ~100 bytes per scenario, %d records per second of event time, %d cores\n\n", *records, *rate, numCPU())
	fmt.Printf("%-8s %-9s %9s %7s %10s %9s %9s %5s %7s %10s %8s %9s %9s %9s %9s %9s\n", "keys", "impl", "records", "secs", "records/s",
		"p50", "p99", "lat n", "cpu s", "rec/cpu-s", "peak MiB", "start MiB", "rows", "late", "max slots", "state MiB")
	var problems []string
	for _, keys := range keyCounts {
		var rs [2]result
		for i, impl := range []string{"baseline", "sluice"} {
			args := []string{"-child", fmt.Sprintf("%s/%d", impl, keys), "-records", fmt.Sprint(*records), "-rate", fmt.Sprint(*rate), "-module", *module, "-mode", *mode}
			r := &rs[i]
			cpu, err := child.Run(r, args...)
			if err != nil {
				fatal(fmt.Errorf("%s/%d: %w", impl, keys, err))
			}
			r.CPU = cpu
			state := "-"
			if r.Impl == "sluice" {
				state = fmt.Sprintf("%.1f", float64(r.StateDB)/(1<<20))
			}
			fmt.Printf("%-8d %-9s %9d %7.2f %10.0f %9s %9s %5d %7.2f %10.0f %8.1f %9.1f %9d %9d %9d %9s\n", r.Keys, r.Impl, r.Records, r.Elapsed.Seconds(),
				perSec(*r), dur(r.P50), dur(r.P99), r.Samples, r.CPU.Seconds(), float64(r.Records)/r.RunCPU.Seconds(),
				float64(r.MaxRSS)/(1<<20), float64(r.StartRSS)/(1<<20), r.Rows, r.Late, r.MaxSlots, state)
		}
		b, s := rs[0], rs[1]
		fmt.Printf("%-8d %-9s %9s %7s %9.3fx %9s %9s %5s %6.2fx %9.3fx %7.2fx\n", keys, "ratio", "", "", perSec(s)/perSec(b), "", "", "",
			s.CPU.Seconds()/b.CPU.Seconds(), b.RunCPU.Seconds()/s.RunCPU.Seconds(), float64(s.MaxRSS)/float64(b.MaxRSS))
		if s.Rows != b.Rows || s.Folded != b.Folded || s.Digest != b.Digest || s.Late != b.Late {
			msg := fmt.Sprintf("MISMATCH at %d keys: sluice emitted %d rows folding %d records (%d late, digest %016x); the baseline %d rows folding %d records (%d late, digest %016x)",
				keys, s.Rows, s.Folded, s.Late, s.Digest, b.Rows, b.Folded, b.Late, b.Digest)
			fmt.Println(msg)
			problems = append(problems, msg)
		} else {
			fmt.Printf("%-8d rows agree: %d windows of (key, window_start, count) in both\n", keys, s.Rows)
		}
	}
	fmt.Println("\nbaseline = a plain Go program: the same generated input, the key, time and price read with the")
	fmt.Println("host's JSON lookup, Welford per key and window in a map, the same JSON rows built when the")
	fmt.Println("watermark passes a window's end; no WebAssembly, no durability (the ceiling).")
	fmt.Println("sluice = the same input from an in-memory source through the supervisor and the engine (default")
	fmt.Println("settings, the stats module metered) into a sink that counts the rows; timed from the first read.")
	fmt.Println("p50/p99 = latency from reading the batch whose input closed windows to the write of their rows,")
	fmt.Println("one sample per sink write (sluice) or per batch that closed windows (baseline).")
	fmt.Println("lat n = latency samples; with 10 keys there is about one per window, so p99 is close to the worst.")
	fmt.Println("cpu s = the child's user and system time, start-up included (sluice: loading and compiling the")
	fmt.Println("module); rec/cpu-s = records per second of the child's CPU time over the timed run only, which")
	fmt.Println("a loaded machine changes less than records/s.")
	fmt.Println("start MiB = the child's peak before the scenario began (the binary's package initialisation).")
	fmt.Println("ratio = sluice/baseline of records/s, of child CPU time, of records per CPU second, and of peak memory.")
	fmt.Println("max slots = the most (key, window) slots held at once (sluice: sampled every 20 ms).")
	fmt.Println("state MiB = the size of DATA_DIR/checkpoints.db after the run, which holds the positions and")
	fmt.Println("the durable state; bbolt does not shrink its file, so it is the state's high-water mark.")
	if len(problems) > 0 {
		os.Exit(1)
	}
}

// cpuNow is this process's CPU time so far, user and system.
func cpuNow() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func perSec(r result) float64 { return float64(r.Records) / r.Elapsed.Seconds() }

func dur(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	return d.Round(time.Microsecond).String()
}

func numCPU() int {
	b, _ := os.ReadFile("/proc/cpuinfo")
	return strings.Count(string(b), "processor\t:")
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}

// gen generates the input records, the same sequence in every process for the same key count
// and rate.
type gen struct {
	rng  *rand.Rand
	keys int
	rate int64
	seq  int64
}

func newGen(keys int, rate int64) *gen {
	return &gen{rng: rand.New(rand.NewPCG(seed, uint64(keys))), keys: keys, rate: rate}
}

// next appends the next record's value to dst.
func (g *gen) next(dst []byte) []byte {
	g.seq++
	key := g.rng.IntN(g.keys)
	cents := 1000 + g.rng.IntN(9000)
	ts := baseTime + g.seq*1000/g.rate - int64(g.rng.IntN(jitterMs))
	dst = append(dst, `{"seq":`...)
	dst = strconv.AppendInt(dst, g.seq, 10)
	dst = append(dst, `,"commodity":"k`...)
	for d := 100000; d >= 1; d /= 10 {
		dst = append(dst, byte('0'+key/d%10))
	}
	dst = append(dst, `","price":`...)
	dst = strconv.AppendInt(dst, int64(cents/100), 10)
	dst = append(dst, '.', byte('0'+cents/10%10), byte('0'+cents%10))
	dst = append(dst, `,"ts":`...)
	dst = strconv.AppendInt(dst, ts, 10)
	return append(dst, `,"venue":"XCME","unit":"USD/oz"}`...)
}

// tally checks the output rows: their count, the sum of their counts and an order-independent
// digest of (key, window_start, count). Both implementations feed it their JSON rows.
type tally struct {
	rows, folded int64
	digest       uint64
}

func (t *tally) add(row []byte) error {
	key, ok1, err1 := template.Lookup(row, []string{"key"})
	start, ok2, err2 := template.Lookup(row, []string{"window_start"})
	count, ok3, err3 := template.Lookup(row, []string{"count"})
	if err := errors.Join(err1, err2, err3); err != nil || !ok1 || !ok2 || !ok3 {
		return fmt.Errorf("an output row without key, window_start or count (%v): %s", err, row)
	}
	n, err := strconv.ParseInt(string(count), 10, 64)
	if err != nil {
		return fmt.Errorf("an output row's count: %v: %s", err, row)
	}
	t.rows++
	t.folded += n
	h := uint64(14695981039346656037) // FNV-1a over key, window_start and count
	for _, part := range [][]byte{key, start, count} {
		for _, c := range part {
			h = (h ^ uint64(c)) * 1099511628211
		}
		h = (h ^ '|') * 1099511628211
	}
	t.digest += h
	return nil
}

// latencies collects latency samples.
type latencies struct {
	mu  sync.Mutex
	lat []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.lat = append(l.lat, d)
	l.mu.Unlock()
}

func (l *latencies) fill(r *result) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r.Samples = len(l.lat)
	if len(l.lat) == 0 {
		return
	}
	slices.Sort(l.lat)
	r.P50, r.P99 = l.lat[len(l.lat)/2], l.lat[len(l.lat)*99/100]
}

// ---- the baseline ----

// acc is one slot's statistics (Welford), as the stats module keeps them.
type acc struct {
	count           int64
	mean, m2        float64
	min, max        float64
	first, last     float64
	firstTs, lastTs int64
}

func (a *acc) add(x float64, ts int64) {
	if a.count == 0 {
		*a = acc{count: 1, mean: x, min: x, max: x, first: x, firstTs: ts, last: x, lastTs: ts}
		return
	}
	a.count++
	d := x - a.mean
	a.mean += d / float64(a.count)
	a.m2 += d * (x - a.mean)
	a.min = math.Min(a.min, x)
	a.max = math.Max(a.max, x)
	if ts < a.firstTs {
		a.first, a.firstTs = x, ts
	}
	if ts >= a.lastTs {
		a.last, a.lastTs = x, ts
	}
}

// appendRow appends the row the stats module emits for a slot.
func (a *acc) appendRow(dst []byte, key string, start int64) []byte {
	dst = append(dst, `{"key":`...)
	dst = strconv.AppendQuote(dst, key)
	dst = append(dst, `,"window_start":`...)
	dst = strconv.AppendInt(dst, start, 10)
	dst = append(dst, `,"window_end":`...)
	dst = strconv.AppendInt(dst, start+window.Milliseconds(), 10)
	dst = append(dst, `,"count":`...)
	dst = strconv.AppendInt(dst, a.count, 10)
	for _, f := range []struct {
		name string
		v    float64
	}{{`,"min":`, a.min}, {`,"max":`, a.max}, {`,"mean":`, a.mean}, {`,"stddev":`, math.Sqrt(math.Max(a.m2, 0) / float64(a.count))}, {`,"first":`, a.first}, {`,"last":`, a.last}} {
		dst = append(dst, f.name...)
		dst = strconv.AppendFloat(dst, f.v, 'g', -1, 64)
	}
	return append(dst, '}')
}

// baseline aggregates in memory: a map of keys per open window.
type baseline struct {
	open     map[int64]map[string]*acc // by window start
	starts   []int64                   // the open windows, ascending
	maxTs    int64
	wm       int64
	slots    int64
	maxSlots int64
	late     int64
	key, row []byte
	t        tally
}

var (
	pathKey   = []string{"commodity"}
	pathTime  = []string{"ts"}
	pathPrice = []string{"price"}
)

// add folds one record; it reports whether windows closed.
func (b *baseline) add(v []byte) (bool, error) {
	raw, ok, err := template.Lookup(v, pathKey)
	if err != nil || !ok {
		return false, fmt.Errorf("key: missing or %v", err)
	}
	if b.key, err = template.AppendText(b.key[:0], raw); err != nil {
		return false, err
	}
	raw, ok, err = template.Lookup(v, pathTime)
	if err != nil || !ok {
		return false, fmt.Errorf("time: missing or %v", err)
	}
	ts, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil {
		return false, err
	}
	raw, ok, err = template.Lookup(v, pathPrice)
	if err != nil || !ok {
		return false, fmt.Errorf("price: missing or %v", err)
	}
	x, err := strconv.ParseFloat(string(raw), 64)
	if err != nil {
		return false, err
	}
	size := window.Milliseconds()
	start := ts - ((ts%size)+size)%size
	if start+size <= b.wm {
		b.late++
		return false, nil
	}
	w := b.open[start]
	if w == nil {
		w = map[string]*acc{}
		b.open[start] = w
		k, _ := slices.BinarySearch(b.starts, start)
		b.starts = slices.Insert(b.starts, k, start)
	}
	a := w[string(b.key)]
	if a == nil {
		a = &acc{}
		w[string(b.key)] = a
		b.slots++
		b.maxSlots = max(b.maxSlots, b.slots)
	}
	a.add(x, ts)
	b.maxTs = max(b.maxTs, ts)
	if wm := b.maxTs - lateness.Milliseconds(); wm > b.wm {
		b.wm = wm
		return b.close(wm)
	}
	return false, nil
}

// close emits and forgets the windows that end at or before wm.
func (b *baseline) close(wm int64) (bool, error) {
	closed := false
	for len(b.starts) > 0 && b.starts[0]+window.Milliseconds() <= wm {
		start := b.starts[0]
		b.starts = b.starts[1:]
		for key, a := range b.open[start] {
			b.row = a.appendRow(b.row[:0], key, start)
			if err := b.t.add(b.row); err != nil {
				return false, err
			}
		}
		b.slots -= int64(len(b.open[start]))
		delete(b.open, start)
		closed = true
	}
	return closed, nil
}

func runBaseline(keys int, records, rate int64) (result, error) {
	r := result{Keys: keys, Impl: "baseline"}
	g := newGen(keys, rate)
	b := &baseline{open: map[int64]map[string]*acc{}, maxTs: math.MinInt64, wm: math.MinInt64}
	var lat latencies
	buf := make([]byte, 0, batchSize*128)
	ends := make([]int, 0, batchSize)
	cpu0 := cpuNow()
	start := time.Now()
	for r.Records < records {
		read := time.Now()
		n := int(min(batchSize, records-r.Records))
		buf, ends = buf[:0], ends[:0]
		for range n {
			buf = g.next(buf)
			ends = append(ends, len(buf))
		}
		closed := false
		from := 0
		for _, end := range ends {
			c, err := b.add(buf[from:end])
			if err != nil {
				return r, err
			}
			closed = closed || c
			from = end
		}
		if closed {
			lat.add(time.Since(read))
		}
		r.Records += int64(n)
	}
	read := time.Now()
	if _, err := b.close(math.MaxInt64); err != nil {
		return r, err
	}
	lat.add(time.Since(read))
	r.Elapsed, r.RunCPU = time.Since(start), cpuNow()-cpu0
	lat.fill(&r)
	r.Rows, r.Folded, r.Digest, r.Late, r.MaxSlots = b.t.rows, b.t.folded, b.t.digest, b.late, b.maxSlots
	return r, nil
}

// ---- sluice ----

// bench is what the benchmark's source and sink share within one sluice child.
type bench struct {
	keys          int
	records, rate int64
	first         atomic.Int64   // Unix ns of the first read
	firstCPU      atomic.Int64   // the process's CPU time then
	readAt        []atomic.Int64 // Unix ns at which each source batch was read
	lat           latencies
	mu            sync.Mutex
	t             tally
	err           error
}

var current *bench

func runSluice(keys int, records, rate int64, module, mode string) (result, error) {
	r := result{Keys: keys, Impl: "sluice"}
	dir, err := os.MkdirTemp("", "sluice-bench-aggregate-")
	if err != nil {
		return r, err
	}
	defer os.RemoveAll(dir)
	if _, err := os.Stat(module); err != nil {
		return r, fmt.Errorf("the stats module: %w (run from the repository root, or pass -module)", err)
	}
	current = &bench{keys: keys, records: records, rate: rate, readAt: make([]atomic.Int64, records/batchSize+2)}
	p := &pipeline.Pipeline{
		Name:   "stats",
		Source: pipeline.Component{Type: "bench-prices", Config: connector.Config{}},
		Transforms: []pipeline.Transform{{Name: "stats", Module: module, Config: []byte(`{"field":"price"}`),
			Aggregate: &pipeline.Aggregate{Key: "$.commodity", Time: "$.ts", Tumbling: window, AllowedLateness: lateness, Late: pipeline.LateDrop}, Limits: pipeline.Limits{Mode: mode}}},
		Sinks: []pipeline.Sink{{Name: "out", Component: pipeline.Component{Type: "bench-rows", Config: connector.Config{}}}},
	}
	data := filepath.Join(dir, "data")
	m := metrics.New()
	ctx := context.Background()
	sup, err := supervisor.New(supervisor.Options{Catalog: benchCatalog(), DataDir: data, Metrics: m})
	if err != nil {
		return r, err
	}
	defer sup.Close(ctx)
	if problems := sup.Add(ctx, p); len(problems) > 0 {
		return r, fmt.Errorf("%v", problems)
	}
	// Sample the slots held while the pipeline runs.
	slots := m.AggSlots.WithLabelValues(p.Name, "stats")
	stop := make(chan struct{})
	sampled := make(chan int64)
	go func() {
		var most int64
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			var d dto.Metric
			slots.Write(&d)
			most = max(most, int64(d.GetGauge().GetValue()))
			select {
			case <-t.C:
			case <-stop:
				sampled <- most
				return
			}
		}
	}()
	if err := sup.Run(ctx, supervisor.RunOptions{}); err != nil {
		return r, err
	}
	end, endCPU := time.Now(), cpuNow()
	close(stop)
	r.MaxSlots = <-sampled
	b := current
	r.Records, r.Elapsed = records, end.Sub(time.Unix(0, b.first.Load()))
	r.RunCPU = endCPU - time.Duration(b.firstCPU.Load())
	if b.err != nil {
		return r, b.err
	}
	b.lat.fill(&r)
	r.Rows, r.Folded, r.Digest = b.t.rows, b.t.folded, b.t.digest
	var late dto.Metric
	m.AggLate.WithLabelValues(p.Name, "stats").Write(&late)
	r.Late = int64(late.GetCounter().GetValue())
	fi, err := os.Stat(filepath.Join(data, checkpoint.FileName))
	if err != nil {
		return r, err
	}
	r.StateDB = fi.Size()
	return r, nil
}

// benchCatalog holds the built-in connectors and the benchmark's source and sink.
func benchCatalog() *catalog.Catalog {
	cat := all.Catalog()
	for _, c := range []connector.Component{
		connector.SourceComponent(connector.Spec{Name: "bench-prices", Summary: "benchmark source"}, func(connector.Config, connector.Env) (connector.Source, error) {
			return &priceSource{b: current, g: newGen(current.keys, current.rate)}, nil
		}),
		connector.SinkComponent(connector.Spec{Name: "bench-rows", Summary: "benchmark sink"}, func(connector.Config, connector.Env) (connector.Sink, error) {
			return &rowSink{b: current}, nil
		}),
	} {
		if err := cat.Add(c); err != nil {
			fatal(err)
		}
	}
	return cat
}

// priceSource generates the input in batches of batchSize, each in a buffer of its own, and
// notes when it read each batch.
type priceSource struct {
	b *bench
	g *gen
}

func (s *priceSource) PositionsComparable() bool                        { return true }
func (s *priceSource) Open(context.Context, []connector.Position) error { return nil }
func (s *priceSource) Ack(context.Context, []connector.Position) error  { return nil }
func (s *priceSource) Close(context.Context) error                      { return nil }

func (s *priceSource) Read(context.Context) ([]connector.Record, error) {
	left := s.b.records - s.g.seq
	if left <= 0 {
		return nil, io.EOF
	}
	now := time.Now()
	if s.b.first.CompareAndSwap(0, now.UnixNano()) {
		s.b.firstCPU.Store(int64(cpuNow()))
	}
	s.b.readAt[s.g.seq/batchSize].Store(now.UnixNano())
	n := int(min(batchSize, left))
	buf := make([]byte, 0, n*104)
	out := make([]connector.Record, n)
	for i := range out {
		from := len(buf)
		buf = s.g.next(buf)
		out[i] = connector.Record{Value: buf[from:len(buf):len(buf)], Time: now, Position: connector.Position{Offset: s.g.seq}}
	}
	return out, nil
}

// rowSink tallies the rows and notes, per write, the latency from the read of the oldest input
// whose position its rows carry (the input that closed their window).
type rowSink struct{ b *bench }

func (s *rowSink) Open(context.Context) error  { return nil }
func (s *rowSink) Close(context.Context) error { return nil }

func (s *rowSink) Write(_ context.Context, recs []connector.Record) error {
	now := time.Now()
	b := s.b
	b.mu.Lock()
	defer b.mu.Unlock()
	oldest := int64(math.MaxInt64)
	for i := range recs {
		if err := b.t.add(recs[i].Value); err != nil && b.err == nil {
			b.err = err
		}
		off := recs[i].Position.Offset
		if off >= 1 {
			oldest = min(oldest, b.readAt[(off-1)/batchSize].Load())
		}
	}
	if oldest != math.MaxInt64 && oldest != 0 {
		b.lat.add(now.Sub(time.Unix(0, oldest)))
	}
	return nil
}
