package meter_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"

	"github.com/sluicehq/sluice/internal/wasmhost/meter"
)

// envModule is the module "env" the generated modules import: h(x) = 3x+1 and the global g = 42.
var envModule = func() []byte {
	b := []byte("\x00asm\x01\x00\x00\x00")
	b = append(b, 1, 6, 1, 0x60, 1, 0x7f, 1, 0x7f) // type (i32) -> i32
	b = append(b, 3, 2, 1, 0)                      // one function
	b = append(b, 6, 6, 1, 0x7f, 0x00, 0x41, 42, 0x0b)
	b = append(b, 7, 9, 2, 1, 'h', 0, 0, 1, 'g', 3, 0)
	body := []byte{0, 0x20, 0, 0x41, 3, 0x6c, 0x41, 1, 0x6a, 0x0b}
	b = append(b, 10, byte(len(body)+2), 1, byte(len(body)))
	return append(b, body...)
}()

// harness runs modules in wazero: originals in an interruptible runtime (so that a generated
// module that runs too long is stopped), rewritten ones in a runtime without interruption
// checks, with a host module meter.ImportModule whose refill grants a few units at a time.
type harness struct {
	strict, plain wazero.Runtime
	refills       atomic.Int64
	grant         int64
	deadline      atomic.Int64 // unix nanos; refill traps after it
}

var errStopped = errors.New("stopped by refill")

func newHarness(t testing.TB, grant int64) *harness {
	t.Helper()
	ctx := context.Background()
	h := &harness{grant: grant}
	h.strict = wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCloseOnContextDone(true))
	h.plain = wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCloseOnContextDone(false))
	t.Cleanup(func() { h.strict.Close(ctx); h.plain.Close(ctx) })
	for _, rt := range []wazero.Runtime{h.strict, h.plain} {
		if _, err := rt.InstantiateWithConfig(ctx, envModule, wazero.NewModuleConfig().WithName("env")); err != nil {
			t.Fatal(err)
		}
	}
	_, err := h.plain.NewHostModuleBuilder(meter.ImportModule).
		NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, m api.Module, stack []uint64) {
		h.refills.Add(1)
		if time.Now().UnixNano() > h.deadline.Load() {
			panic(errStopped)
		}
		if int64(stack[0]) >= 0 {
			panic(fmt.Errorf("refill called with a counter of %d", int64(stack[0])))
		}
		stack[0] = uint64(h.grant)
	}), []api.ValueType{api.ValueTypeI64}, []api.ValueType{api.ValueTypeI64}).Export(meter.RefillName).
		NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, m api.Module, stack []uint64) {
		old, ok := m.Memory().Grow(uint32(stack[0]))
		if !ok {
			stack[0] = uint64(uint32(0xffffffff))
			return
		}
		stack[0] = uint64(old)
	}), []api.ValueType{api.ValueTypeI32}, []api.ValueType{api.ValueTypeI32}).Export(meter.GrowName).
		Instantiate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// outcome is what one call did: its results, or the first line of its error.
type outcome struct {
	results []uint64
	err     string
}

// run instantiates bin and calls every exported function whose name starts with "f", in name
// order, with arguments from seed; it returns the outcomes, then the memory and globals.
func (h *harness) run(t testing.TB, rt wazero.Runtime, bin []byte, seed int64, timeout time.Duration) (outs []outcome, memory []byte, globals []uint64, timedOut bool) {
	t.Helper()
	ctx := context.Background()
	cm, err := rt.CompileModule(ctx, bin)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	defer cm.Close(ctx)
	h.deadline.Store(time.Now().Add(timeout).UnixNano())
	ictx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	mod, err := rt.InstantiateModule(ictx, cm, wazero.NewModuleConfig().WithName(""))
	if err != nil {
		if isTimeout(err) {
			return nil, nil, nil, true
		}
		return []outcome{{err: firstLine(err)}}, nil, nil, false
	}
	defer mod.Close(ctx)
	var names []string
	for name := range cm.ExportedFunctions() {
		if strings.HasPrefix(name, "f") {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	rng := rand.New(rand.NewSource(seed))
	for _, name := range names {
		fn := mod.ExportedFunction(name)
		def := fn.Definition()
		for k := 0; k < 3; k++ {
			args := make([]uint64, len(def.ParamTypes()))
			for i, p := range def.ParamTypes() {
				args[i] = randArg(rng, p)
			}
			cctx, ccancel := context.WithTimeout(ctx, timeout)
			res, err := fn.Call(cctx, args...)
			ccancel()
			if err != nil {
				if isTimeout(err) {
					return nil, nil, nil, true
				}
				outs = append(outs, outcome{err: firstLine(err)})
				// a trap may leave the instance half way: start a fresh one
				mod.Close(ctx)
				if mod, err = rt.InstantiateModule(ctx, cm, wazero.NewModuleConfig().WithName("")); err != nil {
					t.Fatal(err)
				}
				fn = mod.ExportedFunction(name)
				continue
			}
			for i, r := range def.ResultTypes() {
				res[i] = canonical(r, res[i])
			}
			outs = append(outs, outcome{results: res})
		}
	}
	if m := mod.Memory(); m != nil {
		b, _ := m.Read(0, m.Size())
		memory = append([]byte(nil), b...)
	}
	for i := 0; ; i++ {
		g := mod.ExportedGlobal(fmt.Sprintf("g%d", i))
		if g == nil {
			break
		}
		globals = append(globals, canonical(g.Type(), g.Get()))
	}
	return outs, memory, globals, false
}

func isTimeout(err error) bool {
	var ee *sys.ExitError
	return errors.Is(err, errStopped) || (errors.As(err, &ee) && ee.ExitCode() == sys.ExitCodeDeadlineExceeded)
}

func firstLine(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	// "start function[8] failed: ...": the index moves
	if i := strings.Index(s, " failed: "); strings.HasPrefix(s, "start function[") && i > 0 {
		s = "start function failed: " + s[i+len(" failed: "):]
	}
	return s
}

// canonical maps every NaN to one bit pattern: NaN payloads may differ between two compilations.
func canonical(t api.ValueType, v uint64) uint64 {
	switch t {
	case api.ValueTypeF32:
		if f := math.Float32frombits(uint32(v)); f != f {
			return 0x7fc00000
		}
	case api.ValueTypeF64:
		if f := math.Float64frombits(v); f != f {
			return 0x7ff8000000000000
		}
	}
	return v
}

func randArg(rng *rand.Rand, t api.ValueType) uint64 {
	switch t {
	case api.ValueTypeI32:
		return uint64(rng.Uint32() >> uint(rng.Intn(32)))
	case api.ValueTypeF32:
		return uint64(math.Float32bits(float32(rng.NormFloat64() * 1000)))
	case api.ValueTypeF64:
		return math.Float64bits(rng.NormFloat64() * 1e6)
	}
	return rng.Uint64() >> uint(rng.Intn(64))
}

// TestRandomModules generates valid modules, rewrites them, and checks that the rewritten module
// compiles and computes what the original computes: every exported function's results or trap on
// random arguments, then the memory and the globals.
func TestRandomModules(t *testing.T) {
	n := 300
	if testing.Short() || raceEnabled {
		n = 60
	}
	h := newHarness(t, 97)
	var compared, timedOut, calls, light, loops int
	traps := map[string]int{}
	for seed := int64(1); seed <= int64(n); seed++ {
		g := newModule(seed, 2+int(seed%11), seed%3 != 0)
		bin := g.encode()
		out, info, err := meter.Rewrite(bin)
		if err != nil {
			t.Fatalf("seed %d: rewrite: %v", seed, err)
		}
		light += info.Light
		loops += info.Loops
		want, wantMem, wantGlobals, to1 := h.run(t, h.strict, bin, seed, 2*time.Second)
		if to1 {
			timedOut++
			continue
		}
		got, gotMem, gotGlobals, to2 := h.run(t, h.plain, out, seed, 20*time.Second)
		if to2 {
			t.Fatalf("seed %d: the rewritten module ran out of time, the original did not", seed)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("seed %d: outcomes differ:\noriginal  %v\nrewritten %v", seed, want, got)
		}
		if !bytes.Equal(gotMem, wantMem) || fmt.Sprint(gotGlobals) != fmt.Sprint(wantGlobals) {
			t.Fatalf("seed %d: memory or globals differ", seed)
		}
		compared++
		calls += len(want)
		for _, o := range want {
			if o.err != "" {
				traps[o.err]++
			}
		}
	}
	t.Logf("%d modules compared (%d calls, %d light functions, %d loops), %d skipped (the original ran over 2s); %d refills; traps: %v", compared, calls, light, loops, timedOut, h.refills.Load(), traps)
	if compared < n*9/10 {
		t.Fatalf("only %d of %d modules compared", compared, n)
	}
	if h.refills.Load() == 0 {
		t.Fatal("refill was never called")
	}
}

// moduleFiles returns the committed and built modules of the repository.
func moduleFiles(t testing.TB) []string {
	root := filepath.Join("..", "..", "..")
	var out []string
	for _, dir := range []string{"transforms", "internal/wasmhost/testdata", "build/wasm", "examples"} {
		_ = filepath.WalkDir(filepath.Join(root, dir), func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() && strings.HasSuffix(p, ".wasm") {
				out = append(out, p)
			}
			return nil
		})
	}
	if len(out) < 5 {
		t.Fatalf("found %d modules", len(out))
	}
	return out
}

// TestRewriteRealModules rewrites every module of the repository: the result compiles, has the
// original's exports plus the counter, and keeps the function names.
func TestRewriteRealModules(t *testing.T) {
	ctx := context.Background()
	// The compilation cache the other tests use: Go modules take seconds to compile cold.
	cache, err := wazero.NewCompilationCacheWithDir(filepath.Join("..", "..", "..", "build", "wasm-cache"))
	if err != nil {
		t.Fatal(err)
	}
	defer cache.Close(ctx)
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCloseOnContextDone(false).WithCompilationCache(cache))
	defer rt.Close(ctx)
	for _, p := range moduleFiles(t) {
		bin, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		out, info, err := meter.Rewrite(bin)
		took := time.Since(start)
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		if (testing.Short() || raceEnabled) && len(bin) > 1<<20 {
			continue // Go modules: compiling them takes seconds
		}
		orig, err := rt.CompileModule(ctx, bin)
		if err != nil {
			t.Logf("%s: the original does not compile: %v", p, err)
			continue
		}
		rw, err := rt.CompileModule(ctx, out)
		if err != nil {
			t.Errorf("%s: the rewritten module does not compile: %v", p, err)
			continue
		}
		for name, d := range orig.ExportedFunctions() {
			e, ok := rw.ExportedFunctions()[name]
			if !ok || fmt.Sprint(e.ParamTypes(), e.ResultTypes()) != fmt.Sprint(d.ParamTypes(), d.ResultTypes()) || e.Name() != d.Name() {
				t.Errorf("%s: export %s differs", p, name)
			}
		}
		if len(rw.ExportedFunctions()) != len(orig.ExportedFunctions()) {
			t.Errorf("%s: %d exported functions, want %d", p, len(rw.ExportedFunctions()), len(orig.ExportedFunctions()))
		}
		t.Logf("%s: %d bytes -> %d (+%.1f%%), %d functions (%d light), %d loops, rewritten in %s (%.1f ms/MB)", p, info.BytesIn, info.BytesOut,
			100*float64(info.BytesOut-info.BytesIn)/float64(info.BytesIn), info.Functions, info.Light, info.Loops, took.Round(time.Microsecond),
			float64(took.Microseconds())/1e3/(float64(info.BytesIn)/(1<<20)))
	}
}

// BenchmarkRewrite measures the rewrite of the validate_price modules: ms/MB is the load-time cost
// per MB of module.
func BenchmarkRewrite(b *testing.B) {
	for _, lang := range []string{"c", "rust", "assemblyscript", "go"} {
		p := filepath.Join("..", "..", "..", "transforms", "validate_price", lang, "validate_price.wasm")
		bin, err := os.ReadFile(p)
		if err != nil {
			b.Fatal(err)
		}
		b.Run("module=validate_price."+lang, func(b *testing.B) {
			b.SetBytes(int64(len(bin)))
			for b.Loop() {
				if _, _, err := meter.Rewrite(bin); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(b.Elapsed().Seconds()*1e3/float64(b.N)/(float64(len(bin))/(1<<20)), "ms/MB")
		})
	}
}
