// Command redis benchmarks the Redis sink against a plain program writing the same records with
// pipelined go-redis (the ceiling), each scenario in a fresh child process so CPU time and peak
// memory are its own, against a redis-server of its own started for the run. Run it with
// `make bench-redis` or `go run ./internal/bench/redis`. `-child stream/sink -addr HOST:PORT`
// writes with the sink's Write called in a loop, without the engine, to tell their costs apart.
package main

import (
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/sluicehq/sluice/connectors/generate"
	"github.com/sluicehq/sluice/connectors/redis"
	"github.com/sluicehq/sluice/internal/bench/child"
	"github.com/sluicehq/sluice/internal/bench/latency"
	"github.com/sluicehq/sluice/internal/bench/peak"
	"github.com/sluicehq/sluice/internal/checkpoint"
	"github.com/sluicehq/sluice/internal/engine"
	"github.com/sluicehq/sluice/internal/gctune"
	"github.com/sluicehq/sluice/runtime/catalog"
	"github.com/sluicehq/sluice/runtime/pipeline"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// A 100-byte record (for 7-digit sequence numbers; within a few bytes otherwise), as in the
// engine benchmark.
const template = `{"seq":{{seq}},"commodity":"{{pick gold silver copper}}","price":{{rand_float 10 99}},"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}`

// batchSize is the records per batch of both programs: the engine's default batch.
const batchSize = 1024

type result struct {
	Scenario string        `json:"scenario"`
	Impl     string        `json:"impl"`
	Records  int64         `json:"records"`
	Bytes    int64         `json:"bytes"`
	Elapsed  time.Duration `json:"elapsed"`
	P50, P99 time.Duration
	CPU      time.Duration `json:"cpu"`
	MaxRSS   int64         `json:"max_rss"`
}

// scenarios: the sink's mode and its configuration, and the command the direct program sends.
// "paced" is stream mode with the source held to paceRate records/s: the latency of a sink that
// keeps up, where the other scenarios measure throughput with records queueing in the budget.
// "tx" is stream mode with delivery exactly_once: each batch and its positions in one MULTI/EXEC.
var scenarios = []string{"stream/direct", "stream/sluice", "tx/direct", "tx/sluice", "hash/direct", "hash/sluice", "paced/direct", "paced/sluice"}

const (
	paceRate     = 20_000
	pacedRecords = 100_000
	pacedLinger  = time.Millisecond
)

func main() {
	child := flag.String("child", "", "run one scenario/impl in this process (internal)")
	addr := flag.String("addr", "", "with -child: the Redis server")
	records := flag.Int64("records", 1_000_000, "records of the stream scenario; tx writes half, hash a third, paced at most pacedRecords")
	cpuprofile := flag.String("cpuprofile", "", "with -child: write a CPU profile")
	rounds := flag.Int("rounds", 3, "rounds of the throughput scenarios; the median is shown")
	only := flag.String("only", "", "run only the scenarios whose name contains this (stream, tx, hash, paced)")
	flag.Parse()
	if *child != "" {
		if strings.Contains(*child, "/sluice") {
			gctune.Apply() // as `sluice run` does; the plain programs keep Go's default
		}
		if *cpuprofile != "" {
			f, err := os.Create(*cpuprofile)
			if err != nil {
				fatal(err)
			}
			pprof.StartCPUProfile(f)
		}
		r, err := runChild(*child, *addr, *records)
		pprof.StopCPUProfile()
		if err != nil {
			fatal(err)
		}
		r.MaxRSS = peak.RSS()
		json.NewEncoder(os.Stdout).Encode(r)
		return
	}
	srv, err := startServer()
	if err != nil {
		fatal(err)
	}
	defer srv.stop()
	fmt.Printf("redis sink benchmark: 100-byte records, batches of %d, a private redis-server (%s), %d cores\n\n", batchSize, srv.version, numCPU())
	fmt.Printf("%-8s %-8s %10s %8s %12s %8s %9s %9s %8s %9s\n", "scenario", "impl", "records", "secs", "records/s", "MB/s", "p50", "p99", "cpu s", "peak MiB")
	// Each throughput scenario runs -rounds times, direct and sluice alternating, and the median
	// round is shown: single runs on a shared machine vary by 2x.
	runs := map[string][]result{}
	for round := 0; round < *rounds; round++ {
		for _, sc := range scenarios {
			if !strings.Contains(sc, *only) || strings.HasPrefix(sc, "paced") && round > 0 {
				continue
			}
			r, err := runScenario(sc, srv.addr, *records)
			if err != nil {
				fatal(err)
			}
			runs[sc] = append(runs[sc], r)
			if err := srv.flush(); err != nil {
				fatal(err)
			}
		}
	}
	rates := map[string]float64{}
	for _, sc := range scenarios {
		if len(runs[sc]) == 0 {
			continue
		}
		rs := runs[sc]
		slices.SortFunc(rs, func(a, b result) int { return cmp.Compare(a.rate(), b.rate()) })
		r := rs[len(rs)/2]
		rates[sc] = r.rate()
		secs := r.Elapsed.Seconds()
		fmt.Printf("%-8s %-8s %10d %8.2f %12.0f %8.1f %9s %9s %8.2f %9.1f\n", r.Scenario, r.Impl, r.Records, secs,
			r.rate(), float64(r.Bytes)/secs/1e6, dur(r.P50), dur(r.P99), r.CPU.Seconds(), float64(r.MaxRSS)/(1<<20))
	}
	fmt.Println()
	for _, mode := range []string{"stream", "tx", "hash", "paced"} {
		if rates[mode+"/direct"] > 0 {
			var each []string
			for _, r := range runs[mode+"/sluice"] {
				each = append(each, fmt.Sprintf("%.0f", r.rate()))
			}
			var direct []string
			for _, r := range runs[mode+"/direct"] {
				direct = append(direct, fmt.Sprintf("%.0f", r.rate()))
			}
			fmt.Printf("%-6s sluice / direct = %.2f   (records/s of each round: sluice %s; direct %s)\n", mode+":",
				rates[mode+"/sluice"]/rates[mode+"/direct"], strings.Join(each, " "), strings.Join(direct, " "))
		}
	}
	fmt.Println("\ndirect = generate's records written by a plain program: one go-redis pipeline (XADD, or HSET of the")
	fmt.Println("fields json.Unmarshal finds) per batch, the next batch generated meanwhile by another goroutine.")
	fmt.Println("sluice = generate → redis sink through the engine, default policies.")
	fmt.Println("tx = stream with delivery exactly_once: direct sends each batch and an HSET of its last position in")
	fmt.Println("one MULTI/EXEC (go-redis TxPipeline); sluice writes through WriteTx.")
	fmt.Printf("paced = stream with the source held to %d records/s (%d records, batch linger %v): latency when the sink keeps up.\n", paceRate, pacedRecords, pacedLinger)
	fmt.Println("p50/p99 = latency from a record's creation to the reply of its batch's pipeline; in stream and hash")
	fmt.Println("the source outruns Redis, so sluice's latency there is mostly the wait in the pipeline's buffer.")
	fmt.Println("cpu s and peak MiB are the benchmark process's; the redis-server's own CPU is not counted.")
}

func (r result) rate() float64 { return float64(r.Records) / r.Elapsed.Seconds() }

// runScenario runs one scenario in a child process and adds its CPU time and peak RSS.
func runScenario(sc, addr string, records int64) (result, error) {
	var r result
	cpu, err := child.Run(&r, "-child", sc, "-addr", addr, "-records", fmt.Sprint(records))
	if err != nil {
		return r, fmt.Errorf("%s: %w", sc, err)
	}
	r.CPU = cpu
	return r, nil
}

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

// server is the redis-server of the run: in memory only, on a free port.
type server struct {
	addr, version string
	dir           string
	cmd           *exec.Cmd
}

func startServer() (*server, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("redis-server not found (make services installs it): %w", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	dir, err := os.MkdirTemp("", "sluice-bench-redis-")
	if err != nil {
		return nil, err
	}
	s := &server{addr: fmt.Sprintf("127.0.0.1:%d", port), dir: dir}
	s.cmd = exec.Command(bin, "--bind", "127.0.0.1", "--port", fmt.Sprint(port), "--dir", dir, "--save", "", "--appendonly", "no", "--logfile", "redis.log")
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	c := goredis.NewClient(&goredis.Options{Addr: s.addr})
	defer c.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		info, err := c.Info(context.Background(), "server").Result()
		if err == nil {
			for _, line := range strings.Split(info, "\r\n") {
				if v, ok := strings.CutPrefix(line, "redis_version:"); ok {
					s.version = "redis " + v
				}
			}
			return s, nil
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("redis-server did not start: %w", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *server) flush() error {
	c := goredis.NewClient(&goredis.Options{Addr: s.addr})
	defer c.Close()
	return c.FlushAll(context.Background()).Err()
}

func (s *server) stop() {
	s.cmd.Process.Kill()
	s.cmd.Wait()
	os.RemoveAll(s.dir)
}

func runChild(name, addr string, records int64) (result, error) {
	mode, impl, _ := strings.Cut(name, "/")
	r := result{Scenario: mode, Impl: impl}
	switch mode {
	case "paced":
		records = min(records, pacedRecords)
	case "hash":
		records /= 3
	case "tx":
		records /= 2
	}
	switch impl {
	case "direct":
		return r, r.direct(mode, addr, records)
	case "sluice":
		return r, r.sluice(mode, addr, records)
	case "sink":
		return r, r.sink(mode, addr, records)
	}
	return r, fmt.Errorf("unknown scenario %q", name)
}

func newGenerate(mode string, n int64) *generate.Source {
	s, err := generate.New(genConfig(mode, n), connector.Env{})
	if err != nil {
		fatal(err)
	}
	s.Open(context.Background(), nil)
	return s
}

func genConfig(mode string, n int64) connector.Config {
	cfg := connector.Config{"count": n, "template": template, "batch_size": int64(batchSize), "seed": int64(42)}
	if mode == "paced" {
		cfg["rate"] = float64(paceRate)
	}
	return cfg
}

// direct writes the records as a plain go-redis program would: generating the next batch while
// the last one is written, one pipeline per batch.
func (r *result) direct(mode, addr string, records int64) error {
	ctx := context.Background()
	c := goredis.NewClient(&goredis.Options{Addr: addr})
	defer c.Close()
	src := newGenerate(mode, records)
	batches := make(chan []connector.Record, 4)
	var readErr error
	go func() {
		defer close(batches)
		for {
			recs, err := src.Read(ctx)
			if err != nil {
				if err != io.EOF {
					readErr = err
				}
				return
			}
			batches <- recs
		}
	}()
	var lat []time.Duration
	start := time.Now()
	for recs := range batches {
		pipe := c.Pipeline()
		if mode == "tx" {
			pipe = c.TxPipeline()
		}
		for i := range recs {
			if mode != "hash" {
				pipe.XAdd(ctx, &goredis.XAddArgs{Stream: "prices", Values: []any{"value", recs[i].Value}})
				continue
			}
			var fields map[string]any
			if err := json.Unmarshal(recs[i].Value, &fields); err != nil {
				return err
			}
			pipe.HSet(ctx, fmt.Sprint("price:", fields["seq"]), fields)
		}
		if mode == "tx" {
			last := recs[len(recs)-1].Position
			pipe.HSet(ctx, "positions", last.Partition, fmt.Sprintf(`{"offset":%d}`, last.Offset))
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return err
		}
		lat = append(lat, time.Since(recs[0].Time))
		for i := range recs {
			r.Bytes += int64(len(recs[i].Value))
		}
		r.Records += int64(len(recs))
	}
	r.Elapsed = time.Since(start)
	r.P50, r.P99 = latency.Percentiles(lat)
	return readErr
}

// sink writes generate's batches with the redis sink's Write, without the engine, as direct
// does: it tells the sink's cost from the engine's.
func (r *result) sink(mode, addr string, records int64) error {
	ctx := context.Background()
	values := map[string]any{"addr": addr, "mode": "stream", "stream": "prices"}
	if mode == "hash" {
		values = map[string]any{"addr": addr, "mode": "hash", "key": "price:{{seq}}"}
	}
	cfg, err := redis.Components()[0].Spec.Config(values)
	if err != nil {
		return err
	}
	snk, err := redis.NewSink(cfg, connector.Env{Pipeline: "bench", Component: "out"})
	if err != nil {
		return err
	}
	if err := snk.Open(ctx); err != nil {
		return err
	}
	defer snk.Close(ctx)
	src := newGenerate(mode, records)
	batches := make(chan []connector.Record, 4)
	go func() {
		defer close(batches)
		for {
			recs, err := src.Read(ctx)
			if err != nil {
				return
			}
			batches <- recs
		}
	}()
	var lat []time.Duration
	start := time.Now()
	for recs := range batches {
		if err := snk.Write(ctx, recs); err != nil {
			return err
		}
		lat = append(lat, time.Since(recs[0].Time))
		for i := range recs {
			r.Bytes += int64(len(recs[i].Value))
		}
		r.Records += int64(len(recs))
	}
	r.Elapsed = time.Since(start)
	r.P50, r.P99 = latency.Percentiles(lat)
	return nil
}

// sluice runs generate → redis sink through the engine.
func (r *result) sluice(mode, addr string, records int64) error {
	values := map[string]any{"addr": addr, "mode": "stream", "stream": "prices"}
	if mode == "hash" {
		values = map[string]any{"addr": addr, "mode": "hash", "key": "price:{{seq}}"}
	}
	spec := redis.Components()[0].Spec
	cfg, err := spec.Config(values)
	if err != nil {
		return err
	}
	inner, err := redis.NewSink(cfg, connector.Env{Pipeline: "bench", Component: "out"})
	if err != nil {
		return err
	}
	lat := &latencySink{inner: inner}
	var snk connector.Sink = lat
	if mode == "tx" {
		snk = &txLatencySink{latencySink: lat, tx: inner}
	}
	cat, err := catalog.New(generate.Component(), connector.SinkComponent(connector.Spec{Name: "bench-latency", Summary: "benchmark sink", ExactlyOnce: mode == "tx"},
		func(connector.Config, connector.Env) (connector.Sink, error) { return snk, nil }))
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "sluice-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	store, err := checkpoint.Open(filepath.Join(dir, "data"))
	if err != nil {
		return err
	}
	defer store.Close()
	p := &pipeline.Pipeline{Name: "bench", Source: pipeline.Component{Type: "generate", Config: genConfig(mode, records)},
		Sinks: []pipeline.Sink{{Name: "out", Component: pipeline.Component{Type: "bench-latency", Config: connector.Config{}}}}}
	switch mode {
	case "paced":
		p.Batch.Linger = pacedLinger
	case "tx":
		p.Delivery = pipeline.ExactlyOnce
	}
	e, err := engine.New(p, engine.Options{Catalog: cat, Checkpoints: store})
	if err != nil {
		return err
	}
	start := time.Now()
	if err := e.Run(context.Background()); err != nil {
		return err
	}
	r.Elapsed = time.Since(start)
	r.Records, r.Bytes = lat.records, lat.bytes
	r.P50, r.P99 = latency.Percentiles(lat.lat)
	return nil
}

// latencySink writes through the redis sink and records the latency of each batch's first
// record.
type latencySink struct {
	inner          connector.Sink
	mu             sync.Mutex
	lat            []time.Duration
	records, bytes int64
}

func (s *latencySink) Open(ctx context.Context) error  { return s.inner.Open(ctx) }
func (s *latencySink) Close(ctx context.Context) error { return s.inner.Close(ctx) }

func (s *latencySink) Write(ctx context.Context, recs []connector.Record) error {
	if err := s.inner.Write(ctx, recs); err != nil {
		return err
	}
	s.observe(recs)
	return nil
}

// observe counts a written batch and the latency of its first record.
func (s *latencySink) observe(recs []connector.Record) {
	if len(recs) == 0 {
		return
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lat = append(s.lat, now.Sub(recs[0].Time))
	s.records += int64(len(recs))
	for i := range recs {
		s.bytes += int64(len(recs[i].Value))
	}
}

// txLatencySink is latencySink for delivery exactly_once: it writes through WriteTx.
type txLatencySink struct {
	*latencySink
	tx connector.TransactionalSink
}

func (s *txLatencySink) CheckExactlyOnce() error { return s.tx.CheckExactlyOnce() }
func (s *txLatencySink) StoredPositions(ctx context.Context) ([]connector.Position, error) {
	return s.tx.StoredPositions(ctx)
}

func (s *txLatencySink) WriteTx(ctx context.Context, recs []connector.Record, pos []connector.Position) error {
	if err := s.tx.WriteTx(ctx, recs, pos); err != nil {
		return err
	}
	s.observe(recs)
	return nil
}
