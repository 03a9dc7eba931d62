// Command engine benchmarks the pipeline engine against a hand-written direct program doing the
// same work (the ceiling), each scenario in a fresh child process so CPU time and peak memory are
// its own. Run it with `make bench-engine` or `go run ./internal/bench/engine`.
package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sluicehq/sluice/connectors/all"
	"github.com/sluicehq/sluice/connectors/file"
	"github.com/sluicehq/sluice/connectors/generate"
	"github.com/sluicehq/sluice/internal/bench/child"
	"github.com/sluicehq/sluice/internal/bench/peak"
	"github.com/sluicehq/sluice/internal/checkpoint"
	"github.com/sluicehq/sluice/internal/engine"
	"github.com/sluicehq/sluice/internal/gctune"
	"github.com/sluicehq/sluice/runtime/catalog"
	"github.com/sluicehq/sluice/runtime/pipeline"
	"github.com/sluicehq/sluice/runtime/supervisor"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// A 100-byte record: the template renders to exactly 100 bytes for 7-digit sequence numbers and
// within a few bytes otherwise.
const template = `{"seq":{{seq}},"commodity":"{{pick gold silver copper}}","price":{{rand_float 10 99}},"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}`

// priceTemplate renders valid validate_price inputs of about 100 bytes (a price, a commodity, an
// RFC 3339 timestamp), so that every record passes and the transform's whole check runs.
const priceTemplate = `{"seq":{{seq}},"commodity":"{{pick gold silver copper}}","price":{{rand_float 10 99}},"ts":"2026-11-22T02:30:00Z","unit":"USD/oz"}`

// validatePrice is the C validate_price module, relative to the repository root.
const validatePrice = "transforms/validate_price/c/validate_price.wasm"

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

func main() {
	childName := flag.String("child", "", "run one scenario/impl in this process (internal)")
	records := flag.Int64("records", 5_000_000, "records for generate → drop")
	fileRecords := flag.Int64("file-records", 2_000_000, "records for file → file")
	cpuprofile := flag.String("cpuprofile", "", "with -child: write a CPU profile")
	memprofile := flag.String("memprofile", "", "with -child: write an allocation profile")
	flag.Parse()
	if *childName != "" {
		if !strings.HasSuffix(*childName, "/direct") {
			gctune.Apply() // as `sluice run` does; the plain programs keep Go's default
		}
		if *cpuprofile != "" {
			f, err := os.Create(*cpuprofile)
			if err != nil {
				fatal(err)
			}
			pprof.StartCPUProfile(f)
			defer pprof.StopCPUProfile()
		}
		r, err := runChild(*childName, *records, *fileRecords)
		if err != nil {
			fatal(err)
		}
		pprof.StopCPUProfile()
		if *memprofile != "" {
			f, err := os.Create(*memprofile)
			if err != nil {
				fatal(err)
			}
			pprof.Lookup("allocs").WriteTo(f, 0)
			f.Close()
		}
		r.MaxRSS = peak.RSS()
		json.NewEncoder(os.Stdout).Encode(r)
		return
	}
	fmt.Printf("engine benchmark: 100-byte records, %d cores\n\n", numCPU())
	fmt.Printf("%-16s %-8s %10s %8s %12s %8s %9s %9s %8s %9s\n", "scenario", "impl", "records", "secs", "records/s", "MB/s", "p50", "p99", "cpu s", "peak MiB")
	for _, sc := range []string{"memory-drop/sluice", "memory-eo/sluice", "generate-drop/direct", "generate-drop/sluice", "file-file/direct", "file-file/sluice", "file-file-eo/sluice",
		"gen-wasm-drop/none", "gen-wasm-drop/trusted", "gen-wasm-drop/default", "gen-wasm-drop/strict"} {
		args := []string{"-child", sc, "-records", fmt.Sprint(*records), "-file-records", fmt.Sprint(*fileRecords)}
		var r result
		cpu, err := child.Run(&r, args...)
		if err != nil {
			fatal(fmt.Errorf("%s: %w", sc, err))
		}
		r.CPU = cpu
		secs := r.Elapsed.Seconds()
		fmt.Printf("%-16s %-8s %10d %8.2f %12.0f %8.1f %9s %9s %8.2f %9.1f\n", r.Scenario, r.Impl, r.Records, secs,
			float64(r.Records)/secs, float64(r.Bytes)/secs/1e6, dur(r.P50), dur(r.P99), r.CPU.Seconds(), float64(r.MaxRSS)/(1<<20))
	}
	fmt.Println("\nmemory-drop = pre-rendered batches replayed from memory: the engine's own cost per record.")
	fmt.Println("memory-eo = the same with delivery: exactly_once into a transactional sink that drops the records.")
	fmt.Println("file-file-eo = file → file with delivery: exactly_once (records synced, then the positions file renamed into place).")
	fmt.Println("direct = a hand-written program doing the same work without the engine (the ceiling);")
	fmt.Println("for file-file it fsyncs every 4096 lines, the largest write the engine's sink coalesces.")
	fmt.Println("p50/p99 = latency from a record's creation (generate) or read (file) to its batch's durable write.")
	fmt.Println("gen-wasm-drop = generate → validate_price (C) → drop through the supervisor, default settings: impl is")
	fmt.Println("the transform's limits.mode (default = metered; none = no transform, the ceiling); each includes")
	fmt.Println("loading and compiling the module.")
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

func runChild(name string, records, fileRecords int64) (result, error) {
	scenario, impl, _ := strings.Cut(name, "/")
	r := result{Scenario: scenario, Impl: impl}
	dir, err := os.MkdirTemp("", "sluice-bench-")
	if err != nil {
		return r, err
	}
	defer os.RemoveAll(dir)
	switch name {
	case "generate-drop/direct":
		src := newGenerate(records)
		start := time.Now()
		for {
			recs, err := src.Read(context.Background())
			if err == io.EOF {
				break
			}
			if err != nil {
				return r, err
			}
			for i := range recs {
				r.Bytes += int64(len(recs[i].Value))
			}
			r.Records += int64(len(recs))
		}
		r.Elapsed = time.Since(start)
		return r, nil
	case "memory-drop/sluice", "memory-eo/sluice":
		memSources.Store("bench-memory", records)
		err := r.measure(dir, pipeline.Component{Type: "bench-memory", Config: connector.Config{}}, nil)
		return r, err
	case "generate-drop/sluice":
		err := r.measure(dir, pipeline.Component{Type: "generate", Config: genConfig(records)}, nil)
		return r, err
	case "gen-wasm-drop/none", "gen-wasm-drop/trusted", "gen-wasm-drop/default", "gen-wasm-drop/strict":
		err := r.measureWASM(dir, records)
		return r, err
	}
	// file → file: write the input first (not timed).
	in := filepath.Join(dir, "in.jsonl")
	if err := writeInput(in, fileRecords); err != nil {
		return r, err
	}
	out := filepath.Join(dir, "out.jsonl")
	switch name {
	case "file-file/direct":
		start := time.Now()
		n, b, err := directCopy(in, out, 4096)
		if err != nil {
			return r, err
		}
		r.Elapsed, r.Records, r.Bytes = time.Since(start), n, b
	case "file-file/sluice", "file-file-eo/sluice":
		fs, ferr := file.NewSink(connector.Config{"path": out, "fsync": true}, connector.Env{Pipeline: r.Scenario, Component: "out"})
		if ferr != nil {
			return r, ferr
		}
		if err := r.measure(dir, pipeline.Component{Type: "file", Config: connector.Config{"path": in}}, fs); err != nil {
			return r, err
		}
	default:
		return r, fmt.Errorf("unknown scenario %q", name)
	}
	return r, nil
}

// measure runs source → latency sink (writing through inner, or dropping when nil) through the
// engine and fills the result. Scenarios ending in -eo run with delivery: exactly_once.
func (r *result) measure(dir string, source pipeline.Component, inner connector.Sink) error {
	lat := &latencySink{inner: inner}
	var sink connector.Sink = lat
	p := benchPipeline(r.Scenario, source, "bench-latency")
	if strings.HasSuffix(r.Scenario, "-eo") {
		p.Delivery = pipeline.ExactlyOnce
		tx, _ := inner.(connector.TransactionalSink)
		sink = &txLatencySink{latencySink: lat, tx: tx}
	}
	latencySinks.Store("bench-latency", sink)
	start := time.Now()
	if err := runEngine(dir, p); err != nil {
		return err
	}
	r.Elapsed = time.Since(start)
	r.Records, r.Bytes = lat.records, lat.bytes
	r.P50, r.P99 = lat.percentiles()
	return nil
}

// measureWASM runs generate → validate_price (C) → latency sink through the supervisor, as
// `sluice run` does, on default settings apart from the transform's mode (r.Impl; "default"
// leaves it unset, "none" runs no transform).
func (r *result) measureWASM(dir string, records int64) error {
	lat := &latencySink{}
	latencySinks.Store("bench-latency", lat)
	cfg := connector.Config{"count": records, "template": priceTemplate, "seed": int64(42)}
	p := benchPipeline(r.Scenario, pipeline.Component{Type: "generate", Config: cfg}, "bench-latency")
	if r.Impl != "none" {
		mode := r.Impl
		if mode == "default" {
			mode = ""
		}
		p.Transforms = []pipeline.Transform{{Name: "validate", Module: cmp.Or(os.Getenv("SLUICE_BENCH_MODULE"), validatePrice), Limits: pipeline.Limits{Mode: mode, Instances: benchInstances()}}}
	}
	ctx := context.Background()
	start := time.Now()
	sup, err := supervisor.New(supervisor.Options{Catalog: benchCatalog(), DataDir: filepath.Join(dir, "data")})
	if err != nil {
		return err
	}
	defer sup.Close(ctx)
	if problems := sup.Add(ctx, p); len(problems) > 0 {
		return fmt.Errorf("%v", problems)
	}
	if err := sup.Run(ctx, supervisor.RunOptions{}); err != nil {
		return err
	}
	r.Elapsed = time.Since(start)
	r.Records, r.Bytes = lat.records, lat.bytes
	if r.Records != records {
		return fmt.Errorf("%d of %d records reached the sink: the input is meant to be valid", r.Records, records)
	}
	r.P50, r.P99 = lat.percentiles()
	return nil
}

func genConfig(n int64) connector.Config {
	return connector.Config{"count": n, "template": template, "batch_size": int64(1024), "seed": int64(42)}
}

func newGenerate(n int64) *generate.Source {
	s, err := generate.New(genConfig(n), connector.Env{})
	if err != nil {
		fatal(err)
	}
	s.Open(context.Background(), nil)
	return s
}

// benchPipeline is a pipeline with the default policies.
func benchPipeline(name string, src pipeline.Component, sinkType string) *pipeline.Pipeline {
	return &pipeline.Pipeline{
		Name: name, Source: src,
		Sinks: []pipeline.Sink{{Name: "out", Component: pipeline.Component{Type: sinkType, Config: connector.Config{}}}},
	}
}

func runEngine(dir string, p *pipeline.Pipeline) error {
	store, err := checkpoint.Open(filepath.Join(dir, "data"))
	if err != nil {
		return err
	}
	defer store.Close()
	e, err := engine.New(p, engine.Options{Catalog: benchCatalog(), Checkpoints: store})
	if err != nil {
		return err
	}
	return e.Run(context.Background())
}

func writeInput(path string, n int64) error {
	src := newGenerate(n)
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	for {
		recs, err := src.Read(context.Background())
		if err == io.EOF {
			break
		}
		for _, r := range recs {
			w.Write(r.Value)
			w.WriteByte('\n')
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Close()
}

// directCopy is the ceiling for file → file: read lines, append them, fsync every batch.
func directCopy(in, out string, batch int) (int64, int64, error) {
	fi, err := os.Open(in)
	if err != nil {
		return 0, 0, err
	}
	defer fi.Close()
	fo, err := os.Create(out)
	if err != nil {
		return 0, 0, err
	}
	defer fo.Close()
	sc := bufio.NewScanner(bufio.NewReaderSize(fi, 1<<20))
	var buf []byte
	var n, b int64
	k := 0
	for sc.Scan() {
		buf = append(buf, sc.Bytes()...)
		buf = append(buf, '\n')
		b += int64(len(sc.Bytes()))
		n++
		if k++; k == batch {
			if _, err := fo.Write(buf); err != nil {
				return 0, 0, err
			}
			if err := fo.Sync(); err != nil {
				return 0, 0, err
			}
			buf, k = buf[:0], 0
		}
	}
	if len(buf) > 0 {
		fo.Write(buf)
		fo.Sync()
	}
	return n, b, sc.Err()
}

// latencySink records the latency of each batch's first record once the inner sink (or nothing,
// dropping the records) has written the batch.
type latencySink struct {
	inner          connector.Sink
	mu             sync.Mutex
	lat            []time.Duration
	records, bytes int64
}

var latencySinks sync.Map

// benchCatalog holds the built-in connectors and the two benchmark components.
func benchCatalog() *catalog.Catalog {
	cat := all.Catalog()
	for _, c := range []connector.Component{
		connector.SinkComponent(connector.Spec{Name: "bench-latency", Summary: "benchmark sink", ExactlyOnce: true}, func(connector.Config, connector.Env) (connector.Sink, error) {
			s, _ := latencySinks.Load("bench-latency")
			return s.(connector.Sink), nil
		}),
		connector.SourceComponent(connector.Spec{Name: "bench-memory", Summary: "benchmark source"}, newMemorySource),
	} {
		if err := cat.Add(c); err != nil {
			fatal(err)
		}
	}
	return cat
}

func (s *latencySink) Open(ctx context.Context) error {
	if s.inner != nil {
		return s.inner.Open(ctx)
	}
	return nil
}

func (s *latencySink) Close(ctx context.Context) error {
	if s.inner != nil {
		return s.inner.Close(ctx)
	}
	return nil
}

func (s *latencySink) Write(ctx context.Context, recs []connector.Record) error {
	if s.inner != nil {
		if err := s.inner.Write(ctx, recs); err != nil {
			return err
		}
	}
	s.note(recs)
	return nil
}

// note records the latency of a written batch's first record and counts the batch.
func (s *latencySink) note(recs []connector.Record) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lat = append(s.lat, now.Sub(recs[0].Time))
	s.records += int64(len(recs))
	for i := range recs {
		s.bytes += int64(len(recs[i].Value))
	}
}

// txLatencySink is latencySink for exactly_once: its transactions go to tx (or store nothing,
// dropping the records, when tx is nil).
type txLatencySink struct {
	*latencySink
	tx connector.TransactionalSink
}

func (s *txLatencySink) CheckExactlyOnce() error { return nil }

func (s *txLatencySink) StoredPositions(ctx context.Context) ([]connector.Position, error) {
	if s.tx == nil {
		return nil, nil
	}
	return s.tx.StoredPositions(ctx)
}

func (s *txLatencySink) WriteTx(ctx context.Context, recs []connector.Record, pos []connector.Position) error {
	if s.tx != nil {
		if err := s.tx.WriteTx(ctx, recs, pos); err != nil {
			return err
		}
	}
	if len(recs) > 0 {
		s.note(recs)
	}
	return nil
}

func (s *latencySink) percentiles() (time.Duration, time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.lat) == 0 {
		return 0, 0
	}
	slices.Sort(s.lat)
	return s.lat[len(s.lat)/2], s.lat[len(s.lat)*99/100]
}

// memorySource replays one pre-rendered batch until it has returned the wanted number of
// records: it costs nothing per record, so the pipeline measures the engine alone.
type memorySource struct {
	batch []connector.Record
	left  int64
	seq   int64
}

var memSources sync.Map

func newMemorySource(connector.Config, connector.Env) (connector.Source, error) {
	n, _ := memSources.Load("bench-memory")
	src := newGenerate(1024)
	batch, err := src.Read(context.Background())
	if err != nil {
		return nil, err
	}
	return &memorySource{batch: batch, left: n.(int64)}, nil
}

func (s *memorySource) PositionsComparable() bool                        { return true }
func (s *memorySource) Open(context.Context, []connector.Position) error { return nil }
func (s *memorySource) Ack(context.Context, []connector.Position) error  { return nil }
func (s *memorySource) Close(context.Context) error                      { return nil }
func (s *memorySource) Read(context.Context) ([]connector.Record, error) {
	if s.left <= 0 {
		return nil, io.EOF
	}
	n := min(int64(len(s.batch)), s.left)
	out := make([]connector.Record, n)
	now := time.Now()
	for i := range out {
		s.seq++
		out[i] = s.batch[i]
		out[i].Time = now
		out[i].Position.Offset = s.seq
	}
	s.left -= n
	return out, nil
}

// benchInstances is SLUICE_BENCH_INSTANCES, for experiments; 0 (the default) means the default.
func benchInstances() int {
	n, _ := strconv.Atoi(os.Getenv("SLUICE_BENCH_INSTANCES"))
	return n
}
