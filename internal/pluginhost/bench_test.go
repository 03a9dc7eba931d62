package pluginhost

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/pluginhost/internal/testconn"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// BenchmarkPlugin runs the same connectors compiled in and through a plugin process, in
// alternating rounds (compiled in first in odd rounds, the plugin first in even ones), so that
// other load on a shared machine falls on both sides alike. It prints, per round and side, the
// records/s, the latency of a batch (p50, p99, max), the CPU time of the host process and of the
// plugin process, records per CPU second, and the peak resident memory of both processes; then
// the medians of the rounds, and three ratios plugin/compiled-in per round with their medians:
//
//   - ratio: records/s (wall time). On a machine busy with other work it flatters the plugin,
//     whose two processes get a larger share of the cores than the single compiled-in one.
//   - cpu ratio: records per CPU second of both processes together, what the plugin costs. On
//     an idle machine the two processes work at the same time, so the wall ratio is higher:
//     with two cores, roughly between the cpu ratio and twice it.
//
// Scenarios:
//
//   - source: the seq source read to its end (batches of 8192 records, 100-byte values);
//   - sink-pipelined: the lines sink (an append to a file in memory, no fsync) written with
//     WriteAsync, benchWindow writes in flight, as the engine drives a connector.PipelinedSink;
//   - sink-sequential: the same sink, one Write at a time.
//
// The compiled-in side of both sink scenarios is the sink's ordinary Write, one at a time (it
// is not pipelined). Run it with -benchtime 1x: it sets its own length (-plugin-rounds,
// -plugin-records after -args):
//
//	go test -run '^$' -bench BenchmarkPlugin -benchtime 1x ./internal/pluginhost/ -args -plugin-rounds=5
func BenchmarkPlugin(b *testing.B) {
	h := New(Options{})
	defer h.Close()
	p := discoverOne(b, h, pluginDir(b, "seq"))
	fmt.Printf("\nplugin vs compiled in: %d records per pass in batches of %d, %d-byte values, %d alternating rounds, %d cores\n",
		*benchRecords, benchBatch, benchValue, *benchRounds, runtime.NumCPU())
	fmt.Println("p50/p99/max: latency of a batch (a Read; a Write; WriteAsync until its wait returned); cpu: of the pass, ms;")
	fmt.Println("MiB: peak resident memory of the process during the pass (the host's holds the sink scenarios' input);")
	fmt.Println("ratio: plugin/compiled-in records/s in the same round; cpu ratio: records per CPU second of host and plugin")
	fmt.Println("together over compiled-in's. A busy machine flatters the wall ratio (two processes get more of the cores than")
	fmt.Println("one); on an idle two-core machine it lies roughly between the cpu ratio and twice it.")
	for _, sc := range []string{"source", "sink-pipelined", "sink-sequential"} {
		b.Run(sc, func(b *testing.B) {
			var run func(plugin bool) passStats
			if sc == "source" {
				run = func(plugin bool) passStats { return benchSource(b, h, p, plugin) }
			} else {
				batches := benchBatches(b)
				run = func(plugin bool) passStats { return benchSink(b, h, p, batches, plugin, sc == "sink-pipelined") }
			}
			var in, pl []passStats
			for round := range *benchRounds {
				if round%2 == 0 {
					in = append(in, run(false))
					pl = append(pl, run(true))
				} else {
					pl = append(pl, run(true))
					in = append(in, run(false))
				}
			}
			printRounds(b, sc, in, pl)
		})
	}
}

var (
	benchRounds  = flag.Int("plugin-rounds", 5, "BenchmarkPlugin: alternating rounds per scenario")
	benchRecords = flag.Int("plugin-records", 1<<21, "BenchmarkPlugin: records per pass")
)

const (
	benchBatch    = 8192
	benchValue    = 100 // bytes
	benchWindow   = 3   // writes in flight in the pipelined sink scenario, as the engine keeps
	benchDistinct = 8   // distinct input batches of the sink scenarios, written in turn
)

// passStats is what one timed pass measured. The first batch of a source and opening and
// closing either connector are outside the pass.
type passStats struct {
	records    int
	wall       time.Duration
	hostCPU    time.Duration
	pluginCPU  time.Duration   // 0 compiled in
	lat        []time.Duration // per batch: a Read; a Write; WriteAsync until its wait returned
	hostPeak   int64           // bytes; -1 when the peak could not be reset before the pass
	pluginPeak int64
}

func (s passStats) rate() float64    { return float64(s.records) / s.wall.Seconds() }
func (s passStats) cpuRate() float64 { return float64(s.records) / (s.hostCPU + s.pluginCPU).Seconds() }

// meter measures a pass: wall time, CPU of this process and of the plugin process pid (0: none),
// peak memory of both.
type meter struct {
	pid              int
	start            time.Time
	host0, plugin0   time.Duration
	peakReset        bool
	lat              []time.Duration
	records          int
	hostCPU, plugCPU time.Duration
	wall             time.Duration
}

func startMeter(pid int) *meter {
	runtime.GC()
	m := &meter{pid: pid, peakReset: resetPeakRSS()}
	m.host0 = selfCPU()
	if pid != 0 {
		m.plugin0 = procCPU(pid)
	}
	m.start = time.Now()
	return m
}

// stop ends the pass; the plugin process must still run.
func (m *meter) stop() passStats {
	wall := time.Since(m.start)
	s := passStats{records: m.records, wall: wall, hostCPU: selfCPU() - m.host0, lat: m.lat, hostPeak: peakRSS(0)}
	if !m.peakReset {
		s.hostPeak = -1
	}
	if m.pid != 0 {
		s.pluginCPU = procCPU(m.pid) - m.plugin0
		s.pluginPeak = peakRSS(m.pid)
	}
	return s
}

func benchSource(b *testing.B, h *Host, p *Plugin, plugin bool) passStats {
	ctx := context.Background()
	cfg := connector.Config{"count": int64(*benchRecords), "batch": int64(benchBatch), "size": int64(benchValue)}
	var src connector.Source
	var pid func() int
	if plugin {
		s, err := h.NewSource(p, "seq", cfg, connector.Env{})
		if err != nil {
			b.Fatal(err)
		}
		src, pid = s, s.in.pid
	} else {
		src, _ = testconn.NewSeq(cfg, connector.Env{})
		pid = func() int { return 0 }
	}
	if err := src.Open(ctx, nil); err != nil {
		b.Fatal(err)
	}
	defer src.Close(ctx)
	// The first batch also pays for starting the reader; the pass starts after it.
	first, err := src.Read(ctx)
	if err != nil {
		b.Fatal(err)
	}
	n := len(first)
	m := startMeter(pid())
	for {
		t := time.Now()
		recs, err := src.Read(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			b.Fatal(err)
		}
		m.lat = append(m.lat, time.Since(t))
		m.records += len(recs)
	}
	s := m.stop()
	if n+s.records != *benchRecords {
		b.Fatalf("read %d records, want %d", n+s.records, *benchRecords)
	}
	return s
}

// benchBatches returns the sink scenarios' input: benchDistinct batches of the seq source's
// records, written in turn until a pass has written -plugin-records records.
func benchBatches(b *testing.B) [][]connector.Record {
	ctx := context.Background()
	gen, _ := testconn.NewSeq(connector.Config{"count": int64(benchDistinct * benchBatch), "batch": int64(benchBatch), "size": int64(benchValue)}, connector.Env{})
	if err := gen.Open(ctx, nil); err != nil {
		b.Fatal(err)
	}
	var batches [][]connector.Record
	for {
		recs, err := gen.Read(ctx)
		if errors.Is(err, io.EOF) {
			return batches
		}
		if err != nil {
			b.Fatal(err)
		}
		batches = append(batches, recs)
	}
}

func benchSink(b *testing.B, h *Host, p *Plugin, batches [][]connector.Record, plugin, pipelined bool) passStats {
	ctx := context.Background()
	dir := benchDir(b)
	cfg := connector.Config{"path": filepath.Join(dir, "out"), "sync": false}
	var snk connector.Sink
	pid := 0
	var ps *Sink
	if plugin {
		s, err := h.NewSink(p, "lines", cfg, connector.Env{})
		if err != nil {
			b.Fatal(err)
		}
		snk, ps = s, s
	} else {
		snk, _ = testconn.NewLines(cfg, connector.Env{})
	}
	if err := snk.Open(ctx); err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	defer snk.Close(ctx)
	if ps != nil {
		pid = ps.in.pid()
	}
	passes := *benchRecords / benchBatch
	m := startMeter(pid)
	if pipelined && ps != nil {
		type pending struct {
			start time.Time
			wait  func() error
		}
		var q []pending
		complete := func() {
			if err := q[0].wait(); err != nil {
				b.Fatal(err)
			}
			m.lat = append(m.lat, time.Since(q[0].start))
			q = q[1:]
		}
		for i := range passes {
			batch := batches[i%len(batches)]
			q = append(q, pending{time.Now(), ps.WriteAsync(ctx, batch)})
			m.records += len(batch)
			if len(q) == benchWindow {
				complete()
			}
		}
		for len(q) > 0 {
			complete()
		}
	} else {
		for i := range passes {
			batch := batches[i%len(batches)]
			t := time.Now()
			if err := snk.Write(ctx, batch); err != nil {
				b.Fatal(err)
			}
			m.lat = append(m.lat, time.Since(t))
			m.records += len(batch)
		}
	}
	return m.stop()
}

// benchDir returns a new directory for a sink's file: in memory (/dev/shm) where there is one,
// so that the disk's writeback, which other work on the machine shares, stays out of the
// measurement; the test's temporary directory otherwise.
func benchDir(b *testing.B) string {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if dir, err := os.MkdirTemp("/dev/shm", "pluginhost-bench-"); err == nil {
			return dir
		}
	}
	return b.TempDir()
}

// printRounds prints a scenario's rounds and medians and reports the medians as metrics.
func printRounds(b *testing.B, scenario string, in, pl []passStats) {
	w := os.Stdout
	fmt.Fprintf(w, "\n== %s ==\n", scenario)
	fmt.Fprintf(w, "%-5s %-11s %11s %9s %9s %9s %10s %10s %12s %9s %9s %8s %9s\n",
		"round", "side", "records/s", "p50", "p99", "max", "host cpu", "plugin cpu", "rec/cpu-s", "host MiB", "plug MiB", "ratio", "cpu ratio")
	var ratios, cpuRatios []float64
	for i := range in {
		for _, side := range []struct {
			name string
			s    passStats
		}{{"compiled-in", in[i]}, {"plugin", pl[i]}} {
			s := side.s
			p50, p99, pmax := percentiles(s.lat)
			fmt.Fprintf(w, "%-5d %-11s %11.0f %9s %9s %9s %9.0fms %9.0fms %12.0f %9s %9s", i+1, side.name, s.rate(),
				ms(p50), ms(p99), ms(pmax), msf(s.hostCPU), msf(s.pluginCPU), s.cpuRate(), mib(s.hostPeak), mib(s.pluginPeak))
			if side.name == "plugin" {
				r, cr := s.rate()/in[i].rate(), s.cpuRate()/in[i].cpuRate()
				ratios, cpuRatios = append(ratios, r), append(cpuRatios, cr)
				fmt.Fprintf(w, " %8.2f %9.2f", r, cr)
			}
			fmt.Fprintln(w)
		}
	}
	med := func(ss []passStats, f func(passStats) float64) float64 {
		xs := make([]float64, len(ss))
		for i, s := range ss {
			xs[i] = f(s)
		}
		return median(xs)
	}
	for _, side := range []struct {
		name string
		ss   []passStats
	}{{"compiled-in", in}, {"plugin", pl}} {
		var lat []time.Duration
		for _, s := range side.ss {
			lat = append(lat, s.lat...)
		}
		p50, p99, pmax := percentiles(lat)
		fmt.Fprintf(w, "%-5s %-11s %11.0f %9s %9s %9s %9.0fms %9.0fms %12.0f %9s %9s", "med", side.name,
			med(side.ss, passStats.rate), ms(p50), ms(p99), ms(pmax),
			med(side.ss, func(s passStats) float64 { return s.hostCPU.Seconds() * 1000 }),
			med(side.ss, func(s passStats) float64 { return s.pluginCPU.Seconds() * 1000 }),
			med(side.ss, passStats.cpuRate),
			mib(int64(med(side.ss, func(s passStats) float64 { return float64(s.hostPeak) }))),
			mib(int64(med(side.ss, func(s passStats) float64 { return float64(s.pluginPeak) }))))
		if side.name == "plugin" {
			fmt.Fprintf(w, " %8.2f %9.2f", median(ratios), median(cpuRatios))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "ratios per round (plugin/compiled-in, wall): %s; median %.2f\n", floats(ratios), median(ratios))
	fmt.Fprintf(w, "cpu ratios per round (records per CPU second, both processes): %s; median %.2f\n", floats(cpuRatios), median(cpuRatios))
	b.ReportMetric(med(in, passStats.rate), "compiled-in-rec/s")
	b.ReportMetric(med(pl, passStats.rate), "plugin-rec/s")
	b.ReportMetric(median(ratios), "ratio")
	b.ReportMetric(median(cpuRatios), "cpu-ratio")
	b.ReportMetric(0, "ns/op")
}

func percentiles(lat []time.Duration) (p50, p99, pmax time.Duration) {
	if len(lat) == 0 {
		return 0, 0, 0
	}
	s := slices.Clone(lat)
	slices.Sort(s)
	return s[len(s)/2], s[min(len(s)-1, len(s)*99/100)], s[len(s)-1]
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.2fms", d.Seconds()*1000)
}

func msf(d time.Duration) float64 { return d.Seconds() * 1000 }

func mib(n int64) string {
	if n < 0 {
		return "-"
	}
	if n == 0 {
		return "0"
	}
	return fmt.Sprintf("%.0f", float64(n)/(1<<20))
}

func floats(xs []float64) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = fmt.Sprintf("%.2f", x)
	}
	return strings.Join(s, " ")
}
