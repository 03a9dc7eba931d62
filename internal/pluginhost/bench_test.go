package pluginhost

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/pluginhost/internal/testconn"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// The benchmarks run the same connectors compiled in and through a plugin process in the same
// run, with large batches (8192 records of 100 bytes), and report both rates, their ratio and the
// plugin's extra time per batch (the discard sink shows the bare cost of crossing the boundary).
// Sinks run a third time through the plugin with pipelined writes (WriteAsync, benchWindow
// batches unanswered) and report that rate and ratio too (pipelined-rec/s, pipelined/compiled-in),
// with the CPU time the host and the plugin process spent per pipelined pass:
//
//	go test -run '^$' -bench BenchmarkPlugin -benchtime 3x ./internal/pluginhost/
const (
	benchRecords = 1 << 21 // 2,097,152 records per pass
	benchBatch   = 8192
	benchValue   = 100 // bytes
	benchWindow  = 3   // batches a pipelined sink benchmark keeps unanswered
)

func BenchmarkPluginSource(b *testing.B) {
	h := New(Options{})
	defer h.Close()
	p := discoverOne(b, h, pluginDir(b, "seq"))
	cfg := connector.Config{"count": int64(benchRecords), "batch": int64(benchBatch), "size": int64(benchValue)}
	ctx := context.Background()
	drain := func(src connector.Source) (time.Duration, int) {
		if err := src.Open(ctx, nil); err != nil {
			b.Fatal(err)
		}
		defer src.Close(ctx)
		// The first batch also pays for starting the reader; time from there on.
		first, err := src.Read(ctx)
		if err != nil {
			b.Fatal(err)
		}
		n, batches := len(first), 0
		start := time.Now()
		for {
			recs, err := src.Read(ctx)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			n += len(recs)
			batches++
		}
		if n != benchRecords {
			b.Fatalf("read %d records, want %d", n, benchRecords)
		}
		return time.Since(start), batches
	}
	var inTime, plTime time.Duration
	var batches int
	b.ResetTimer()
	for range b.N {
		in, _ := testconn.NewSeq(cfg, connector.Env{})
		d, _ := drain(in)
		inTime += d
		pl, err := h.NewSource(p, "seq", cfg, connector.Env{})
		if err != nil {
			b.Fatal(err)
		}
		d, n := drain(pl)
		plTime += d
		batches += n
	}
	report(b, inTime, plTime, batches)
}

func BenchmarkPluginSink(b *testing.B) {
	h := New(Options{})
	defer h.Close()
	p := discoverOne(b, h, pluginDir(b, "seq"))
	ctx := context.Background()
	gen, _ := testconn.NewSeq(connector.Config{"count": int64(benchRecords), "batch": int64(benchBatch), "size": int64(benchValue)}, connector.Env{})
	if err := gen.Open(ctx, nil); err != nil {
		b.Fatal(err)
	}
	var batches [][]connector.Record
	for {
		recs, err := gen.Read(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		batches = append(batches, recs)
	}
	fill := func(snk connector.Sink) time.Duration {
		if err := snk.Open(ctx); err != nil {
			b.Fatal(err)
		}
		defer snk.Close(ctx)
		start := time.Now()
		for _, batch := range batches {
			if err := snk.Write(ctx, batch); err != nil {
				b.Fatal(err)
			}
		}
		return time.Since(start)
	}
	// pipelined writes with WriteAsync, up to benchWindow batches unanswered, as a runtime
	// pipelining its writes would.
	pipelined := func(snk *Sink) time.Duration {
		if err := snk.Open(ctx); err != nil {
			b.Fatal(err)
		}
		defer snk.Close(ctx)
		var waits []func() error
		start := time.Now()
		for _, batch := range batches {
			waits = append(waits, snk.WriteAsync(ctx, batch))
			if len(waits) == benchWindow {
				if err := waits[0](); err != nil {
					b.Fatal(err)
				}
				waits = waits[1:]
			}
		}
		for _, w := range waits {
			if err := w(); err != nil {
				b.Fatal(err)
			}
		}
		return time.Since(start)
	}
	for _, c := range []struct {
		name string
		cfg  func(dir string) map[string]any
	}{
		{"discard", func(string) map[string]any { return nil }},
		{"lines", func(dir string) map[string]any { return map[string]any{"path": dir + "/out", "sync": false} }},
	} {
		b.Run(c.name, func(b *testing.B) {
			var inTime, plTime, pipeTime, hostCPU, pluginCPU time.Duration
			for range b.N {
				var in connector.Sink
				if c.name == "discard" {
					in, _ = testconn.NewDiscard(nil, connector.Env{})
				} else {
					in, _ = testconn.NewLines(c.cfg(b.TempDir()), connector.Env{})
				}
				inTime += fill(in)
				pl, err := h.NewSink(p, c.name, c.cfg(b.TempDir()), connector.Env{})
				if err != nil {
					b.Fatal(err)
				}
				plTime += fill(pl)
				pl, err = h.NewSink(p, c.name, c.cfg(b.TempDir()), connector.Env{})
				if err != nil {
					b.Fatal(err)
				}
				self0, child0 := cpuTimes()
				pipeTime += pipelined(pl) // closes the sink: the plugin process has been waited for
				self1, child1 := cpuTimes()
				hostCPU += self1 - self0
				pluginCPU += child1 - child0
			}
			report(b, inTime, plTime, len(batches)*b.N)
			recs := float64(len(batches)*b.N) * benchBatch
			b.ReportMetric(recs/pipeTime.Seconds(), "pipelined-rec/s")
			// CPU per pass of the pipelined runs (getrusage; 0 where not measured): the host's,
			// and the plugin process's whole life (start and stop included). Unlike the rates,
			// these hardly move when the machine is busy with other work.
			b.ReportMetric(hostCPU.Seconds()*1000/float64(b.N), "pipelined-host-cpu-ms/pass")
			b.ReportMetric(pluginCPU.Seconds()*1000/float64(b.N), "pipelined-plugin-cpu-ms/pass")
			if plTime < 1000*inTime {
				b.ReportMetric(inTime.Seconds()/pipeTime.Seconds(), "pipelined/compiled-in")
			}
		})
	}
}

func report(b *testing.B, inTime, plTime time.Duration, batches int) {
	recs := float64(batches) * benchBatch
	inRate := recs / inTime.Seconds()
	plRate := recs / plTime.Seconds()
	b.ReportMetric(plRate, "plugin-rec/s")
	// A sink that does nothing compiled in has no meaningful rate: report only the plugin's.
	if plTime < 1000*inTime {
		b.ReportMetric(inRate, "compiled-in-rec/s")
		b.ReportMetric(plRate/inRate, "plugin/compiled-in")
	}
	b.ReportMetric(float64((plTime-inTime).Microseconds())/float64(batches), "overhead-µs/batch")
	b.ReportMetric(0, "ns/op")
}
