// Command postgres benchmarks the postgres sink against plain pgx programs doing the same work
// (the ceiling), each scenario in a fresh child process so CPU time and peak memory are its own.
// It writes to the Postgres of `make services` (PG_DSN in build/services.env). Run it with
// `make bench-postgres` or `go run ./internal/bench/postgres`.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sluicehq/sluice/connectors/all"
	"github.com/sluicehq/sluice/connectors/postgres"
	"github.com/sluicehq/sluice/internal/bench/child"
	"github.com/sluicehq/sluice/internal/bench/peak"
	"github.com/sluicehq/sluice/internal/checkpoint"
	"github.com/sluicehq/sluice/internal/engine"
	"github.com/sluicehq/sluice/internal/gctune"
	"github.com/sluicehq/sluice/internal/testenv"
	"github.com/sluicehq/sluice/runtime/pipeline"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

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

// scenarios in the order they run; a direct program runs right before the sink it is the
// ceiling of, so both see the same machine.
var scenarios = []string{
	"append/pgx-copy", "append/pgx-decode-copy", "append/sluice",
	"upsert/pgx-decode-copy", "upsert/sluice",
	"append-tx/sluice",
	"generate-engine/sluice",
	"kafka-eo/sluice",
	"kafka-validate-eo/sluice",
}

func main() {
	child := flag.String("child", "", "run one scenario/impl in this process (internal)")
	records := flag.Int("records", 300_000, "records per scenario")
	batch := flag.Int("batch", 4096, "records per write (the engine coalesces up to 4 batches of 1024)")
	cpuprofile := flag.String("cpuprofile", "", "with -child: write a CPU profile")
	only := flag.String("only", "", "comma-separated scenarios to run (default: all)")
	rounds := flag.Int("rounds", 3, "rounds of all scenarios, alternating; each scenario reports its median round")
	flag.Parse()
	dsn, why := testenv.Lookup("PG_DSN")
	if dsn == "" {
		fmt.Printf("postgres benchmark skipped: %s; run `make services`\n", why)
		return
	}
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
		r, err := runChild(context.Background(), dsn, *child, *records, *batch)
		pprof.StopCPUProfile()
		if err != nil {
			fatal(fmt.Errorf("%s: %w", *child, err))
		}
		r.MaxRSS = peak.RSS()
		json.NewEncoder(os.Stdout).Encode(r)
		return
	}
	fmt.Printf("postgres benchmark: %d records of ~100 bytes, %d per write, %d cores shared with the server, median of %d rounds\n\n",
		*records, *batch, numCPU(), *rounds)
	runs := map[string][]result{}
	for range *rounds {
		for _, sc := range scenarios {
			if *only != "" && !slices.Contains(strings.Split(*only, ","), sc) {
				continue
			}
			r, err := spawn(sc, *records, *batch)
			if err != nil {
				fatal(err)
			}
			runs[sc] = append(runs[sc], r)
		}
	}
	fmt.Printf("%-16s %-16s %10s %7s %11s %7s %9s %9s %7s %9s  %s\n", "scenario", "impl", "records", "secs", "records/s", "MB/s", "p50", "p99", "cpu s", "peak MiB", "records/s of each round")
	rate := map[string]float64{}
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
		rate[sc] = float64(r.Records) / secs
		fmt.Printf("%-16s %-16s %10d %7.2f %11.0f %7.1f %9s %9s %7.2f %9.1f  %s\n", r.Scenario, r.Impl, r.Records, secs,
			rate[sc], float64(r.Bytes)/secs/1e6, dur(r.P50), dur(r.P99), r.CPU.Seconds(), float64(r.MaxRSS)/(1<<20), strings.Join(each, " "))
	}
	fmt.Println()
	for _, c := range [][2]string{{"append/sluice", "append/pgx-decode-copy"}, {"append/sluice", "append/pgx-copy"}, {"upsert/sluice", "upsert/pgx-decode-copy"}} {
		if rate[c[0]] > 0 && rate[c[1]] > 0 {
			fmt.Printf("%s / %s = %.2f\n", c[0], c[1], rate[c[0]]/rate[c[1]])
		}
	}
	fmt.Println("\npgx-copy = pgx CopyFrom of rows already decoded (the client library's ceiling for these rows);")
	fmt.Println("pgx-decode-copy = a plain program: encoding/json into a struct, then pgx CopyFrom (upsert: into a temporary")
	fmt.Println("table, then INSERT ... SELECT ... ON CONFLICT), the same work the sink does from the same JSON values.")
	fmt.Println("append-tx = WriteTx: rows and source positions in one transaction (exactly-once).")
	fmt.Println("generate-engine = generate → engine → postgres sink, the default batch policy (at least once).")
	fmt.Printf("kafka-validate-eo = Kafka (%d partitions, filled beforehand) → validate_price (the C module) → postgres, exactly_once,\n", kafkaPartitions)
	fmt.Println("  `sluice run` in the child: records/s from the first row stored to the last; p50/p99 = Kafka timestamp to")
	fmt.Printf("  commit of records then produced at %d/s. kafka-eo = the same without the transform.\n", kafkaRate)
	fmt.Println("p50/p99 = time of one write (engine: from a record's creation to its batch's commit). cpu/peak = the client process only.")
}

func spawn(sc string, records, batch int) (result, error) {
	var r result
	cpu, err := child.Run(&r, "-child", sc, "-records", strconv.Itoa(records), "-batch", strconv.Itoa(batch))
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

// value renders record i: ~100 bytes of JSON.
func value(i int) []byte {
	commodities := [...]string{"gold", "silver", "copper"}
	return fmt.Appendf(nil, `{"seq":%d,"commodity":%q,"price":%d.%02d,"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}`,
		i, commodities[i%3], 10+i%90, i%100)
}

// row is what the plain program decodes a value into.
type row struct {
	Seq       int64   `json:"seq"`
	Commodity string  `json:"commodity"`
	Price     float64 `json:"price"`
	Pad       string  `json:"pad"`
}

// kafkaRate is the steady rate of the Kafka scenario's latency phase, records/s.
const kafkaRate = 20_000

var columns = []string{"seq", "commodity", "price", "pad"}

func runChild(ctx context.Context, dsn, name string, n, batch int) (result, error) {
	scenario, impl, _ := strings.Cut(name, "/")
	r := result{Scenario: scenario, Impl: impl}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return r, err
	}
	defer conn.Close(ctx)
	table := fmt.Sprintf("bench_pg_%s_%d", strings.NewReplacer("-", "_", "/", "_").Replace(name), time.Now().UnixNano())
	if _, err := conn.Exec(ctx, "CREATE TABLE "+table+" (seq bigint, commodity text, price double precision, pad text)"); err != nil {
		return r, err
	}
	defer conn.Exec(context.Background(), "DROP TABLE IF EXISTS "+table+", "+table+"_pos")
	if scenario == "upsert" {
		if _, err := conn.Exec(ctx, "ALTER TABLE "+table+" ADD PRIMARY KEY (seq)"); err != nil {
			return r, err
		}
	}
	values := make([][]byte, n)
	for i := range values {
		values[i] = value(i)
		r.Bytes += int64(len(values[i]))
	}
	var lat []time.Duration
	timed := func(f func() error) error {
		t := time.Now()
		err := f()
		lat = append(lat, time.Since(t))
		return err
	}
	start := time.Now()
	switch name {
	case "append/pgx-copy":
		rows := make([][]any, n)
		for i, v := range values {
			var x row
			if err := json.Unmarshal(v, &x); err != nil {
				return r, err
			}
			rows[i] = []any{x.Seq, x.Commodity, x.Price, x.Pad}
		}
		start = time.Now() // decoding is not timed here
		for lo := 0; lo < n; lo += batch {
			hi := min(lo+batch, n)
			if err := timed(func() error {
				_, err := conn.CopyFrom(ctx, pgx.Identifier{table}, columns, pgx.CopyFromRows(rows[lo:hi]))
				return err
			}); err != nil {
				return r, err
			}
		}
	case "append/pgx-decode-copy", "upsert/pgx-decode-copy":
		upsert := scenario == "upsert"
		if upsert {
			if _, err := conn.Exec(ctx, "CREATE TEMP TABLE stage (LIKE "+table+") ON COMMIT DELETE ROWS"); err != nil {
				return r, err
			}
		}
		rows := make([]row, batch)
		for lo := 0; lo < n; lo += batch {
			hi := min(lo+batch, n)
			if err := timed(func() error {
				for i := lo; i < hi; i++ {
					if err := json.Unmarshal(values[i], &rows[i-lo]); err != nil {
						return err
					}
				}
				src := pgx.CopyFromSlice(hi-lo, func(i int) ([]any, error) {
					x := &rows[i]
					return []any{x.Seq, x.Commodity, x.Price, x.Pad}, nil
				})
				if !upsert {
					_, err := conn.CopyFrom(ctx, pgx.Identifier{table}, columns, src)
					return err
				}
				tx, err := conn.Begin(ctx)
				if err != nil {
					return err
				}
				defer tx.Rollback(ctx)
				if _, err := tx.CopyFrom(ctx, pgx.Identifier{"stage"}, columns, src); err != nil {
					return err
				}
				if _, err := tx.Exec(ctx, "INSERT INTO "+table+" SELECT * FROM stage ON CONFLICT (seq) DO UPDATE SET commodity = EXCLUDED.commodity, price = EXCLUDED.price, pad = EXCLUDED.pad"); err != nil {
					return err
				}
				return tx.Commit(ctx)
			}); err != nil {
				return r, err
			}
		}
	case "append/sluice", "upsert/sluice", "append-tx/sluice":
		cfg := map[string]any{"dsn": dsn, "table": table, "mode": scenario, "positions_table": table + "_pos",
			"columns": map[string]any{"seq": "bigint", "commodity": "text", "price": "double precision", "pad": "text"}}
		if scenario == "append-tx" {
			cfg["mode"] = "append"
		}
		if scenario == "upsert" {
			cfg["key"] = []any{"seq"}
		}
		s, err := newSink(cfg)
		if err != nil {
			return r, err
		}
		if err := s.Open(ctx); err != nil {
			return r, err
		}
		defer s.Close(ctx)
		tx := scenario == "append-tx"
		if tx {
			if _, err := s.StoredPositions(ctx); err != nil {
				return r, err
			}
		}
		recs := make([]connector.Record, n)
		for i, v := range values {
			recs[i] = connector.Record{Value: v, Position: connector.Position{Partition: "p", Offset: int64(i)}}
		}
		start = time.Now()
		for lo := 0; lo < n; lo += batch {
			hi := min(lo+batch, n)
			if err := timed(func() error {
				if tx {
					return s.WriteTx(ctx, recs[lo:hi], []connector.Position{recs[hi-1].Position})
				}
				return s.Write(ctx, recs[lo:hi])
			}); err != nil {
				return r, err
			}
		}
	case "generate-engine/sluice":
		var err error
		if lat, err = runEngine(ctx, dsn, table, n); err != nil {
			return r, err
		}
	case "kafka-eo/sluice", "kafka-validate-eo/sluice":
		guest := ""
		if scenario == "kafka-validate-eo" {
			guest = "c"
		}
		if err := runKafka(ctx, conn, dsn, table, guest, n, kafkaRate, &r); err != nil {
			return r, err
		}
		r.Bytes = r.Records * int64(len(kafkaValue(n)))
		return r, nil
	default:
		return r, fmt.Errorf("unknown scenario %q", name)
	}
	r.Elapsed = time.Since(start)
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&r.Records); err != nil {
		return r, err
	}
	if r.Records != int64(n) {
		return r, fmt.Errorf("the table holds %d rows; want %d", r.Records, n)
	}
	if name == "generate-engine/sluice" {
		var b int64
		conn.QueryRow(ctx, "SELECT sum(octet_length(commodity) + octet_length(pad) + 40) FROM "+table).Scan(&b)
		r.Bytes = b
	}
	slices.Sort(lat)
	if len(lat) > 0 {
		r.P50, r.P99 = lat[len(lat)/2], lat[len(lat)*99/100]
	}
	return r, nil
}

func newSink(values map[string]any) (*postgres.Sink, error) {
	spec := postgres.Component().Spec
	cfg, err := spec.Config(values)
	if err != nil {
		return nil, err
	}
	return postgres.NewSink(cfg, connector.Env{Pipeline: "bench", Component: "pg"})
}

// runEngine runs generate → postgres through the engine and returns, per batch, the time from
// its first record's creation to its commit.
func runEngine(ctx context.Context, dsn, table string, n int) ([]time.Duration, error) {
	dir, err := os.MkdirTemp("", "sluice-bench-pg-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	store, err := checkpoint.Open(filepath.Join(dir, "data"))
	if err != nil {
		return nil, err
	}
	defer store.Close()
	spec := postgres.Component().Spec
	cfg, err := spec.Config(map[string]any{"dsn": dsn, "table": table,
		"columns": map[string]any{"seq": "bigint", "commodity": "text", "price": "double precision", "pad": "text"}})
	if err != nil {
		return nil, err
	}
	lat := &latencySink{}
	cat := all.Catalog()
	if err := cat.Add(connector.SinkComponent(connector.Spec{Name: "bench-pg", Summary: "benchmark sink"}, func(_ connector.Config, env connector.Env) (connector.Sink, error) {
		s, err := postgres.NewSink(cfg, env)
		lat.inner = s
		return lat, err
	})); err != nil {
		return nil, err
	}
	p := &pipeline.Pipeline{
		Name: "bench-pg",
		Source: pipeline.Component{Type: "generate", Config: connector.Config{"count": int64(n), "batch_size": int64(1024), "seed": int64(42),
			"template": `{"seq":{{seq}},"commodity":"{{pick gold silver copper}}","price":{{rand_float 10 99}},"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}`}},
		Sinks: []pipeline.Sink{{Name: "pg", Component: pipeline.Component{Type: "bench-pg", Config: connector.Config{}}}},
	}
	e, err := engine.New(p, engine.Options{Catalog: cat, Checkpoints: store, DataDir: dir})
	if err != nil {
		return nil, err
	}
	if err := e.Run(ctx); err != nil {
		return nil, err
	}
	return lat.lat, nil
}

// latencySink wraps the postgres sink and records each batch's latency from its first record's
// creation to its commit.
type latencySink struct {
	inner connector.Sink
	mu    sync.Mutex
	lat   []time.Duration
}

func (s *latencySink) Open(ctx context.Context) error  { return s.inner.Open(ctx) }
func (s *latencySink) Close(ctx context.Context) error { return s.inner.Close(ctx) }
func (s *latencySink) Write(ctx context.Context, recs []connector.Record) error {
	if err := s.inner.Write(ctx, recs); err != nil {
		return err
	}
	d := time.Since(recs[0].Time)
	s.mu.Lock()
	s.lat = append(s.lat, d)
	s.mu.Unlock()
	return nil
}
