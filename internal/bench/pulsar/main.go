// Command pulsar benchmarks the Pulsar source and sink against plain pulsar-client-go programs
// doing the same work (the ceiling), each scenario in a fresh child process so CPU time and peak
// memory are its own. It uses the Pulsar of `make services` (PULSAR_URL in build/services.env).
// Run it with `make bench-pulsar` or `go run ./internal/bench/pulsar`.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	plog "github.com/apache/pulsar-client-go/pulsar/log"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/connectors/all"
	"github.com/sluicehq/sluice/connectors/file"
	pulsarconn "github.com/sluicehq/sluice/connectors/pulsar"
	"github.com/sluicehq/sluice/internal/bench/child"
	"github.com/sluicehq/sluice/internal/bench/peak"
	"github.com/sluicehq/sluice/internal/bench/plaincheck"
	"github.com/sluicehq/sluice/internal/gctune"
	"github.com/sluicehq/sluice/internal/testenv"
	"github.com/sluicehq/sluice/runtime/pipeline"
	"github.com/sluicehq/sluice/runtime/supervisor"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// partitions of every benchmark topic.
const partitions = 4

type result struct {
	Scenario string        `json:"scenario"`
	Impl     string        `json:"impl"`
	Records  int64         `json:"records"`
	Bytes    int64         `json:"bytes"`
	Elapsed  time.Duration `json:"elapsed"`
	P50, P99 time.Duration
	CPU      time.Duration `json:"cpu"` // of the timed phase
	MaxRSS   int64         `json:"max_rss"`
}

// scenarios in the order they run; a plain program runs right before the pipelines it is the
// ceiling of, so that they see the same machine.
var scenarios = []string{
	"consume/client", "consume/sluice-drop", "consume/client-validate", "consume/sluice-validate-drop",
	"produce/client", "produce/sluice-file",
}

// ceilings maps a scenario to the plain program it is compared with.
var ceilings = map[string]string{
	"consume/sluice-drop": "consume/client", "consume/sluice-validate-drop": "consume/client-validate",
	"produce/sluice-file": "produce/client",
}

type options struct {
	url, topic string
	records    int
	rate       int
}

func main() {
	child := flag.String("child", "", "run one scenario in this process (internal)")
	topic := flag.String("topic", "", "with -child: the topic (internal)")
	records := flag.Int("records", 1_000_000, "records per scenario (as the Kafka benchmark; at 300,000 the start of a consumer weighs on its rate)")
	rate := flag.Int("rate", 10_000, "records/s of the latency phase of the consume scenarios")
	rounds := flag.Int("rounds", 3, "rounds of all scenarios, alternating; each scenario reports its median round")
	only := flag.String("only", "", "comma-separated scenarios to run (default: all)")
	cpuprofile := flag.String("cpuprofile", "", "with -child: write a CPU profile")
	profiles := flag.String("profiles", "", "write a CPU profile of each child to this directory")
	flag.Parse()
	url, why := testenv.Lookup("PULSAR_URL")
	if url == "" {
		fmt.Printf("pulsar benchmark skipped: %s; run `make services`\n", why)
		return
	}
	o := options{url: url, topic: *topic, records: *records, rate: *rate}
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
		r, err := runChild(*child, o)
		pprof.StopCPUProfile()
		r.MaxRSS = peak.RSS()
		if err != nil {
			fatal(fmt.Errorf("%s: %w", *child, err))
		}
		json.NewEncoder(os.Stdout).Encode(r)
		return
	}
	fmt.Printf("pulsar benchmark: %d records of 100 bytes per scenario, %d-partition topics, %d cores shared with the broker, median of %d rounds\n\n",
		*records, partitions, numCPU(), *rounds)
	client := newClient(url)
	defer client.Close()
	runs := map[string][]result{}
	for range *rounds {
		for _, sc := range scenarios {
			if *only != "" && !slices.Contains(strings.Split(*only, ","), sc) {
				continue
			}
			topic := fmt.Sprintf("persistent://public/default/bench-%s-%d", strings.NewReplacer("/", "-").Replace(sc), time.Now().UnixNano())
			if err := createPartitioned(client, topic); err != nil {
				fatal(err)
			}
			if strings.HasPrefix(sc, "consume/") { // the input, not timed
				if err := produce(context.Background(), client, topic, 0, *records, 0, nil); err != nil {
					fatal(fmt.Errorf("fill %s: %w", topic, err))
				}
			}
			r, err := spawn(sc, topic, *records, *rate, *profiles)
			if err != nil {
				fatal(err)
			}
			runs[sc] = append(runs[sc], r)
		}
	}
	fmt.Printf("%-10s %-22s %9s %6s %10s %6s %6s %9s %9s %6s %8s  %s\n", "scenario", "impl", "records", "secs", "records/s", "MB/s", "ratio", "p50", "p99", "cpu s", "peak MiB", "records/s of each round")
	rate2 := map[string]float64{}
	for _, sc := range scenarios {
		rs := runs[sc]
		if len(rs) == 0 {
			continue
		}
		slices.SortFunc(rs, func(a, b result) int { return int(a.Elapsed - b.Elapsed) })
		var each []string
		for _, x := range rs {
			each = append(each, fmt.Sprintf("%.0f", float64(x.Records)/x.Elapsed.Seconds()))
		}
		r := rs[len(rs)/2]
		secs := r.Elapsed.Seconds()
		rate2[sc] = float64(r.Records) / secs
		ratio := "-"
		if c := ceilings[sc]; rate2[c] > 0 {
			ratio = fmt.Sprintf("%.2f", rate2[sc]/rate2[c])
		}
		fmt.Printf("%-10s %-22s %9d %6.2f %10.0f %6.1f %6s %9s %9s %6.2f %8.1f  %s\n", r.Scenario, r.Impl, r.Records, secs,
			rate2[sc], float64(r.Bytes)/secs/1e6, ratio, dur(r.P50), dur(r.P99), r.CPU.Seconds(), float64(r.MaxRSS)/(1<<20), strings.Join(each, " "))
	}
	if c := rate2["consume/client"]; c > 0 && rate2["consume/sluice-validate-drop"] > 0 {
		fmt.Printf("\nconsume/sluice-validate-drop over consume/client (a plain consumer that validates nothing): %.2f\n", rate2["consume/sluice-validate-drop"]/c)
	}
	fmt.Println("\nconsume: a topic filled beforehand is drained; records/s from the first record received to the last.")
	fmt.Println("  client = a plain pulsar-client-go consumer (failover subscription, the source's prefetch, messages from its")
	fmt.Println("  channel, a cumulative ack per partition every 1,000 messages); sluice-drop = pulsar source → drop sink through the engine (default batch policy, linger 5ms;")
	fmt.Println("  the sink reads no header, so the source leaves out its pulsar_* metadata headers);")
	fmt.Println("  sluice-validate-drop = the same with validate_price, the C module, as a WASM transform; its ceiling client-validate")
	fmt.Println("  is the plain consumer checking each value as a plain Go program would (encoding/json into a struct, then the rules).")
	fmt.Printf("  p50/p99 = publish time to receipt (client) or to the sink's write (sluice) of %d records then produced at %d/s.\n", *records/5, *rate)
	fmt.Println("produce: client = a plain pulsar-client-go producer (SendAsync, default batching, one flush at the end);")
	fmt.Println("  sluice-file = file → pulsar sink through the engine; p50/p99 = send (client) or read (sluice) to persisted.")
	fmt.Println("cpu s = CPU time of the timed phase; peak MiB = the child's maximum resident set.")
}

func spawn(sc, topic string, records, rate int, profiles string) (result, error) {
	args := []string{"-child", sc, "-topic", topic, "-records", fmt.Sprint(records), "-rate", fmt.Sprint(rate)}
	if profiles != "" {
		args = append(args, "-cpuprofile", filepath.Join(profiles, strings.ReplaceAll(sc, "/", "-")+".prof"))
	}
	var r result // its CPU time is the timed phase's, measured by the child itself
	if _, err := child.Run(&r, args...); err != nil {
		return r, fmt.Errorf("%s: %w", sc, err)
	}
	return r, nil
}

func runChild(name string, o options) (result, error) {
	scenario, impl, _ := strings.Cut(name, "/")
	r := result{Scenario: scenario, Impl: impl}
	switch name {
	case "consume/client":
		return r, consumeClient(o, nil, &r)
	case "consume/client-validate":
		return r, consumeClient(o, plaincheck.ValidatePrice, &r)
	case "consume/sluice-drop":
		return r, consumeSluice(o, "", &r)
	case "consume/sluice-validate-drop":
		root, err := moduleRoot()
		if err != nil {
			return r, err
		}
		return r, consumeSluice(o, filepath.Join(root, "transforms", "validate_price", "c", "validate_price.wasm"), &r)
	case "produce/client":
		return r, produceClient(o, &r)
	case "produce/sluice-file":
		return r, produceSluice(o, &r)
	}
	return r, fmt.Errorf("unknown scenario %q", name)
}

// value renders record i, 100 bytes, as validate_price accepts it.
func value(i int) []byte {
	commodities := [...]string{"gold", "silver", "copper"}
	v := fmt.Appendf(nil, `{"seq":%d,"commodity":%q,"price":%d.%02d,"ts":"2024-05-01T12:00:00.000Z","pad":"`, i, commodities[i%3], 10+i%90, i%100)
	for len(v) < 98 {
		v = append(v, 'x')
	}
	return append(v, '"', '}')
}

func newClient(url string) pulsar.Client {
	c, err := pulsar.NewClient(pulsar.ClientOptions{URL: url, OperationTimeout: 60 * time.Second,
		Logger: plog.DefaultNopLogger(), MetricsRegisterer: prometheus.NewRegistry()})
	if err != nil {
		fatal(err)
	}
	return c
}

func createPartitioned(client pulsar.Client, topic string) error {
	admin, why := testenv.Lookup("PULSAR_ADMIN_URL")
	if admin == "" {
		return errors.New(why)
	}
	url := admin + "/admin/v2/" + strings.Replace(topic, "://", "/", 1) + "/partitions"
	req, err := http.NewRequest(http.MethodPut, url, strings.NewReader(fmt.Sprint(partitions)))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("PUT %s: %s: %s", url, resp.Status, b)
	}
	return nil
}

// produce sends records from..from+n to topic, at rate records/s (0: as fast as it goes), and
// waits until all are persisted (one flush at the end: the fastest a plain program can be). lat,
// when set, gets each record's send-to-persisted latency.
func produce(ctx context.Context, client pulsar.Client, topic string, from, n, rate int, lat *latencies) error {
	p, err := newProducer(client, topic)
	if err != nil {
		return err
	}
	defer p.Close()
	vals := make([][]byte, n)
	for i := range vals {
		vals[i] = value(from + i)
	}
	return sendAll(ctx, p, vals, rate, lat)
}

func newProducer(client pulsar.Client, topic string) (pulsar.Producer, error) {
	return client.CreateProducer(pulsar.ProducerOptions{Topic: topic, MaxPendingMessages: 10000})
}

// sendAll is produce with a producer made and the values rendered beforehand.
func sendAll(ctx context.Context, p pulsar.Producer, vals [][]byte, rate int, lat *latencies) error {
	from, n := 0, len(vals)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	start := time.Now()
	var lats []time.Duration // one slot per message: the callbacks take no lock
	if lat != nil {
		lats = make([]time.Duration, n)
	}
	for i := from; i < from+n; i++ {
		if rate > 0 && (i-from)%50 == 0 {
			if d := time.Until(start.Add(time.Duration(i-from) * time.Second / time.Duration(rate))); d > 0 {
				time.Sleep(d)
			}
		}
		wg.Add(1)
		sentAt := time.Now()
		p.SendAsync(ctx, &pulsar.ProducerMessage{Payload: vals[i]}, func(_ pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
			if lats != nil {
				lats[i] = time.Since(sentAt)
			}
			if err != nil {
				mu.Lock()
				first = errors.Join(first, err)
				mu.Unlock()
			}
			wg.Done()
		})
	}
	if err := p.FlushWithCtx(ctx); err != nil {
		return err
	}
	wg.Wait()
	if lat != nil {
		lat.d = append(lat.d, lats...)
	}
	return first
}

// consumeClient is the ceiling of the consume scenarios.
func consumeClient(o options, check func([]byte) error, r *result) error {
	client := newClient(o.url)
	defer client.Close()
	// The same prefetch as the source's defaults: 1,000 per partition, and a channel of 1,000.
	ch := make(chan pulsar.ConsumerMessage, 1000)
	cons, err := client.Subscribe(pulsar.ConsumerOptions{Topic: o.topic, SubscriptionName: "bench", Type: pulsar.Failover,
		SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest, ReceiverQueueSize: 1000, MessageChannel: ch})
	if err != nil {
		return err
	}
	defer cons.Close()
	last := map[string]pulsar.Message{}
	counts := map[string]int{}
	lat := &latencies{}
	var phase cpuPhase
	total := o.records + o.records/5
	produced := make(chan error, 1)
	for n := 0; n < total; n++ {
		m := (<-ch).Message
		if n == 0 {
			phase.start()
		}
		if check != nil {
			if err := check(m.Payload()); err != nil {
				return fmt.Errorf("the plain validation refused a record the benchmark meant to be valid: %w", err)
			}
		}
		if n < o.records {
			r.Records++
			r.Bytes += int64(len(m.Payload()))
		} else {
			lat.add(time.Since(m.PublishTime()))
		}
		t := m.Topic()
		last[t] = m
		if counts[t]++; counts[t]%1000 == 0 {
			if err := cons.AckCumulative(m); err != nil {
				return err
			}
		}
		if n == o.records-1 {
			r.Elapsed, r.CPU = phase.stop()
			go func() {
				produced <- produce(context.Background(), client, o.topic, o.records, o.records/5, o.rate, nil)
			}()
		}
	}
	for _, m := range last {
		_ = cons.AckCumulative(m)
	}
	r.P50, r.P99 = lat.percentiles()
	return <-produced
}

// consumeSluice drains the topic through the pulsar source, transform (when wasm is set) and a
// sink that drops the records, then measures latency while records are produced at o.rate.
func consumeSluice(o options, wasm string, r *result) error {
	drop := &countSink{want: int64(o.records), lat: &latencies{}}
	p := &pipeline.Pipeline{
		Name: "bench",
		Source: pipeline.Component{Type: "pulsar", Config: mustConfig(pulsarconn.Components()[0].Spec, map[string]any{
			"url": o.url, "topics": []any{o.topic}, "subscription": "bench"})},
		Sinks: []pipeline.Sink{{Name: "out", Component: pipeline.Component{Type: "bench-count", Config: connector.Config{}}}},
		Batch: pipeline.BatchPolicy{Linger: 5 * time.Millisecond},
	}
	if wasm != "" {
		p.Transforms = []pipeline.Transform{{Name: "validate", Module: wasm, Config: []byte("{}")}}
	}
	client := newClient(o.url)
	defer client.Close()
	return runPipeline(p, drop, func() error {
		r.Elapsed, r.CPU = drop.elapsed, drop.cpu
		r.Records, r.Bytes = drop.records, drop.bytes
		drop.measure(int64(o.records / 5))
		if err := produce(context.Background(), client, o.topic, o.records, o.records/5, o.rate, nil); err != nil {
			return err
		}
		<-drop.done
		r.P50, r.P99 = drop.lat.percentiles()
		return nil
	})
}

// produceClient is the ceiling of the produce scenarios.
func produceClient(o options, r *result) error {
	client := newClient(o.url)
	defer client.Close()
	lat := &latencies{}
	p, err := newProducer(client, o.topic) // not timed, as the sink's producer is made in Open
	if err != nil {
		return err
	}
	defer p.Close()
	vals := make([][]byte, o.records)
	for i := range vals {
		vals[i] = value(i)
	}
	var phase cpuPhase
	phase.start()
	if err := sendAll(context.Background(), p, vals, 0, lat); err != nil {
		return err
	}
	r.Elapsed, r.CPU = phase.stop()
	r.Records, r.Bytes = int64(o.records), int64(o.records)*int64(len(value(0)))
	r.P50, r.P99 = lat.percentiles()
	return nil
}

// produceSluice runs file → pulsar sink through the engine, the file written beforehand.
func produceSluice(o options, r *result) error {
	dir, err := os.MkdirTemp("", "sluice-bench-pulsar-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	in := filepath.Join(dir, "in.jsonl")
	f, err := os.Create(in)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	for i := range o.records {
		w.Write(value(i))
		w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		return err
	}
	f.Close()
	snk, err := pulsarconn.NewSink(mustConfig(pulsarconn.Components()[1].Spec, map[string]any{"url": o.url, "topic": o.topic}), connector.Env{})
	if err != nil {
		return err
	}
	counting := &countSink{inner: snk, want: int64(o.records), lat: &latencies{}}
	p := &pipeline.Pipeline{
		Name:   "bench",
		Source: pipeline.Component{Type: "file", Config: mustConfig(file.Components()[0].Spec, map[string]any{"path": in})},
		Sinks:  []pipeline.Sink{{Name: "out", Component: pipeline.Component{Type: "bench-count", Config: connector.Config{}}}},
		Batch:  pipeline.BatchPolicy{Linger: 5 * time.Millisecond},
	}
	err = runPipeline(p, counting, func() error { return nil })
	r.Elapsed, r.CPU = counting.elapsed, counting.cpu
	r.Records, r.Bytes = counting.records, counting.bytes
	r.P50, r.P99 = counting.lat.percentiles()
	return err
}

// runPipeline runs p (whose sink is sink, as bench-count) in a supervisor until the sink has seen
// its records, then calls then, stops the pipeline and waits for it.
func runPipeline(p *pipeline.Pipeline, sink *countSink, then func() error) error {
	dir, err := os.MkdirTemp("", "sluice-bench-pulsar-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cat := all.Catalog()
	if err := cat.Add(connector.SinkComponent(connector.Spec{Name: "bench-count", Summary: "benchmark sink"},
		func(connector.Config, connector.Env) (connector.Sink, error) {
			if ps, ok := sink.inner.(connector.PipelinedSink); ok {
				return &pipelinedCountSink{countSink: sink, ps: ps}, nil
			}
			return sink, nil
		})); err != nil {
		return err
	}
	sup, err := supervisor.New(supervisor.Options{Catalog: cat, DataDir: dir})
	if err != nil {
		return err
	}
	defer sup.Close(context.Background())
	if problems := sup.Add(context.Background(), p); len(problems) > 0 {
		return fmt.Errorf("%v", problems)
	}
	sink.done = make(chan struct{})
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	ran := make(chan error, 1)
	go func() { ran <- sup.Run(ctx, supervisor.RunOptions{}) }()
	done := sink.done
	select {
	case <-done:
	case err := <-ran:
		select {
		case <-done: // a bounded source: finished as the sink saw its last records
			return err
		default:
		}
		if err == nil {
			err = errors.New("the pipeline ended early")
		}
		return err
	}
	err = then()
	stop()
	return errors.Join(err, <-ran)
}

// countSink counts what reaches it (writing it through inner, when set), timing from the first
// write to the one that completes want records; in the latency phase it records how old each
// batch's records are.
type countSink struct {
	inner          connector.Sink
	want           int64
	lat            *latencies
	mu             sync.Mutex
	records, bytes int64
	phase          cpuPhase
	elapsed, cpu   time.Duration // of the first phase
	started        bool
	measuring      bool
	extra          int64
	done           chan struct{}
}

// IgnoresHeaders is the inner sink's answer; without one the benchmark drops the records, as the
// drop sink does, reading no header.
func (s *countSink) IgnoresHeaders() bool {
	return s.inner == nil || connector.IgnoresHeaders(s.inner)
}

// measure switches to the latency phase: done closes again after n more records.
func (s *countSink) measure(n int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.measuring, s.want, s.extra = true, n, 0
	s.done = make(chan struct{})
}

func (s *countSink) Open(ctx context.Context) error {
	if s.inner != nil {
		return s.inner.Open(ctx)
	}
	return nil
}

func (s *countSink) Close(ctx context.Context) error {
	if s.inner != nil {
		return s.inner.Close(ctx)
	}
	return nil
}

func (s *countSink) Write(ctx context.Context, recs []connector.Record) error {
	s.mu.Lock()
	if !s.started {
		s.started = true
		s.phase.start()
	}
	s.mu.Unlock()
	if s.inner != nil {
		if err := s.inner.Write(ctx, recs); err != nil {
			return err
		}
	}
	s.count(recs)
	return nil
}

// pipelinedCountSink is countSink over a connector.PipelinedSink, which it stays: the engine
// then keeps several writes in flight, as it does with the sink alone.
type pipelinedCountSink struct {
	*countSink
	ps connector.PipelinedSink
}

func (s *pipelinedCountSink) WriteAsync(ctx context.Context, recs []connector.Record) func() error {
	s.mu.Lock()
	if !s.started {
		s.started = true
		s.phase.start()
	}
	s.mu.Unlock()
	wait := s.ps.WriteAsync(ctx, recs)
	return func() error {
		if err := wait(); err != nil {
			return err
		}
		s.count(recs)
		return nil
	}
}

// count notes a written batch.
func (s *countSink) count(recs []connector.Record) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.measuring {
		for i := range recs {
			s.lat.add(now.Sub(recs[i].Time))
		}
		if s.extra += int64(len(recs)); s.extra >= s.want && s.want > 0 {
			close(s.done)
			s.want = 0
		}
		return
	}
	if s.inner != nil { // file → pulsar: the latency from reading each record to its write
		for i := range recs {
			s.lat.add(now.Sub(recs[i].Time))
		}
	}
	s.records += int64(len(recs))
	for i := range recs {
		s.bytes += int64(len(recs[i].Value))
	}
	if s.records >= s.want && s.want > 0 {
		s.want = 0
		s.elapsed, s.cpu = s.phase.stop()
		close(s.done)
	}
}

type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

func (l *latencies) percentiles() (time.Duration, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.d) == 0 {
		return 0, 0
	}
	slices.Sort(l.d)
	return l.d[len(l.d)/2], l.d[len(l.d)*99/100]
}

// cpuPhase measures wall and CPU time (of the whole process) between start and stop.
type cpuPhase struct {
	wall time.Time
	cpu  time.Duration
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func (p *cpuPhase) start() { p.wall, p.cpu = time.Now(), processCPU() }

func (p *cpuPhase) stop() (time.Duration, time.Duration) {
	return time.Since(p.wall), processCPU() - p.cpu
}

func mustConfig(spec connector.Spec, v map[string]any) connector.Config {
	cfg, err := spec.Config(v)
	if err != nil {
		fatal(err)
	}
	return cfg
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

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}

// moduleRoot is the directory of go.mod at or above the working directory.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod at or above the working directory")
		}
		dir = parent
	}
}
