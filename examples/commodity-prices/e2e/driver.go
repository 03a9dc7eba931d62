// Package e2e is the load and fault driver of the commodity-prices platform: it starts a Kafka
// broker, a PostgreSQL server and a Redis server of its own, runs the analytics manifest
// (platform/analytics.yaml) as several `sluice run` processes sharing the consumer groups, feeds
// price records into the topic commodity-prices at a set rate while it kills a process with
// SIGKILL, stops PostgreSQL for a while and restarts the broker, then accounts for every record
// and reports throughput, end-to-end latency per sink and consumer lag over time.
package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The names analytics.yaml uses.
const (
	topic      = "commodity-prices"
	deadTopic  = "commodity-analytics-rejected"
	groupMain  = "commodity-analytics"
	groupStats = "commodity-analytics-stats"
	partitions = 3
)

var groups = []string{groupMain, groupStats}

var exactlyOnceRE = regexp.MustCompile(`(?m)^\s*delivery:\s*exactly_once\b`)

// Config says what one run does. Fault times are shares of the records fed: a fault starts when
// that share has been produced.
type Config struct {
	Records   int     // records to feed
	Rate      float64 // records per second; 0 feeds as fast as the broker takes them
	Processes int     // `sluice run` processes of the manifest
	Seed      uint64
	Malformed float64 // share of malformed records
	Outlier   float64 // share of outliers

	Sluice      string // the sluice binary
	Manifest    string // the analytics manifest
	ServicesDir string // where `make services` put the Kafka jars (SLUICE_SERVICES_DIR)
	WorkDir     string // servers' data, process data dirs, logs, the lake; created when missing

	Kill9         bool
	KillAt        float64
	KillDown      time.Duration // how long the killed process stays down
	PGOutage      bool
	PGAt          float64
	PGFor         time.Duration
	BrokerRestart bool
	BrokerAt      float64
	// QuietFrom is where the window without faults starts (a share of the records); it ends where
	// the first fault starts.
	QuietFrom float64

	// Deadline bounds the wait for the processes to consume everything after the feed.
	Deadline time.Duration
	Log      io.Writer // progress lines
}

// Defaults are the figures of `make e2e-commodity`.
func Defaults() Config {
	return Config{Records: 1_000_000, Rate: 10_000, Processes: 3, Seed: 1, Malformed: 0.01, Outlier: 0.002,
		Kill9: true, KillAt: 0.35, KillDown: 5 * time.Second, PGOutage: true, PGAt: 0.5, PGFor: 30 * time.Second,
		BrokerRestart: true, BrokerAt: 0.85, QuietFrom: 0.1, Deadline: 10 * time.Minute, Log: os.Stdout}
}

// FaultEvent is one fault: when it began and ended, seconds since the feed started.
type FaultEvent struct {
	Name       string
	Start, End float64
}

// driver is the state of one run.
type driver struct {
	cfg         Config
	exactlyOnce bool // the manifest asks for it: then no record may land twice
	broker      *broker
	pg          *postgres
	redis       *redisServer
	procs       []*process
	env         []string
	lakeDB      string
	lakeWH      string
	start       time.Time // the feed's start
	logMu       sync.Mutex
	faultMu     sync.Mutex
	faults      []FaultEvent

	producedN atomic.Int64
	recs      []produced // by seq-1
	offsets   [partitions]offsetLog
	feedEnd   time.Time
	quiet     [2]time.Time

	samples  []sample // once a second
	sampleMu sync.Mutex
}

func (d *driver) logf(format string, args ...any) {
	d.logMu.Lock()
	defer d.logMu.Unlock()
	el := ""
	if !d.start.IsZero() {
		el = fmt.Sprintf("[%6.1fs] ", time.Since(d.start).Seconds())
	}
	fmt.Fprintf(d.cfg.Log, "%s%s\n", el, fmt.Sprintf(format, args...))
}

func (d *driver) fault(name string, start time.Time, end time.Time) {
	d.faultMu.Lock()
	defer d.faultMu.Unlock()
	d.faults = append(d.faults, FaultEvent{Name: name, Start: start.Sub(d.start).Seconds(), End: end.Sub(d.start).Seconds()})
}

// offsetLog is the production time of each record of a partition, by offset.
type offsetLog struct {
	mu      sync.Mutex
	offsets []int64
	tsMS    []int64
}

func (l *offsetLog) add(offset, ts int64) {
	l.mu.Lock()
	l.offsets = append(l.offsets, offset)
	l.tsMS = append(l.tsMS, ts)
	l.mu.Unlock()
}

// at returns the production time of the first record at or after offset, and false when there
// is none yet.
func (l *offsetLog) at(offset int64) (int64, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	i := sort.Search(len(l.offsets), func(i int) bool { return l.offsets[i] >= offset })
	if i == len(l.offsets) {
		return 0, false
	}
	return l.tsMS[i], true
}

// Run runs the load and fault test and returns its report; the report's Problems list what did
// not add up. The error is for a run that could not be carried out.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	if cfg.Processes < 1 || cfg.Records < 1 {
		return nil, errors.New("e2e: Processes and Records must be at least 1")
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"KillAt", cfg.KillAt}, {"PGAt", cfg.PGAt}, {"BrokerAt", cfg.BrokerAt}, {"QuietFrom", cfg.QuietFrom}} {
		if f.v < 0 || f.v >= 1 {
			return nil, fmt.Errorf("e2e: %s is a share of the records fed, from 0 to below 1; got %v", f.name, f.v)
		}
	}
	if _, err := os.Stat(cfg.Sluice); err != nil {
		return nil, fmt.Errorf("e2e: the sluice binary: %w (make build)", err)
	}
	if _, err := os.Stat(cfg.Manifest); err != nil {
		return nil, fmt.Errorf("e2e: the analytics manifest: %w", err)
	}
	if err := os.MkdirAll(cfg.WorkDir, 0o755); err != nil {
		return nil, err
	}
	work, err := filepath.Abs(cfg.WorkDir)
	if err != nil {
		return nil, err
	}
	cfg.WorkDir = work
	// PostgreSQL runs as the user postgres when this runs as root: it must reach its directory.
	for dir := work; dir != "/"; dir = filepath.Dir(dir) {
		if fi, err := os.Stat(dir); err == nil && fi.Mode().Perm()&0o005 != 0o005 && os.Geteuid() == 0 && strings.HasPrefix(dir, os.TempDir()) {
			_ = os.Chmod(dir, fi.Mode().Perm()|0o005)
		}
	}
	manifest, err := os.ReadFile(cfg.Manifest)
	if err != nil {
		return nil, err
	}
	d := &driver{cfg: cfg, exactlyOnce: exactlyOnceRE.Match(manifest)}
	defer d.teardown()
	if err := d.setup(ctx); err != nil {
		return nil, err
	}
	if err := d.runLoad(ctx); err != nil {
		return nil, err
	}
	return d.report(ctx)
}

func (d *driver) setup(ctx context.Context) error {
	w := d.cfg.WorkDir
	var err error
	d.logf("starting a private Kafka broker, PostgreSQL and Redis under %s", w)
	if d.broker, err = startBroker(ctx, d.cfg.ServicesDir, filepath.Join(w, "kafka")); err != nil {
		return err
	}
	if d.pg, err = startPostgres(filepath.Join(w, "postgres")); err != nil {
		return err
	}
	if d.pg.moved != "" {
		d.logf("the postgres user cannot write %s (a parent directory is not searchable by others); PostgreSQL keeps its files in %s instead", d.pg.moved, d.pg.dir)
	}
	if d.redis, err = startRedis(ctx, filepath.Join(w, "redis")); err != nil {
		return err
	}
	d.logf("broker %s, postgres 127.0.0.1:%d, redis %s", d.broker.addr(), d.pg.port, d.redis.addr())
	cl, err := kgo.NewClient(kgo.SeedBrokers(d.broker.addr()))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	for t, n := range map[string]int32{topic: partitions, deadTopic: 1} {
		resp, err := adm.CreateTopic(ctx, n, 1, nil, t)
		if err == nil {
			err = resp.Err
		}
		if err != nil {
			return fmt.Errorf("create topic %s: %w", t, err)
		}
	}
	d.lakeDB = filepath.Join(w, "lake", "catalog.db")
	d.lakeWH = filepath.Join(w, "lake", "warehouse")
	if err := os.MkdirAll(d.lakeWH, 0o755); err != nil {
		return err
	}
	d.env = []string{"KAFKA=" + d.broker.addr(), "PG_DSN=" + d.pg.dsn(), "REDIS_ADDR=" + d.redis.addr(),
		"LAKE_CATALOG_URI=sqlite:///" + d.lakeDB, "LAKE_WAREHOUSE=file://" + d.lakeWH}
	ports, err := freePorts(d.cfg.Processes)
	if err != nil {
		return err
	}
	for i := range d.cfg.Processes {
		p := &process{i: i, bin: d.cfg.Sluice, env: d.env, port: ports[i], dir: filepath.Join(w, fmt.Sprint("analytics", i+1)),
			manifest: d.cfg.Manifest}
		if err := p.start(); err != nil {
			return err
		}
		d.procs = append(d.procs, p)
	}
	d.logf("%d sluice run processes of %s started; waiting until each is ready", len(d.procs), d.cfg.Manifest)
	for _, p := range d.procs {
		if err := p.waitReady(ctx, 5*time.Minute); err != nil {
			return err
		}
	}
	// Each group must have its members before the feed starts, so the first records do not wait
	// for a rebalance.
	return d.waitGroupsStable(ctx, adm, 2*time.Minute)
}

func (d *driver) waitGroupsStable(ctx context.Context, adm *kadm.Client, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		ds, err := adm.DescribeGroups(ctx, groups...)
		ok := err == nil
		state := ""
		if err == nil {
			for _, g := range groups {
				dg := ds[g]
				state += fmt.Sprintf("%s: %s with %d members; ", g, dg.State, len(dg.Members))
				if dg.State != "Stable" || len(dg.Members) != d.cfg.Processes {
					ok = false
				}
			}
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the consumer groups did not settle within %s: %s%v", within, state, err)
		}
		if err := d.processesAlive(); err != nil {
			return err
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func (d *driver) processesAlive() error {
	for _, p := range d.procs {
		if err := p.exitedErr(); err != nil {
			return fmt.Errorf("sluice run %d exited: %v\n%s", p.i+1, err, tailFile(p.logPath(), 40))
		}
	}
	return nil
}

func (d *driver) teardown() {
	for _, p := range d.procs {
		p.stop(30 * time.Second)
	}
	if d.redis != nil {
		d.redis.stop()
	}
	if d.pg != nil {
		d.pg.kill()
		d.pg.remove()
	}
	if d.broker != nil {
		d.broker.stop()
	}
}

// runLoad feeds the records, runs the faults and the samplers, and waits until both groups have
// consumed everything.
func (d *driver) runLoad(ctx context.Context) error {
	// AlwaysRetryEOF: while the broker restarts (a fault of this run) it accepts connections and
	// closes them at once, which franz-go otherwise takes for a TLS or SASL mistake and fails the
	// records with; this client's configuration is known to be right.
	cl, err := kgo.NewClient(kgo.SeedBrokers(d.broker.addr()), kgo.DefaultProduceTopic(topic),
		kgo.ProducerLinger(2*time.Millisecond), kgo.MaxBufferedRecords(50_000), kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)),
		kgo.AlwaysRetryEOF())
	if err != nil {
		return err
	}
	defer cl.Close()
	admCl, err := kgo.NewClient(kgo.SeedBrokers(d.broker.addr()))
	if err != nil {
		return err
	}
	defer admCl.Close()
	adm := kadm.NewClient(admCl)

	d.recs = make([]produced, d.cfg.Records)
	d.start = time.Now()
	sctx, cancelSamplers := context.WithCancel(ctx)
	var wg sync.WaitGroup
	stopSamplers := func() { cancelSamplers(); wg.Wait() }
	defer stopSamplers()
	wg.Add(1)
	go func() { defer wg.Done(); d.sampleLoop(sctx, adm) }()
	faultsDone := make(chan error, 1)
	go func() { faultsDone <- d.runFaults(sctx) }()

	d.logf("feeding %d records into %s at %s", d.cfg.Records, topic, rateText(d.cfg.Rate))
	var produceErr atomic.Value
	var pending sync.WaitGroup
	mk := newMarket(d.cfg.Seed, d.cfg.Malformed, d.cfg.Outlier)
	quietAt, quietEnd := int(d.cfg.QuietFrom*float64(d.cfg.Records)), int(d.firstFault()*float64(d.cfg.Records))
	var buf []byte
	lastLog := time.Now()
	for i := 0; i < d.cfg.Records; i++ {
		if d.cfg.Rate > 0 && i%100 == 0 {
			due := d.start.Add(time.Duration(float64(i) / d.cfg.Rate * float64(time.Second)))
			if w := time.Until(due); w > 0 {
				time.Sleep(w)
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		now := time.Now()
		p := mk.draw()
		p.tsMS = now.UnixMilli()
		if d.cfg.Rate <= 0 {
			// Unpaced, the feed takes seconds: event time advances as if it came at
			// unpacedEventRate, so that minute windows close and the statistics are checked.
			// The Kafka timestamp stays the production time, which latency and lag are measured from.
			p.tsMS = d.start.UnixMilli() + int64(i)*1000/unpacedEventRate
		}
		seq := int64(i + 1)
		d.recs[i] = p
		buf = appendJSON(buf[:0], seq, p)
		r := &kgo.Record{Key: []byte(goods[p.commodity].name), Value: append([]byte(nil), buf...), Timestamp: now.Truncate(time.Millisecond)}
		pending.Add(1)
		cl.Produce(ctx, r, func(r *kgo.Record, err error) {
			defer pending.Done()
			if err != nil {
				produceErr.CompareAndSwap(nil, err)
				return
			}
			d.offsets[r.Partition].add(r.Offset, r.Timestamp.UnixMilli())
		})
		d.producedN.Store(int64(i + 1))
		switch i + 1 {
		case quietAt:
			d.quiet[0] = time.Now()
		case quietEnd:
			d.quiet[1] = time.Now()
		}
		if time.Since(lastLog) > 10*time.Second {
			lastLog = time.Now()
			d.logf("%d records produced", i+1)
		}
	}
	pending.Wait()
	d.feedEnd = time.Now()
	if v := produceErr.Load(); v != nil {
		return fmt.Errorf("produce: %w", v.(error))
	}
	d.logf("fed %d records in %.1fs (%.0f records/s)", d.cfg.Records, d.feedEnd.Sub(d.start).Seconds(), float64(d.cfg.Records)/d.feedEnd.Sub(d.start).Seconds())
	if err := <-faultsDone; err != nil {
		return err
	}
	// Wait until both groups have committed every record.
	deadline := time.Now().Add(d.cfg.Deadline)
	for {
		lag, _, _, err := d.lag(ctx, adm)
		done := err == nil
		for _, g := range groups {
			if lag[g] != 0 {
				done = false
			}
		}
		if done {
			break
		}
		if err := d.processesAlive(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the groups still lag %v after %s (err %v)", lag, d.cfg.Deadline, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	d.logf("both groups consumed everything")
	time.Sleep(2 * time.Second) // one more sample at rest
	stopSamplers()
	// A graceful stop: each process drains and checkpoints.
	for _, p := range d.procs {
		p.stop(60 * time.Second)
	}
	return nil
}

func (d *driver) firstFault() float64 {
	f := 1.0
	if d.cfg.Kill9 {
		f = min(f, d.cfg.KillAt)
	}
	if d.cfg.PGOutage {
		f = min(f, d.cfg.PGAt)
	}
	if d.cfg.BrokerRestart {
		f = min(f, d.cfg.BrokerAt)
	}
	return f
}

func rateText(r float64) string {
	if r <= 0 {
		return "full speed (unpaced)"
	}
	return fmt.Sprintf("%.0f records/s", r)
}

// runFaults starts each enabled fault once its share of the records has been produced, and
// returns once every fault has ended.
func (d *driver) runFaults(ctx context.Context) error {
	type fault struct {
		at  float64
		run func() error
	}
	var fs []fault
	if d.cfg.Kill9 {
		fs = append(fs, fault{d.cfg.KillAt, func() error {
			p := d.procs[0]
			t0 := time.Now()
			d.logf("fault: kill -9 of sluice run 1 (pid %d); restarting it in %s", p.cmd.Process.Pid, d.cfg.KillDown)
			p.kill9()
			time.Sleep(d.cfg.KillDown)
			if err := p.start(); err != nil {
				return err
			}
			d.fault("kill -9", t0, time.Now())
			d.logf("fault: sluice run 1 restarted (pid %d)", p.cmd.Process.Pid)
			return nil
		}})
	}
	if d.cfg.PGOutage {
		fs = append(fs, fault{d.cfg.PGAt, func() error {
			t0 := time.Now()
			d.logf("fault: PostgreSQL stopped for %s", d.cfg.PGFor)
			if err := d.pg.stop(); err != nil {
				return err
			}
			time.Sleep(d.cfg.PGFor)
			if err := d.pg.start(); err != nil {
				return err
			}
			d.fault("Postgres outage", t0, time.Now())
			d.logf("fault: PostgreSQL started again")
			return nil
		}})
	}
	if d.cfg.BrokerRestart {
		fs = append(fs, fault{d.cfg.BrokerAt, func() error {
			t0 := time.Now()
			d.logf("fault: Kafka broker restart")
			d.broker.stop()
			if err := d.broker.start(ctx); err != nil {
				return err
			}
			d.fault("broker restart", t0, time.Now())
			d.logf("fault: Kafka broker up again after %.1fs", time.Since(t0).Seconds())
			return nil
		}})
	}
	sort.Slice(fs, func(i, j int) bool { return fs[i].at < fs[j].at })
	errs := make(chan error, len(fs))
	for _, f := range fs {
		at := int64(f.at * float64(d.cfg.Records))
		for d.producedN.Load() < at {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
		}
		go func() { errs <- f.run() }()
	}
	var first error
	for range fs {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// process is one `sluice run` of the manifest.
type process struct {
	i        int
	bin      string
	env      []string
	port     int
	dir      string
	manifest string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	err    error
	killed bool // by the driver: its exit is expected
}

func (p *process) logPath() string { return p.dir + ".log" }

func (p *process) start() error {
	if err := os.MkdirAll(p.dir, 0o755); err != nil {
		return err
	}
	log, err := os.OpenFile(p.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer log.Close()
	cmd := exec.Command(p.bin, "run", "--watch=false", "--admin-addr", fmt.Sprintf("127.0.0.1:%d", p.port), "--log-level", "warn",
		"--start-attempts", "0", "--restart-backoff-max", "5s", "--progress", "never", "--data-dir", p.dir, p.manifest)
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start sluice run %d: %w", p.i+1, err)
	}
	exited := make(chan struct{})
	p.mu.Lock()
	p.cmd, p.exited, p.err, p.killed = cmd, exited, nil, false
	p.mu.Unlock()
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		if !p.killed {
			p.err = err
			if err == nil {
				p.err = errors.New("exited with status 0 before it was stopped")
			}
		}
		p.mu.Unlock()
		close(exited)
	}()
	return nil
}

func (p *process) exitedErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

func (p *process) kill9() {
	p.mu.Lock()
	p.killed = true
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-exited
}

func (p *process) stop(grace time.Duration) {
	p.mu.Lock()
	p.killed = true
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(grace):
		_ = cmd.Process.Kill()
		<-exited
	}
}

func (p *process) metricsURL() string { return fmt.Sprintf("http://127.0.0.1:%d/metrics", p.port) }

func (p *process) waitReady(ctx context.Context, within time.Duration) error {
	deadline := time.Now().Add(within)
	url := fmt.Sprintf("http://127.0.0.1:%d/readyz", p.port)
	for {
		if err := p.exitedErr(); err != nil {
			return fmt.Errorf("sluice run %d exited while starting: %v\n%s", p.i+1, err, tailFile(p.logPath(), 40))
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("sluice run %d not ready within %s: %v\n%s", p.i+1, within, err, tailFile(p.logPath(), 40))
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// unpacedEventRate is the records per second of event time an unpaced feed's ts advances by:
// 1,000,000 records span 100 s of event time, so at least one minute window must close.
const unpacedEventRate = 10_000
