package postgres_test

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sluicehq/sluice/connectors/generate"
	"github.com/sluicehq/sluice/connectors/postgres"
	"github.com/sluicehq/sluice/internal/checkpoint"
	"github.com/sluicehq/sluice/internal/engine"
	"github.com/sluicehq/sluice/runtime/catalog"
	"github.com/sluicehq/sluice/runtime/pipeline"
	"github.com/sluicehq/sluice/sdk/go/connector"
	"github.com/sluicehq/sluice/sdk/go/conntest"
)

// countingSink counts the writes of the sink it wraps and those that failed.
type countingSink struct {
	connector.Sink
	writes, failures atomic.Int64
}

func (c *countingSink) Write(ctx context.Context, recs []connector.Record) error {
	c.writes.Add(1)
	err := c.Sink.Write(ctx, recs)
	if err != nil {
		c.failures.Add(1)
	}
	return err
}

// Postgres stopped for 30 seconds in the middle of a stream: the sink's writes fail and are
// retried with backoff (a handful of attempts, not a busy loop), the source is held back so memory
// stays within the pipeline's buffer, and once the server is back every record arrives.
func TestOutageIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("a 30-second outage")
	}
	pg := startPrivatePG(t, "outage")
	table := uniqueTable(t, pg.DSN, "pgoutage")
	const n = 300_000
	cfg := conntest.Config(t, spec, map[string]any{"dsn": pg.DSN, "table": table, "create_table": true, "mode": "upsert", "key": []any{"seq"},
		"columns": map[string]any{"seq": "bigint", "commodity": "text", "price": "double precision", "pad": "text"}})
	counting := &countingSink{}
	cat, err := catalog.New(generate.Component(), connector.SinkComponent(connector.Spec{Name: "pg-counting"}, func(_ connector.Config, env connector.Env) (connector.Sink, error) {
		s, err := postgres.NewSink(cfg, env)
		counting.Sink = s
		return counting, err
	}))
	if err != nil {
		t.Fatal(err)
	}
	p := &pipeline.Pipeline{
		Name: "outage",
		Source: pipeline.Component{Type: "generate", Config: conntest.Config(t, generate.Component().Spec, map[string]any{"count": int64(n), "seed": int64(1),
			"template": `{"seq":{{seq}},"commodity":"{{pick gold silver copper}}","price":{{rand_float 10 99}},"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}`})},
		Sinks:  []pipeline.Sink{{Name: "pg", Component: pipeline.Component{Type: "pg-counting", Config: connector.Config{}}}},
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
	ctx := testContext(t, 5*time.Minute)
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

	// Stop the server once the stream is well under way, keep it down for 30 seconds.
	probe := connect(t, pg.DSN)
	for {
		var rows int64
		if err := probe.QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{table}.Sanitize()).Scan(&rows); err == nil && rows >= n/10 {
			t.Logf("stopping postgres with %d rows written", rows)
			break
		}
		select {
		case err := <-runErr:
			t.Fatalf("the pipeline ended before the outage: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	probe.Close(ctx)
	pg.Stop()
	before := counting.failures.Load()
	time.Sleep(30 * time.Second)
	during := counting.failures.Load() - before
	pg.Start()
	t.Logf("postgres back after 30s; %d writes failed meanwhile", during)

	if err := <-runErr; err != nil {
		t.Fatalf("run: %v", err)
	}
	close(done)
	wg.Wait()
	growth := int64(peak.Load()) - int64(base.HeapInuse)
	t.Logf("peak heap growth %.1f MiB with an 8 MiB / 16384-record buffer; %d writes, %d failed", float64(growth)/(1<<20), counting.writes.Load(), counting.failures.Load())
	if during < 1 {
		t.Errorf("no write failed while postgres was down")
	}
	// Backoff doubles from 100ms up to 30s: about ten attempts in 30 seconds. A sink retried
	// without backoff would fail thousands of times.
	if during > 40 {
		t.Errorf("%d writes failed during the 30-second outage: the retries do not back off", during)
	}
	// Live data is bounded by the 8 MiB budget plus a few source batches taken before the
	// budget, and the sink's encoded batch; the garbage collector may double that. Without the
	// budget the 300,000 records (~50 MiB as records) pile up.
	if growth > 48<<20 {
		t.Errorf("peak heap grew by %.1f MiB: the buffer does not bound memory during the outage", float64(growth)/(1<<20))
	}
	got := psql(t, pg.DSN, fmt.Sprintf("SELECT count(*), count(DISTINCT seq), min(seq), max(seq) FROM %s", pgx.Identifier{table}.Sanitize()))
	if want := fmt.Sprintf("%d|%d|1|%d", n, n, n); got != want {
		t.Fatalf("count, distinct, min, max of seq = %s; want %s", got, want)
	}
}
