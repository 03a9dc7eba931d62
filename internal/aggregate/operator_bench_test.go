package aggregate

import (
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/sluicehq/sluice/internal/wasmhost"
	"github.com/sluicehq/sluice/runtime/pipeline"
	"github.com/sluicehq/sluice/runtime/transform"
	"github.com/sluicehq/sluice/sdk/go/abi"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// statsWasm is the first-party stats module (its Rust build), or the module AGG_BENCH_STATS_WASM
// names (to compare two builds); statsGoWasm its build with the Go SDK.
var (
	statsWasm   = cmp.Or(os.Getenv("AGG_BENCH_STATS_WASM"), filepath.Join("..", "..", "transforms", "stats", "stats.wasm"))
	statsGoWasm = filepath.Join("..", "..", "transforms", "stats", "stats-go.wasm")
)

// BenchmarkOperator measures records/s through an operator keyed by $.commodity on 1-minute
// tumbling windows of $.ts (allowed lateness 10s), in batches of 1,024 records of about 100
// bytes whose event time advances 1 ms per record (1,000 records per second of event time, up to
// 2 s out of order), with a background committer writing the state to a bbolt file as the engine
// does. guest=go is a guest in Go that only counts, so it shows the host's own cost;
// guest=stats.wasm is the stats module on the WASM host with a stage's default settings;
// guest=stats-go.wasm its build with the Go SDK.
func BenchmarkOperator(b *testing.B) {
	for _, guest := range []string{"go", "stats.wasm", "stats-go.wasm"} {
		for _, keys := range []int{10, 10_000, 1_000_000} {
			b.Run(fmt.Sprintf("guest=%s/keys=%d", guest, keys), func(b *testing.B) {
				var g transform.Aggregator = countGuest{}
				switch guest {
				case "stats.wasm":
					g = statsStage(b, statsWasm)
				case "stats-go.wasm":
					g = statsStage(b, statsGoWasm)
				}
				benchOperator(b, g, keys)
			})
		}
	}
}

func benchOperator(b *testing.B, g transform.Aggregator, keys int) {
	const batch = 1024
	const ahead = 64 // batches generated per pause of the timer
	db, err := bolt.Open(filepath.Join(b.TempDir(), "state.db"), 0o600, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	cfg := Config{Key: mustPath("$.commodity"), Time: mustPath("$.ts"), Window: Window{Kind: Tumbling, Size: time.Minute},
		Lateness: 10 * time.Second, Late: LateDrop}
	op, err := New(cfg, g, Store{DB: db}, "bench", "stats", testMetrics())
	if err != nil {
		b.Fatal(err)
	}
	c := newBenchCommitter(op, db)
	gen := newPriceGen(keys)
	bufs := make([][]connector.Record, ahead)
	ctx := context.Background()
	var id uint64
	var rows int
	var cpu time.Duration // process CPU time while the timer runs
	b.ReportAllocs()
	cpu -= cpuTime()
	b.ResetTimer()
	for done := 0; done < b.N; {
		b.StopTimer()
		cpu += cpuTime()
		n := 0
		for k := range bufs {
			bufs[k] = gen.batch(bufs[k], min(batch, b.N-done-n))
			n += len(bufs[k])
		}
		cpu -= cpuTime()
		b.StartTimer()
		for _, recs := range bufs {
			if len(recs) == 0 {
				continue
			}
			id++
			res, err := op.Process(ctx, id, recs)
			if err != nil {
				b.Fatal(err)
			}
			rows += len(res.Out)
			c.notify(id)
		}
		done += n
	}
	id++
	res, err := op.Flush(ctx, id)
	if err != nil {
		b.Fatal(err)
	}
	rows += len(res.Out)
	c.notify(id)
	if err := c.close(); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	cpu += cpuTime()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/record")
	b.ReportMetric(float64(rows)/float64(b.N), "rows/record")
}

// cpuTime is the process's CPU time so far (user and system, every thread): on a loaded machine
// it varies less than the elapsed time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchCommitter writes the operator's changes in the background, coalescing, as the engine's
// committer does.
type benchCommitter struct {
	op   *Operator
	db   *bolt.DB
	mu   sync.Mutex
	last uint64
	sig  chan struct{}
	done chan error
}

func newBenchCommitter(op *Operator, db *bolt.DB) *benchCommitter {
	c := &benchCommitter{op: op, db: db, sig: make(chan struct{}, 1), done: make(chan error, 1)}
	go func() {
		var err error
		for range c.sig {
			if err == nil {
				err = c.commit()
			}
		}
		if err == nil {
			err = c.commit()
		}
		c.done <- err
	}()
	return c
}

func (c *benchCommitter) notify(id uint64) {
	c.mu.Lock()
	c.last = id
	c.mu.Unlock()
	select {
	case c.sig <- struct{}{}:
	default:
	}
}

func (c *benchCommitter) commit() error {
	c.mu.Lock()
	through := c.last
	c.mu.Unlock()
	cm := c.op.Committable(through)
	if cm == nil {
		return nil
	}
	if err := c.db.Update(cm.Write); err != nil {
		return err
	}
	cm.Done()
	return nil
}

func (c *benchCommitter) close() error {
	close(c.sig)
	return <-c.done
}

// priceGen makes the benchmark's records: {"seq","commodity","price","ts","venue","unit"}, the
// key uniform over keys.
type priceGen struct {
	rng  *rand.Rand
	keys int
	seq  int64
}

func newPriceGen(keys int) *priceGen {
	return &priceGen{rng: rand.New(rand.NewPCG(42, uint64(keys))), keys: keys}
}

// batch refills recs with n records, their values in one new buffer.
func (g *priceGen) batch(recs []connector.Record, n int) []connector.Record {
	recs = recs[:0]
	buf := make([]byte, 0, n*104)
	for range n {
		g.seq++
		from := len(buf)
		key := g.rng.IntN(g.keys)
		cents := 1000 + g.rng.IntN(9000)
		ts := int64(1767225600000) + g.seq - int64(g.rng.IntN(2000))
		buf = append(buf, `{"seq":`...)
		buf = strconv.AppendInt(buf, g.seq, 10)
		buf = append(buf, `,"commodity":"k`...)
		for d := 100000; d >= 1; d /= 10 {
			buf = append(buf, byte('0'+key/d%10))
		}
		buf = append(buf, `","price":`...)
		buf = strconv.AppendInt(buf, int64(cents/100), 10)
		buf = append(buf, '.', byte('0'+cents/10%10), byte('0'+cents%10))
		buf = append(buf, `,"ts":`...)
		buf = strconv.AppendInt(buf, ts, 10)
		buf = append(buf, `,"venue":"XCME","unit":"USD/oz"}`...)
		recs = append(recs, connector.Record{Value: buf[from:len(buf):len(buf)], Position: connector.Position{Offset: g.seq}})
	}
	return recs
}

// countGuest is the cheapest guest: its state is a count, and it emits {"count":N}.
type countGuest struct{}

func (countGuest) Name() string                    { return "count" }
func (countGuest) Module() (string, int)           { return "count", 1 }
func (countGuest) CanMerge() bool                  { return false }
func (countGuest) Close(ctx context.Context) error { return nil }
func (countGuest) Merge(context.Context, []abi.Slot) ([]transform.StateChange, error) {
	return nil, nil
}

func (countGuest) Step(ctx context.Context, inputs []connector.Record, recs []abi.AggRecord, slots []abi.Slot) (transform.StepResult, error) {
	var out transform.StepResult
	out.Actions = make([]transform.Action, len(inputs)) // Drop
	counts := make([]uint64, len(slots))
	for i, s := range slots {
		if len(s.State) == 8 {
			counts[i] = binary.LittleEndian.Uint64(s.State)
		}
	}
	for _, r := range recs {
		counts[r.Slot]++
	}
	states := make([]byte, 8*len(slots))
	out.States = make([]transform.StateChange, len(slots))
	for i, n := range counts {
		st := states[8*i : 8*i+8 : 8*i+8]
		binary.LittleEndian.PutUint64(st, n)
		out.States[i] = transform.StateChange{Slot: i, State: st}
	}
	return out, nil
}

func (countGuest) Emit(ctx context.Context, slots []abi.Slot) (transform.EmitResult, error) {
	var out transform.EmitResult
	out.Records = make([]transform.SlotRecord, len(slots))
	for i, s := range slots {
		v := strconv.AppendUint([]byte(`{"count":`), binary.LittleEndian.Uint64(s.State), 10)
		out.Records[i] = transform.SlotRecord{Slot: i, Port: abi.DefaultPort, Record: connector.Record{Key: s.Key, Value: append(v, '}')}}
	}
	return out, nil
}

// statsStage is a stats module on a WASM host, with the settings the supervisor gives an
// aggregate stage by default (metered, one instance).
func statsStage(b *testing.B, module string) *wasmhost.Stage {
	ctx := context.Background()
	h, err := wasmhost.New(ctx, wasmhost.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { h.Close(ctx) })
	m, err := h.Load(ctx, module, "")
	if err != nil {
		b.Fatal(err)
	}
	t := pipeline.Transform{Name: "stats", Config: []byte(`{"field":"price"}`), Limits: pipeline.Limits{Instances: 1}}.WithDefaults()
	st, err := h.NewStage(ctx, m, wasmhost.StageConfig{Name: t.Name, Config: t.Config, MemoryBytes: t.Limits.MemoryBytes,
		Timeout: t.Limits.Timeout, Mode: wasmhost.Mode(t.Limits.Mode), Instances: t.Limits.Instances})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close(ctx) })
	return st
}
