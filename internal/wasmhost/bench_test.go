package wasmhost_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/wasmhost"
	"github.com/sluicehq/sluice/runtime/transform"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// benchGuest is a module the benchmarks run.
type benchGuest struct {
	name   string
	path   string
	memory int64
}

// benchGuests returns the test guests plus every validate_price module built so far under
// transforms/validate_price (the SDK builds put them there).
func benchGuests(b *testing.B) []benchGuest {
	gs := []benchGuest{{name: "test_c", path: hostileWasm}, {name: "test_go", path: buildGoGuest(b), memory: 64 << 20}}
	var found []string
	root := filepath.Join("..", "..", "transforms", "validate_price")
	_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".wasm") {
			found = append(found, p)
		}
		return nil
	})
	sort.Strings(found)
	for _, p := range found {
		// transforms/validate_price/<language>/validate_price.wasm → validate_price.<language>
		rel, _ := filepath.Rel(root, filepath.Dir(p))
		name := "validate_price." + strings.ReplaceAll(filepath.ToSlash(rel), "/", ".")
		gs = append(gs, benchGuest{name: name, path: p, memory: 64 << 20})
	}
	return gs
}

// priceRecords returns n valid validate_price inputs of about 100 bytes each.
func priceRecords(n int) []connector.Record {
	commodities := []string{"wheat", "corn", "soybeans", "coffee", "sugar", "cocoa", "cotton", "oats"}
	out := make([]connector.Record, n)
	for i := range out {
		v := fmt.Sprintf(`{"commodity":%q,"price":%d.%02d,"ts":"2026-11-22T02:%02d:%02dZ","market":"board-of-trade","unit":"USD/bu"}`,
			commodities[i%len(commodities)], 100+i%900, i%100, (i/60)%60, i%60)
		out[i] = connector.Record{Value: []byte(v), Position: connector.Position{Offset: int64(i)}}
	}
	return out
}

// BenchmarkStage measures records/s through one stage with one instance: ns/op is per record.
func BenchmarkStage(b *testing.B) {
	benchStage(b, 1, []int{1, 64, 1024})
}

// BenchmarkStageParallel is BenchmarkStage with two instances and large batches, which Process
// splits across both (this machine has two cores).
func BenchmarkStageParallel(b *testing.B) {
	benchStage(b, 2, []int{1024, 4096})
}

func benchStage(b *testing.B, instances int, batches []int) {
	recs := priceRecords(4096)
	h, _ := newHost(b) // one host: each module is compiled once for all sub-benchmarks
	for _, g := range benchGuests(b) {
		for _, mode := range []wasmhost.Mode{wasmhost.Metered, wasmhost.Strict, wasmhost.Trusted} {
			for _, bs := range batches {
				b.Run(fmt.Sprintf("guest=%s/mode=%s/batch=%d", g.name, mode, bs), func(b *testing.B) {
					s := newStage(b, h, g.path, wasmhost.StageConfig{Name: "bench", Mode: mode, Instances: instances, MemoryBytes: g.memory, Timeout: time.Minute})
					ctx := context.Background()
					// Reject-free input is the benchmark's premise: check it once.
					res, err := s.Process(ctx, recs[:bs])
					if err != nil {
						b.Fatal(err)
					}
					if n := countAction(res, transform.Pass); n != bs {
						b.Fatalf("%s passed %d of %d valid records: %+v", g.name, n, bs, res.Rejected)
					}
					b.ResetTimer()
					done, off := 0, 0
					for done < b.N {
						n := min(bs, b.N-done)
						if off+n > len(recs) {
							off = 0
						}
						if _, err := s.Process(ctx, recs[off:off+n]); err != nil {
							b.Fatal(err)
						}
						done += n
						off += n
					}
					b.StopTimer()
					b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rec/s")
				})
			}
		}
	}
}

func countAction(r transform.Result, a transform.Action) int {
	n := 0
	for _, x := range r.Actions {
		if x == a {
			n++
		}
	}
	return n
}

// BenchmarkWarmup measures the creation of one ready instance (instantiate, _initialize,
// tf_abi_version, tf_init) with the module already compiled: ns/op is per instance.
func BenchmarkWarmup(b *testing.B) {
	for _, g := range benchGuests(b) {
		b.Run("guest="+g.name, func(b *testing.B) {
			h, _ := newHost(b)
			ctx := context.Background()
			m, err := h.Load(ctx, g.path, "")
			if err != nil {
				b.Fatal(err)
			}
			// The first stage compiles the module as the mode runs it (metered: the rewritten
			// module); that is load time, not warm-up.
			first, err := h.NewStage(ctx, m, wasmhost.StageConfig{Name: "warm", Instances: 1, MemoryBytes: g.memory})
			if err != nil {
				b.Fatal(err)
			}
			_ = first.Close(ctx)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				s, err := h.NewStage(ctx, m, wasmhost.StageConfig{Name: "warm", Instances: 1, MemoryBytes: g.memory})
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				_ = s.Close(ctx)
				b.StartTimer()
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/instance")
		})
	}
}

// BenchmarkLoad measures Load of a module whose compiled code is in the host's cache directory
// from an earlier host, and its first stage in the default mode (the restart case): read, hash,
// compile from cache, probe, then the metered module compiled from cache and one instance.
func BenchmarkLoad(b *testing.B) {
	for _, g := range benchGuests(b) {
		b.Run("guest="+g.name, func(b *testing.B) {
			dir := b.TempDir()
			ctx := context.Background()
			warm, err := wasmhost.New(ctx, wasmhost.Options{CacheDir: dir})
			if err != nil {
				b.Fatal(err)
			}
			firstStage := func(h *wasmhost.Host) {
				m, err := h.Load(ctx, g.path, "")
				if err != nil {
					b.Fatal(err)
				}
				s, err := h.NewStage(ctx, m, wasmhost.StageConfig{Name: "load", Instances: 1, MemoryBytes: g.memory})
				if err != nil {
					b.Fatal(err)
				}
				_ = s.Close(ctx)
			}
			firstStage(warm)
			_ = warm.Close(ctx)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				h, err := wasmhost.New(ctx, wasmhost.Options{CacheDir: dir})
				if err != nil {
					b.Fatal(err)
				}
				firstStage(h)
				b.StopTimer()
				_ = h.Close(ctx)
				b.StartTimer()
			}
		})
	}
}

// BenchmarkGuestLoop measures what interruptibility costs inside guest code: one call running a
// one-million-iteration loop (the "spin" record of the C test guest), in each mode. ns/op is per
// call; ns/iter per loop iteration.
func BenchmarkGuestLoop(b *testing.B) {
	for _, mode := range []wasmhost.Mode{wasmhost.Metered, wasmhost.Strict, wasmhost.Trusted} {
		b.Run("mode="+string(mode), func(b *testing.B) {
			h, _ := newHost(b)
			s := newStage(b, h, hostileWasm, wasmhost.StageConfig{Name: "loop", Mode: mode, Instances: 1, Timeout: time.Minute})
			in := records("spin")
			ctx := context.Background()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := s.Process(ctx, in); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1e6, "ns/iter")
		})
	}
}

// BenchmarkModeRatio compares metered mode (the default) with trusted mode, the ceiling, for each
// validate_price module and batch sizes 1, 64 and 1024, one instance each. The two modes run in
// alternating rounds of the same records and each round is timed in CPU time of the process
// (guest code, host code and garbage collection), so that other load on a shared machine, which
// swings wall-clock rates by 2x, does not decide the ratio; the medians of the rounds are
// reported, with the ratio metered/trusted. Run it with -benchtime 1x: it sets its own length.
func BenchmarkModeRatio(b *testing.B) {
	recs := priceRecords(4096)
	h, _ := newHost(b)
	const rounds = 9
	for _, g := range benchGuests(b) {
		if !strings.HasPrefix(g.name, "validate_price.") {
			continue
		}
		for _, bs := range []int{1, 64, 1024} {
			b.Run(fmt.Sprintf("guest=%s/batch=%d", g.name, bs), func(b *testing.B) {
				ctx := context.Background()
				modes := []wasmhost.Mode{wasmhost.Metered, wasmhost.Trusted}
				stages := make([]*wasmhost.Stage, len(modes))
				for i, mode := range modes {
					stages[i] = newStage(b, h, g.path, wasmhost.StageConfig{Name: "bench", Mode: mode, Instances: 1, MemoryBytes: g.memory, Timeout: time.Minute})
				}
				per := 200_000 // records per round and mode
				if bs == 1 {
					per = 20_000
				}
				if g.name == "validate_price.go" {
					per /= 4
				}
				rates := make([][]float64, len(modes))
				for range rounds {
					for i, s := range stages {
						cpu0 := processCPU()
						for done, off := 0, 0; done < per; done, off = done+bs, off+bs {
							if off+bs > len(recs) {
								off = 0
							}
							if _, err := s.Process(ctx, recs[off:off+bs]); err != nil {
								b.Fatal(err)
							}
						}
						rates[i] = append(rates[i], float64(per)/(processCPU()-cpu0).Seconds())
					}
				}
				med := func(xs []float64) float64 { sort.Float64s(xs); return xs[len(xs)/2] }
				m, t := med(rates[0]), med(rates[1])
				b.ReportMetric(m, "metered_rec/cpu_s")
				b.ReportMetric(t, "trusted_rec/cpu_s")
				b.ReportMetric(m/t, "ratio")
			})
		}
	}
}

// processCPU is the CPU time the process has used, user and system.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
