// Command iceberg benchmarks the Iceberg sink against a plain program doing the same appends with
// iceberg-go directly (the ceiling: typed values into Arrow builders, one Transaction.Append and
// Commit per batch), each in a fresh child process so CPU time and peak memory are its own. Both
// write to a SQL catalog on SQLite with a local warehouse. Run it with `make bench-iceberg` or
// `go run ./internal/bench/iceberg`.
package main

import (
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	ice "github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	sqlcat "github.com/apache/iceberg-go/catalog/sql"
	"github.com/apache/iceberg-go/table"
	"github.com/uptrace/bun/driver/sqliteshim"

	"github.com/sluicehq/sluice/connectors/iceberg"
	"github.com/sluicehq/sluice/internal/bench/child"
	"github.com/sluicehq/sluice/internal/bench/peak"
	"github.com/sluicehq/sluice/internal/gctune"
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

// row is one record as the direct program holds it.
type row struct {
	seq       int64
	commodity string
	price     float64
	ts        time.Time
	pad       string
}

var commodities = []string{"gold", "silver", "copper", "wheat", "coffee"}

var base = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

func makeRow(i int64) row {
	return row{seq: i, commodity: commodities[i%5], price: float64(1000+i%9000) / 100,
		ts: base.Add(time.Duration(i) * 250 * time.Millisecond), pad: "xxxxxxxxxxxxxxxxxxxxxxxxxxx"}
}

// jsonOf renders a row as the sink receives it: 100 bytes for 7-digit sequence numbers.
func jsonOf(r row) []byte {
	return fmt.Appendf(nil, `{"seq":%d,"commodity":%q,"price":%.2f,"ts":%q,"pad":%q}`,
		r.seq, r.commodity, r.price, r.ts.Format("2006-01-02T15:04:05.000Z"), r.pad[:30-len(r.commodity)])
}

var schema = []any{
	map[string]any{"name": "seq", "type": "long", "required": true},
	map[string]any{"name": "commodity", "type": "string", "required": true},
	map[string]any{"name": "price", "type": "double", "required": true},
	map[string]any{"name": "ts", "type": "timestamptz", "required": true},
	map[string]any{"name": "pad", "type": "string"},
}

func main() {
	child := flag.String("child", "", "run one scenario/impl in this process (internal)")
	commits := flag.Int("commits", 10, "commits per run")
	batch := flag.Int("batch", 100_000, "records per commit")
	cpuprofile := flag.String("cpuprofile", "", "with -child: write a CPU profile")
	rounds := flag.Int("rounds", 3, "rounds of all scenarios, alternating; each reports its median round")
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
		r, err := runChild(*child, *commits, *batch)
		pprof.StopCPUProfile()
		if err != nil {
			fatal(err)
		}
		r.MaxRSS = peak.RSS()
		json.NewEncoder(os.Stdout).Encode(r)
		return
	}
	fmt.Printf("iceberg sink benchmark: 100-byte JSON records, %d commits of %d records, SQLite catalog, %d cores, median of %d rounds\n\n", *commits, *batch, numCPU(), *rounds)
	scenarios := []string{"append/direct", "append/direct-decode", "append/sluice", "partitioned/direct", "partitioned/direct-decode", "partitioned/sluice"}
	runs := map[string][]result{}
	for range *rounds {
		for _, sc := range scenarios {
			runs[sc] = append(runs[sc], runOne(sc, *commits, *batch))
		}
	}
	fmt.Printf("%-12s %-14s %9s %7s %11s %7s %9s %9s %7s %9s %7s %7s\n", "scenario", "impl", "records", "secs", "records/s", "MB/s", "p50", "p99", "cpu s", "peak MiB", "/direct", "/decode")
	rates := map[string]float64{}
	for _, sc := range scenarios {
		rs := runs[sc]
		slices.SortFunc(rs, func(a, b result) int { return cmp.Compare(a.rate(), b.rate()) })
		r := rs[len(rs)/2]
		rates[sc] = r.rate()
		vsDirect, vsDecode := "-", "-"
		if r.Impl == "sluice" {
			vsDirect = fmt.Sprintf("%.2f", r.rate()/rates[r.Scenario+"/direct"])
			vsDecode = fmt.Sprintf("%.2f", r.rate()/rates[r.Scenario+"/direct-decode"])
		}
		fmt.Printf("%-12s %-14s %9d %7.2f %11.0f %7.1f %9s %9s %7.2f %9.1f %7s %7s\n", r.Scenario, r.Impl, r.Records, r.Elapsed.Seconds(),
			r.rate(), float64(r.Bytes)/r.Elapsed.Seconds()/1e6, dur(r.P50), dur(r.P99), r.CPU.Seconds(), float64(r.MaxRSS)/(1<<20), vsDirect, vsDecode)
	}
	fmt.Println("\ndirect = iceberg-go used directly: typed values into Arrow builders, Transaction.Append, Commit (the ceiling;")
	fmt.Println("  it is handed the values already decoded, which the sink is not).")
	fmt.Println("direct-decode = the same plain program given the sink's JSON: encoding/json into a struct first.")
	fmt.Println("sluice = the iceberg sink's Write: JSON records converted by the declared schema, data files written, one commit.")
	fmt.Println("partitioned = partition [day(ts), commodity]; p50/p99 = time of one commit of a batch (Write or Append+Commit).")
	fmt.Println("/direct, /decode = sluice records/s over the plain program's, same scenario; the rounds alternate the programs.")
}

// runOne runs one scenario in a child process and adds its CPU time.
func runOne(sc string, commits, batch int) result {
	var r result
	cpu, err := child.Run(&r, "-child", sc, "-commits", fmt.Sprint(commits), "-batch", fmt.Sprint(batch))
	if err != nil {
		fatal(fmt.Errorf("%s: %w", sc, err))
	}
	r.CPU = cpu
	return r
}

func (r result) rate() float64 { return float64(r.Records) / r.Elapsed.Seconds() }

func dur(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	return d.Round(time.Millisecond).String()
}

func numCPU() int {
	b, _ := os.ReadFile("/proc/cpuinfo")
	return strings.Count(string(b), "processor\t:")
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}

func runChild(name string, commits, batch int) (result, error) {
	scenario, impl, _ := strings.Cut(name, "/")
	r := result{Scenario: scenario, Impl: impl}
	dir, err := os.MkdirTemp("", "sluice-bench-iceberg-")
	if err != nil {
		return r, err
	}
	defer os.RemoveAll(dir)
	var partition []any
	if scenario == "partitioned" {
		partition = []any{"day(ts)", "commodity"}
	}
	// The input of every commit, prepared before timing starts.
	rows := make([][]row, commits)
	recs := make([][]connector.Record, commits)
	for c := range commits {
		rows[c] = make([]row, batch)
		recs[c] = make([]connector.Record, batch)
		for i := range batch {
			n := int64(1_000_000 + c*batch + i)
			rows[c][i] = makeRow(n)
			recs[c][i] = connector.Record{Value: jsonOf(rows[c][i]), Position: connector.Position{Offset: n}}
			r.Bytes += int64(len(recs[c][i].Value))
		}
	}
	var lat []time.Duration
	ctx := context.Background()
	switch impl {
	case "sluice":
		s, err := newSink(dir, partition)
		if err != nil {
			return r, err
		}
		if err := s.Open(ctx); err != nil {
			return r, err
		}
		start := time.Now()
		for c := range commits {
			t0 := time.Now()
			if err := s.Write(ctx, recs[c]); err != nil {
				return r, err
			}
			lat = append(lat, time.Since(t0))
		}
		r.Elapsed = time.Since(start)
		if err := s.Close(ctx); err != nil {
			return r, err
		}
	case "direct", "direct-decode":
		decode := impl == "direct-decode"
		tbl, err := directTable(ctx, dir, partition)
		if err != nil {
			return r, err
		}
		sc, err := table.SchemaToArrowSchema(tbl.Schema(), nil, true, false)
		if err != nil {
			return r, err
		}
		start := time.Now()
		decoded := make([]row, batch)
		for c := range commits {
			t0 := time.Now()
			in := rows[c]
			if decode {
				// What a plain program given the same JSON does first: encoding/json into a struct.
				for i := range recs[c] {
					var v struct {
						Seq       int64     `json:"seq"`
						Commodity string    `json:"commodity"`
						Price     float64   `json:"price"`
						TS        time.Time `json:"ts"`
						Pad       string    `json:"pad"`
					}
					if err := json.Unmarshal(recs[c][i].Value, &v); err != nil {
						return r, err
					}
					decoded[i] = row{seq: v.Seq, commodity: v.Commodity, price: v.Price, ts: v.TS, pad: v.Pad}
				}
				in = decoded
			}
			if tbl, err = directAppend(ctx, tbl, sc, in); err != nil {
				return r, err
			}
			lat = append(lat, time.Since(t0))
		}
		r.Elapsed = time.Since(start)
	default:
		return r, fmt.Errorf("unknown scenario %q", name)
	}
	r.Records = int64(commits * batch)
	slices.Sort(lat)
	r.P50, r.P99 = lat[len(lat)/2], lat[len(lat)*99/100]
	return r, nil
}

func newSink(dir string, partition []any) (*iceberg.Sink, error) {
	spec := iceberg.Components()[0].Spec
	values := map[string]any{
		"catalog": map[string]any{"type": "sql", "uri": "sqlite:///" + filepath.Join(dir, "catalog.db"), "warehouse": "file://" + filepath.Join(dir, "warehouse")},
		"table":   "bench.prices",
		"schema":  schema,
	}
	if partition != nil {
		values["partition"] = partition
	}
	cfg, err := spec.Config(values)
	if err != nil {
		return nil, err
	}
	return iceberg.NewSink(cfg, connector.Env{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Pipeline: "bench", Component: "lake"})
}

// directTable creates the same table as the sink would, through iceberg-go.
func directTable(ctx context.Context, dir string, partition []any) (*table.Table, error) {
	cat, err := catalog.Load(ctx, "default", ice.Properties{
		"type": "sql", "uri": "file:" + filepath.Join(dir, "catalog.db"), sqlcat.DriverKey: sqliteshim.ShimName,
		sqlcat.DialectKey: string(sqlcat.SQLite), "warehouse": "file://" + filepath.Join(dir, "warehouse"), "init_catalog_tables": "true",
	})
	if err != nil {
		return nil, err
	}
	if err := cat.CreateNamespace(ctx, catalog.ToIdentifier("bench"), nil); err != nil {
		return nil, err
	}
	sc := ice.NewSchema(0,
		ice.NestedField{ID: 1, Name: "seq", Type: ice.PrimitiveTypes.Int64, Required: true},
		ice.NestedField{ID: 2, Name: "commodity", Type: ice.PrimitiveTypes.String, Required: true},
		ice.NestedField{ID: 3, Name: "price", Type: ice.PrimitiveTypes.Float64, Required: true},
		ice.NestedField{ID: 4, Name: "ts", Type: ice.PrimitiveTypes.TimestampTz, Required: true},
		ice.NestedField{ID: 5, Name: "pad", Type: ice.PrimitiveTypes.String})
	opts := []catalog.CreateTableOpt{catalog.WithProperties(ice.Properties{"commit.manifest-merge.enabled": "true", "write.metadata.delete-after-commit.enabled": "true"})}
	if partition != nil {
		spec, err := ice.NewPartitionSpecOpts(
			ice.AddPartitionFieldByName("ts", "ts_day", ice.DayTransform{}, sc, nil),
			ice.AddPartitionFieldByName("commodity", "commodity", ice.IdentityTransform{}, sc, nil))
		if err != nil {
			return nil, err
		}
		opts = append(opts, catalog.WithPartitionSpec(&spec))
	}
	return cat.CreateTable(ctx, catalog.ToIdentifier("bench", "prices"), sc, opts...)
}

// directAppend is the plain program's commit: typed values into Arrow, one Append, one Commit.
func directAppend(ctx context.Context, tbl *table.Table, sc *arrow.Schema, rows []row) (*table.Table, error) {
	b := array.NewRecordBuilder(memory.DefaultAllocator, sc)
	defer b.Release()
	b.Reserve(len(rows))
	seq := b.Field(0).(*array.Int64Builder)
	com := b.Field(1).(*array.StringBuilder)
	price := b.Field(2).(*array.Float64Builder)
	ts := b.Field(3).(*array.TimestampBuilder)
	pad := b.Field(4).(*array.StringBuilder)
	for _, r := range rows {
		seq.Append(r.seq)
		com.Append(r.commodity)
		price.Append(r.price)
		ts.Append(arrow.Timestamp(r.ts.UnixMicro()))
		pad.Append(r.pad[:30-len(r.commodity)])
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	rdr, err := array.NewRecordReader(sc, []arrow.RecordBatch{rec})
	if err != nil {
		return nil, err
	}
	defer rdr.Release()
	tx := tbl.NewTransaction()
	if err := tx.Append(ctx, rdr, nil); err != nil {
		return nil, err
	}
	return tx.Commit(ctx)
}
