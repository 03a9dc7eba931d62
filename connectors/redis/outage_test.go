package redis

import (
	"context"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/connectors/generate"
	"github.com/sluicehq/sluice/internal/checkpoint"
	"github.com/sluicehq/sluice/internal/engine"
	"github.com/sluicehq/sluice/runtime/catalog"
	"github.com/sluicehq/sluice/runtime/pipeline"
	"github.com/sluicehq/sluice/sdk/go/connector"
	"github.com/sluicehq/sluice/sdk/go/conntest"
)

// countingSink counts the failed writes of the sink it wraps.
type countingSink struct {
	*Sink
	failures atomic.Int64
}

func (c *countingSink) Write(ctx context.Context, recs []connector.Record) error {
	err := c.Sink.Write(ctx, recs)
	if err != nil {
		c.failures.Add(1)
	}
	return err
}

// TestOutageIntegration stops a private Redis for 30 seconds in the middle of a stream: the
// writes fail and are retried with backoff, the source is held back so memory stays within the
// pipeline's budget, and once Redis is back every record arrives.
func TestOutageIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("a 30-second outage")
	}
	srv := startPrivateRedis(t)
	const n = 300_000
	cfg := conntest.Config(t, sinkSpec, map[string]any{"addr": srv.Addr(), "mode": "stream", "stream": "prices", "fields": "object", "dial_timeout": time.Second})
	counting := &countingSink{}
	cat, err := catalog.New(generate.Component(), connector.SinkComponent(connector.Spec{Name: "redis-counting"}, func(_ connector.Config, env connector.Env) (connector.Sink, error) {
		s, err := NewSink(cfg, env)
		counting.Sink = s
		return counting, err
	}))
	if err != nil {
		t.Fatal(err)
	}
	p := &pipeline.Pipeline{
		Name:   "outage",
		Source: generateSource(n),
		Sinks:  []pipeline.Sink{{Name: "cache", Component: pipeline.Component{Type: "redis-counting", Config: connector.Config{}}}},
		Buffer: pipeline.BufferPolicy{MaxRecords: 16384, MaxBytes: 8 << 20},
	}
	dir := t.TempDir()
	store, err := checkpoint.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	e, err := engine.New(p, engine.Options{Catalog: cat, Checkpoints: store, DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t, 5*time.Minute)
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	var peak atomic.Uint64
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Go(func() {
		var ms runtime.MemStats
		for {
			select {
			case <-done:
				return
			case <-time.After(5 * time.Millisecond):
			}
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
		}
	})
	runErr := make(chan error, 1)
	go func() { runErr <- e.Run(ctx) }()

	// Stop the server once the stream is well under way; keep it down for 30 seconds.
	probe := client(t, srv.Addr())
	for {
		if got := probe.XLen(ctx, "prices").Val(); got >= n/10 {
			t.Logf("stopping redis with %d entries written", got)
			break
		}
		select {
		case err := <-runErr:
			t.Fatalf("the pipeline ended before the outage: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	srv.stop()
	before := counting.failures.Load()
	time.Sleep(30 * time.Second)
	during := counting.failures.Load() - before
	srv.start()
	t.Logf("redis back after 30s; %d writes failed meanwhile", during)

	if err := <-runErr; err != nil {
		t.Fatalf("pipeline: %v", err)
	}
	close(done)
	wg.Wait()
	if during < 2 {
		t.Errorf("%d writes failed during the outage; want retries", during)
	}
	// Backoff: 30 seconds of retrying every ~10ms would be thousands of attempts.
	if during > 100 {
		t.Errorf("%d writes failed during a 30s outage: retries without backoff", during)
	}
	growth := int64(peak.Load()) - int64(base.HeapInuse)
	t.Logf("peak heap growth %.1f MiB with an 8 MiB / 16384-record buffer", float64(growth)/(1<<20))
	// Live data is bounded by the budget plus the source batches held before it is taken and the
	// sink's pipeline of up to four batches; the collector may double that. Without the budget
	// 30 seconds of generate at full speed would be gigabytes.
	if growth > 96<<20 {
		t.Errorf("peak heap grew by %.1f MiB during the outage: the budget does not hold", float64(growth)/(1<<20))
	}

	// Nothing lost: every seq is in the stream (a batch whose reply was lost in the crash may
	// be written twice: delivery is at least once).
	seen := make([]int, n+1)
	total := 0
	for start := "-"; ; {
		msgs := probe.XRangeN(ctx, "prices", start, "+", 10000).Val()
		if len(msgs) == 0 {
			break
		}
		for _, m := range msgs {
			i, err := strconv.Atoi(m.Values["seq"].(string))
			if err != nil || i < 1 || i > n {
				t.Fatalf("entry %s has seq %v", m.ID, m.Values["seq"])
			}
			seen[i]++
			total++
		}
		start = "(" + msgs[len(msgs)-1].ID
	}
	missing := 0
	for i := 1; i <= n; i++ {
		if seen[i] == 0 {
			missing++
		}
	}
	t.Logf("%d entries for %d records", total, n)
	if missing > 0 {
		t.Fatalf("%d of %d records are missing after the outage", missing, n)
	}
}
