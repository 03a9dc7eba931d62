// Command kafka benchmarks the Kafka source and sink against plain franz-go programs doing the
// same work (the ceiling), each scenario in a fresh child process so CPU time and peak memory are
// its own. It uses the broker of `make services` (KAFKA_BOOTSTRAP in build/services.env) and says
// so and exits 0 when there is none. Run it with `make bench-kafka` or `go run ./internal/bench/kafka`.
//
//   - kafka-drop: read a topic of 100-byte records (3 partitions, filled before the timed part)
//     and drop them. direct is a plain franz-go group consumer (PollFetches, autocommit); sluice
//     is the kafka source, in a group, committing on ack, into the drop sink. The drop sink reads no
//     header, so the source leaves out its metadata headers, as in any such pipeline.
//   - kafka-validate-drop: the same through the validate_price transform (the C module), every
//     record passing, with the metadata headers (a transform may read them); its ceiling is the
//     same plain consumer.
//   - file-kafka: 100-byte lines from a file into a new topic (3 partitions), acks=all,
//     idempotent, no compression, linger 5ms. direct is a plain franz-go producer (Produce per
//     line of 1 MiB reads, Flush at the end); sluice is the file source into the kafka sink.
//   - e2e-rate: records produced at a fixed rate with their creation time, consumed as they
//     come: latency from creation to the consumer's poll (direct) or the drop sink (sluice).
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/connectors/all"
	"github.com/sluicehq/sluice/connectors/kafka"
	"github.com/sluicehq/sluice/internal/bench/child"
	"github.com/sluicehq/sluice/internal/bench/latency"
	"github.com/sluicehq/sluice/internal/bench/peak"
	"github.com/sluicehq/sluice/internal/bench/plaincheck"
	"github.com/sluicehq/sluice/internal/gctune"
	"github.com/sluicehq/sluice/internal/testenv"
	"github.com/sluicehq/sluice/runtime/pipeline"
	"github.com/sluicehq/sluice/runtime/supervisor"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

type result struct {
	Scenario string        `json:"scenario"`
	Impl     string        `json:"impl"`
	Records  int64         `json:"records"`
	Bytes    int64         `json:"bytes"`
	Elapsed  time.Duration `json:"elapsed"`
	// Startup is the time from the start to the first record delivered; Steady and SteadyFor
	// are the records after the first tenth and the time they took (the rate once reading).
	Startup   time.Duration `json:"startup"`
	Steady    int64         `json:"steady"`
	SteadyFor time.Duration `json:"steady_for"`
	P50, P99  time.Duration
	CPU       time.Duration `json:"cpu"`
	MaxRSS    int64         `json:"max_rss"`
}

var (
	records   = flag.Int64("records", 1_000_000, "records per throughput scenario")
	rate      = flag.Int("rate", 20_000, "e2e-rate: records per second")
	rateSecs  = flag.Int("rate-secs", 5, "e2e-rate: seconds of production")
	rounds    = flag.Int("rounds", 3, "rounds of every scenario; the median is reported")
	brokers   = flag.String("brokers", "", "bootstrap broker (internal; default KAFKA_BOOTSTRAP)")
	topicFlag = flag.String("topic", "", "input topic (internal)")
)

const partitions = 3

func main() {
	child := flag.String("child", "", "run one scenario/impl in this process (internal)")
	cpuprofile := flag.String("cpuprofile", "", "with -child: write a CPU profile")
	memprofile := flag.String("memprofile", "", "with -child: write an allocation profile")
	fillOnly := flag.Bool("fill", false, "create -topic on -brokers, fill it with -records records and exit (to profile a -child on it)")
	flag.Parse()
	if *fillOnly {
		adm, cl := admin(*brokers)
		defer cl.Close()
		must(createTopic(adm, *topicFlag))
		must(fill(*brokers, *topicFlag, *records))
		return
	}
	if *child != "" {
		if strings.Contains(*child, "/sluice") {
			gctune.Apply() // as `sluice run` does; the plain programs keep Go's default
		}
		if *cpuprofile != "" {
			f, err := os.Create(*cpuprofile)
			must(err)
			must(pprof.StartCPUProfile(f))
			defer pprof.StopCPUProfile()
		}
		r, err := runChild(*child)
		if err != nil {
			fatal(err)
		}
		pprof.StopCPUProfile()
		if *memprofile != "" {
			f, err := os.Create(*memprofile)
			must(err)
			must(pprof.Lookup("allocs").WriteTo(f, 0))
			must(f.Close())
		}
		r.MaxRSS = peak.RSS()
		json.NewEncoder(os.Stdout).Encode(r)
		return
	}
	addr, why := testenv.Lookup("KAFKA_BOOTSTRAP")
	if addr == "" {
		fmt.Printf("kafka benchmark skipped: %s (run `make services`)\n", why)
		return
	}
	*brokers = addr
	adm, cl := admin(addr)
	defer cl.Close()
	input := fmt.Sprintf("bench_kafka_in_%d", time.Now().UnixNano())
	must(createTopic(adm, input))
	cleanup = func() { deleteTopic(adm, input) }
	defer cleanup()
	fmt.Printf("kafka benchmark: 100-byte records, %d cores, broker %s; filling %s with %d records...\n", numCPU(), addr, input, *records)
	start := time.Now()
	must(fill(addr, input, *records))
	fmt.Printf("filled in %.1fs\n\n", time.Since(start).Seconds())

	scenarios := []string{"kafka-drop/direct", "kafka-drop/sluice", "kafka-validate-drop/direct", "kafka-validate-drop/sluice", "file-kafka/direct", "file-kafka/sluice", "e2e-rate/direct", "e2e-rate/sluice"}
	runs := map[string][]result{}
	for round := range *rounds {
		fmt.Printf("round %d of %d...\n", round+1, *rounds)
		for _, sc := range scenarios {
			runs[sc] = append(runs[sc], runScenario(sc, addr, input))
		}
	}
	fmt.Printf("\nmedian of %d rounds (records/s min-max in brackets)\n", *rounds)
	fmt.Printf("%-20s %-7s %9s %10s %-17s %6s %8s %10s %6s %9s %9s %7s %9s\n", "scenario", "impl", "records", "records/s", "  (min-max)", "ratio",
		"startup", "steady/s", "ratio", "p50", "p99", "cpu s", "peak MiB")
	ceiling, steadyCeiling := map[string]float64{}, map[string]float64{}
	for _, sc := range scenarios {
		rs := runs[sc]
		slices.SortFunc(rs, func(a, b result) int { return cmpFloat(a.rate(), b.rate()) })
		r := rs[len(rs)/2]
		family := r.Scenario
		ratio, steadyRatio, steady := "-", "-", "-"
		slices.SortFunc(rs, func(a, b result) int { return cmpFloat(a.steadyRate(), b.steadyRate()) })
		sr := rs[len(rs)/2].steadyRate() // the median of the steady rates, over the same rounds
		if sr > 0 {
			steady = fmt.Sprintf("%.0f", sr)
		}
		if r.Impl == "direct" {
			ceiling[family], steadyCeiling[family] = r.rate(), sr
		} else if c := ceiling[family]; c > 0 && r.Scenario != "e2e-rate" {
			ratio = fmt.Sprintf("%.2f", r.rate()/c)
			if c := steadyCeiling[family]; c > 0 && sr > 0 {
				steadyRatio = fmt.Sprintf("%.2f", sr/c)
			}
		}
		slices.SortFunc(rs, func(a, b result) int { return cmpFloat(a.rate(), b.rate()) })
		spread := fmt.Sprintf("(%.0f-%.0f)", rs[0].rate(), rs[len(rs)-1].rate())
		fmt.Printf("%-20s %-7s %9d %10.0f %-17s %6s %8s %10s %6s %9s %9s %7.2f %9.1f\n", r.Scenario, r.Impl, r.Records, r.rate(), spread, ratio,
			dur(r.Startup.Round(time.Millisecond)), steady, steadyRatio, dur(r.P50), dur(r.P99), r.CPU.Seconds(), float64(r.MaxRSS)/(1<<20))
	}
	if c := ceiling["kafka-drop"]; c > 0 {
		rs := runs["kafka-validate-drop/sluice"]
		fmt.Printf("\nkafka-validate-drop/sluice over kafka-drop/direct (a plain consumer that validates nothing): %.2f\n", rs[len(rs)/2].rate()/c)
	}
	fmt.Println("\ndirect = a plain franz-go program doing the same work (the ceiling); ratio = sluice records/s ÷ direct records/s.")
	fmt.Println("kafka-validate-drop/direct validates each value the way a plain Go program would: encoding/json into a struct, then")
	fmt.Println("  the checks of validate_price (a non-empty commodity, a price in (0, 1e9], a ts of epoch ms or RFC 3339).")
	fmt.Println("kafka-drop, kafka-validate-drop: a group reads the filled topic from its start; p50/p99 = from the source returning a batch to its delivery.")
	fmt.Println("  kafka-drop/sluice has no transform and its sink reads no header, so the source leaves out its metadata headers;")
	fmt.Println("  kafka-validate-drop/sluice builds them (a transform may read them).")
	fmt.Println("file-kafka: p50/p99 = from the file source reading a batch to the brokers acknowledging all of it.")
	fmt.Printf("e2e-rate: %d records/s produced for %ds; p50/p99 = from a record's creation (producer) to its poll (direct) or its delivery (sluice).\n", *rate, *rateSecs)
	fmt.Println("startup = from the start (the program's client created; sluice: the pipeline added) to the first record delivered;")
	fmt.Println("  steady/s = the records after the first tenth over the time they took, with its own ratio: the rate once reading.")
	fmt.Println("CPU and peak RSS are the benchmark process's (the broker's are not counted).")
}

// runScenario runs one scenario in a child process and adds its CPU time and peak RSS.
func runScenario(sc, addr, input string) result {
	args := []string{"-child", sc, "-records", fmt.Sprint(*records), "-brokers", addr, "-topic", input, "-rate", fmt.Sprint(*rate), "-rate-secs", fmt.Sprint(*rateSecs)}
	var r result
	cpu, err := child.Run(&r, args...)
	if err != nil {
		fatal(fmt.Errorf("%s: %w", sc, err))
	}
	r.CPU = cpu
	return r
}

func (r result) rate() float64 { return float64(r.Records) / r.Elapsed.Seconds() }

// steadyRate is the rate after the first tenth of the records, 0 when not measured.
func (r result) steadyRate() float64 {
	if r.SteadyFor <= 0 {
		return 0
	}
	return float64(r.Steady) / r.SteadyFor.Seconds()
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func dur(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	return d.Round(10 * time.Microsecond).String()
}

func numCPU() int {
	b, _ := os.ReadFile("/proc/cpuinfo")
	return strings.Count(string(b), "processor\t:")
}

// cleanup runs before a fatal exit of the parent (deleting its input topic).
var cleanup = func() {}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	cleanup()
	os.Exit(1)
}

func must(err error) {
	if err != nil {
		fatal(err)
	}
}

func admin(addr string) (*kadm.Client, *kgo.Client) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.MetadataMinAge(100*time.Millisecond))
	must(err)
	return kadm.NewClient(cl), cl
}

func createTopic(adm *kadm.Client, name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	resp, err := adm.CreateTopic(ctx, partitions, 1, nil, name)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		return err
	}
	for ctx.Err() == nil { // until every partition has a leader
		md, err := adm.Metadata(ctx, name)
		if err == nil && md.Topics[name].Err == nil && len(md.Topics[name].Partitions) == partitions {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return ctx.Err()
}

func deleteTopic(adm *kadm.Client, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, _ = adm.DeleteTopics(ctx, name)
}

// value is record i, 100 bytes, accepted by validate_price.
func value(dst []byte, i int64) []byte {
	start := len(dst)
	dst = fmt.Appendf(dst, `{"seq":%d,"commodity":"%s","price":%d.%02d,"ts":%d,"pad":"`,
		i, [...]string{"gold", "silver", "copper"}[i%3], 10+i%89, i%100, 1_700_000_000_000+i)
	for len(dst)-start < 98 {
		dst = append(dst, 'x')
	}
	return append(dst, '"', '}')
}

// fill produces n records, spread over the partitions, with a plain producer.
func fill(addr, topic string, n int64) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(topic), kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.MaxBufferedRecords(100_000), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx := context.Background()
	var mu sync.Mutex
	var first error
	for i := range n {
		cl.Produce(ctx, &kgo.Record{Value: value(nil, i)}, func(_ *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				first = cmp(first, err)
				mu.Unlock()
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	mu.Lock()
	defer mu.Unlock()
	return first
}

func cmp(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

func runChild(name string) (result, error) {
	scenario, impl, _ := strings.Cut(name, "/")
	r := result{Scenario: scenario, Impl: impl}
	dir, err := os.MkdirTemp("", "sluice-bench-kafka-")
	if err != nil {
		return r, err
	}
	defer os.RemoveAll(dir)
	switch name {
	case "kafka-drop/direct":
		return r, r.directConsume(*topicFlag, *records, nil, nil)
	case "kafka-validate-drop/direct":
		return r, r.directConsume(*topicFlag, *records, nil, plaincheck.ValidatePrice)
	case "kafka-drop/sluice":
		return r, r.sluice(dir, kafkaSource(*topicFlag), nil, nil)
	case "kafka-validate-drop/sluice":
		_, file, _, _ := runtime.Caller(0) // the default mode (metered)
		module := filepath.Join(filepath.Dir(file), "..", "..", "..", "transforms", "validate_price", "c", "validate_price.wasm")
		if _, err := os.Stat(module); err != nil {
			return r, err
		}
		return r, r.sluice(dir, kafkaSource(*topicFlag), []pipeline.Transform{{Name: "validate", Module: module, Config: []byte("{}"),
			OnReject: pipeline.RejectDrop}}, nil)
	case "file-kafka/direct", "file-kafka/sluice":
		in := filepath.Join(dir, "in.jsonl")
		if err := writeInput(in, *records); err != nil {
			return r, err
		}
		adm, cl := admin(*brokers)
		defer cl.Close()
		out := fmt.Sprintf("bench_kafka_out_%d", time.Now().UnixNano())
		if err := createTopic(adm, out); err != nil {
			return r, err
		}
		defer deleteTopic(adm, out)
		if impl == "direct" {
			return r, r.directProduce(in, out)
		}
		snk, err := kafka.NewSink(connector.Config{"brokers": []any{*brokers}, "topic": out}, connector.Env{})
		if err != nil {
			return r, err
		}
		return r, r.sluice(dir, pipeline.Component{Type: "file", Config: connector.Config{"path": in}}, nil, snk)
	case "e2e-rate/direct", "e2e-rate/sluice":
		adm, cl := admin(*brokers)
		defer cl.Close()
		topic := fmt.Sprintf("bench_kafka_rate_%d", time.Now().UnixNano())
		if err := createTopic(adm, topic); err != nil {
			return r, err
		}
		defer deleteTopic(adm, topic)
		n := int64(*rate * *rateSecs)
		stopProducing := producePaced(*brokers, topic, n)
		defer stopProducing()
		if impl == "direct" {
			var lat []time.Duration
			err := r.directConsume(topic, n, &lat, nil)
			r.P50, r.P99 = latency.Percentiles(lat)
			return r, err
		}
		src := kafkaSource(topic)
		src.Type = "kafka" // records keep their creation time: end-to-end latency
		return r, r.sluice(dir, src, nil, nil)
	}
	return r, fmt.Errorf("unknown scenario %q", name)
}

// kafkaSource is the kafka source reading topic in a new group, through the bench wrapper that
// stamps each record with the time the source returned it.
func kafkaSource(topic string) pipeline.Component {
	return pipeline.Component{Type: "bench-kafka", Config: connector.Config{"brokers": []any{*brokers}, "topics": []any{topic},
		"group": fmt.Sprintf("bench_%d", time.Now().UnixNano())}}
}

// directConsume reads n records of topic in a new group with a plain franz-go consumer. With lat,
// it records each poll's latency from its first record's creation.
func (r *result) directConsume(topic string, n int64, lat *[]time.Duration, check func(v []byte) error) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(*brokers), kgo.ConsumeTopics(topic), kgo.ConsumerGroup(fmt.Sprintf("bench_%d", time.Now().UnixNano())),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx := context.Background()
	start := time.Now()
	var steady steadyMark
	for r.Records < n {
		fs := cl.PollFetches(ctx)
		if errs := fs.Errors(); len(errs) > 0 {
			return errs[0].Err
		}
		now := time.Now()
		if r.Records == 0 && fs.NumRecords() > 0 {
			r.Startup = now.Sub(start)
			if lat != nil {
				start = now // paced: measure from the first record
			}
		}
		steady.passed(now, r.Records+int64(fs.NumRecords()), n)
		first := true
		var bad error
		fs.EachRecord(func(rec *kgo.Record) {
			if check != nil && bad == nil {
				bad = check(rec.Value)
			}
			r.Records++
			r.Bytes += int64(len(rec.Value))
			if lat != nil && first {
				*lat = append(*lat, now.Sub(rec.Timestamp))
				first = false
			}
		})
		if bad != nil {
			return fmt.Errorf("the plain validation refused a record the benchmark meant to be valid: %w", bad)
		}
	}
	r.Elapsed = time.Since(start)
	r.Steady, r.SteadyFor = steady.since(time.Now(), r.Records)
	return nil
}

// steadyMark notes when a count first reached a tenth of its total, to measure the rate after it:
// reading has begun and buffers are full, so what remains is the rate of the work itself.
type steadyMark struct {
	at    time.Time
	count int64
}

// passed is called with the count after a step that ended at now.
func (m *steadyMark) passed(now time.Time, count, total int64) {
	if m.at.IsZero() && count >= total/10 {
		m.at, m.count = now, count
	}
}

// since returns the records after the mark and the time from the mark to now.
func (m *steadyMark) since(now time.Time, count int64) (int64, time.Duration) {
	if m.at.IsZero() {
		return 0, 0
	}
	return count - m.count, now.Sub(m.at)
}

// directProduce produces the lines of in to topic with a plain franz-go producer, reading the
// file in 1 MiB chunks as the file source does.
func (r *result) directProduce(in, topic string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(*brokers), kgo.DefaultProduceTopic(topic), kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.ProducerLinger(5*time.Millisecond), kgo.MaxBufferedRecords(100_000))
	if err != nil {
		return err
	}
	defer cl.Close()
	f, err := os.Open(in)
	if err != nil {
		return err
	}
	defer f.Close()
	ctx := context.Background()
	var mu sync.Mutex
	var first error
	promise := func(_ *kgo.Record, err error) {
		if err != nil {
			mu.Lock()
			first = cmp(first, err)
			mu.Unlock()
		}
	}
	start := time.Now()
	var pending []byte
	for {
		buf := make([]byte, len(pending)+1<<20)
		copy(buf, pending)
		n, err := f.Read(buf[len(pending):])
		data := buf[:len(pending)+n]
		for {
			i := bytes.IndexByte(data, '\n')
			if i < 0 {
				break
			}
			cl.Produce(ctx, &kgo.Record{Value: data[:i:i]}, promise)
			r.Records++
			r.Bytes += int64(i)
			data = data[i+1:]
		}
		pending = data
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
	}
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	r.Elapsed = time.Since(start)
	mu.Lock()
	defer mu.Unlock()
	return first
}

// sluice runs source → (transforms) → latency sink (writing through inner, or dropping when nil)
// under a supervisor until the sink has every record, then stops it gracefully.
func (r *result) sluice(dir string, source pipeline.Component, transforms []pipeline.Transform, inner connector.Sink) error {
	want := *records
	if r.Scenario == "e2e-rate" {
		want = int64(*rate * *rateSecs)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	lat := &latencySink{inner: inner, want: want, done: cancel}
	cat := all.Catalog()
	for _, c := range []connector.Component{
		connector.SinkComponent(connector.Spec{Name: "bench-latency", Summary: "benchmark sink"}, func(connector.Config, connector.Env) (connector.Sink, error) {
			if ps, ok := inner.(connector.PipelinedSink); ok {
				return pipelinedLatencySink{latencySink: lat, inner: ps}, nil
			}
			return lat, nil
		}),
		connector.SourceComponent(connector.Spec{Name: "bench-kafka", Summary: "benchmark source"}, func(cfg connector.Config, env connector.Env) (connector.Source, error) {
			s, err := kafka.NewSource(cfg, env)
			return &stampSource{Source: s}, err
		}),
	} {
		if err := cat.Add(c); err != nil {
			return err
		}
	}
	sup, err := supervisor.New(supervisor.Options{Catalog: cat, DataDir: filepath.Join(dir, "data")})
	if err != nil {
		return err
	}
	defer sup.Close(context.Background())
	p := &pipeline.Pipeline{Name: r.Scenario, Source: source, Transforms: transforms,
		Sinks: []pipeline.Sink{{Name: "out", Component: pipeline.Component{Type: "bench-latency", Config: connector.Config{}}}}}
	if problems := sup.Add(ctx, p); len(problems) > 0 {
		return fmt.Errorf("%v", problems)
	}
	start := time.Now()
	stalled := make(chan int64, 1)
	go func() { // a run that stops making progress fails instead of hanging the benchmark
		last := int64(-1)
		for ctx.Err() == nil {
			time.Sleep(30 * time.Second)
			lat.mu.Lock()
			n := lat.records
			lat.mu.Unlock()
			if n == last && ctx.Err() == nil {
				stalled <- n
				cancel()
				return
			}
			last = n
		}
	}()
	if err := sup.Run(ctx, supervisor.RunOptions{}); err != nil {
		return err
	}
	select {
	case n := <-stalled:
		return fmt.Errorf("no progress for 30s at %d of %d records", n, want)
	default:
	}
	lat.mu.Lock()
	defer lat.mu.Unlock()
	r.Elapsed = lat.doneAt.Sub(start)
	r.Startup = lat.firstAt.Sub(start)
	r.Steady, r.SteadyFor = lat.steady.since(lat.doneAt, lat.records)
	if r.Scenario == "e2e-rate" { // paced: the rate is the producer's; measure from the first delivery
		r.Elapsed = lat.doneAt.Sub(lat.firstAt)
	}
	r.Records, r.Bytes = lat.records, lat.bytes
	if lat.records < want {
		return fmt.Errorf("stopped with %d of %d records", lat.records, want)
	}
	slices.Sort(lat.lat)
	r.P50, r.P99 = latency.Percentiles(lat.lat)
	return nil
}

// stampSource sets each record's time to when the source returned it, so the latency sink
// measures the pipeline, not the age of the filled topic.
type stampSource struct{ *kafka.Source }

func (s *stampSource) Read(ctx context.Context) ([]connector.Record, error) {
	recs, err := s.Source.Read(ctx)
	now := time.Now()
	for i := range recs {
		recs[i].Time = now
	}
	return recs, err
}

// latencySink records the latency of each batch's first record once the inner sink (or nothing)
// has written the batch, and stops the run when it has every record.
type latencySink struct {
	inner          connector.Sink
	want           int64
	done           context.CancelFunc
	mu             sync.Mutex
	lat            []time.Duration
	records, bytes int64
	firstAt        time.Time
	doneAt         time.Time
	steady         steadyMark
}

// IgnoresHeaders is the inner sink's answer; without one the benchmark drops the records, as the
// drop sink does, reading no header.
func (s *latencySink) IgnoresHeaders() bool {
	return s.inner == nil || connector.IgnoresHeaders(s.inner)
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
	s.written(recs)
	return nil
}

// pipelinedLatencySink is latencySink over a connector.PipelinedSink, pipelined as the inner sink
// is, so the engine runs the sink as it would without the benchmark around it.
type pipelinedLatencySink struct {
	*latencySink
	inner connector.PipelinedSink
}

func (s pipelinedLatencySink) WriteAsync(ctx context.Context, recs []connector.Record) func() error {
	wait := s.inner.WriteAsync(ctx, recs)
	return func() error {
		if err := wait(); err != nil {
			return err
		}
		s.written(recs)
		return nil
	}
}

// written notes recs as durable.
func (s *latencySink) written(recs []connector.Record) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.firstAt.IsZero() {
		s.firstAt = now
	}
	s.lat = append(s.lat, now.Sub(recs[0].Time))
	s.records += int64(len(recs))
	s.steady.passed(now, s.records, s.want)
	for i := range recs {
		s.bytes += int64(len(recs[i].Value))
	}
	if s.records >= s.want && s.doneAt.IsZero() {
		s.doneAt = now
		s.done()
	}
}

// writeInput writes n records, one per line.
func writeInput(path string, n int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	var buf []byte
	for i := range n {
		buf = append(value(buf[:0], i), '\n')
		w.Write(buf)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Close()
}

// producePaced produces n records at the configured rate, each stamped with its creation time,
// in the background; the returned function waits for it to finish.
func producePaced(addr, topic string, n int64) func() {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(topic), kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.ProducerLinger(time.Millisecond))
	must(err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer cl.Close()
		ctx := context.Background()
		time.Sleep(time.Second) // let the consumer join its group first
		start := time.Now()
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		var sent int64
		for sent < n {
			<-tick.C
			due := min(n, int64(time.Since(start).Seconds()*float64(*rate)))
			for ; sent < due; sent++ {
				cl.Produce(ctx, &kgo.Record{Value: value(nil, sent), Timestamp: time.Now()}, nil)
			}
		}
		cl.Flush(ctx)
	}()
	return func() { <-done }
}
