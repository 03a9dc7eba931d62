package meter_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/sluicehq/sluice/internal/wasmhost/meter"
)

// tinyFunc is a function of a hand-written test module.
type tinyFunc struct {
	typ    int
	locals []byte
	code   []byte // instructions, with the final end
	export string
}

// tinyModule encodes a module of the given types and functions, with one page of memory exported
// as "memory" when memory is set, and extra raw sections appended.
func tinyModule(types []fnType, funcs []tinyFunc, memory bool, extra ...[]byte) []byte {
	out := []byte("\x00asm\x01\x00\x00\x00")
	section := func(id byte, payload []byte) {
		out = append(out, id)
		out = appendU32(out, uint32(len(payload)))
		out = append(out, payload...)
	}
	p := appendU32(nil, uint32(len(types)))
	for _, t := range types {
		p = append(p, 0x60)
		p = appendU32(p, uint32(len(t.params)))
		p = append(p, t.params...)
		p = appendU32(p, uint32(len(t.results)))
		p = append(p, t.results...)
	}
	section(1, p)
	p = appendU32(nil, uint32(len(funcs)))
	for _, f := range funcs {
		p = appendU32(p, uint32(f.typ))
	}
	section(3, p)
	if memory {
		section(5, []byte{1, 0x00, 1})
	}
	var exps [][]byte
	for i, f := range funcs {
		if f.export != "" {
			exps = append(exps, appendU32(append(appendName(nil, f.export), 0), uint32(i)))
		}
	}
	if memory {
		exps = append(exps, append(appendName(nil, "memory"), 2, 0))
	}
	p = appendU32(nil, uint32(len(exps)))
	for _, e := range exps {
		p = append(p, e...)
	}
	section(7, p)
	p = appendU32(nil, uint32(len(funcs)))
	for _, f := range funcs {
		b := appendU32(nil, uint32(len(f.locals)))
		for _, l := range f.locals {
			b = append(b, 1, l)
		}
		b = append(b, f.code...)
		p = appendU32(p, uint32(len(b)))
		p = append(p, b...)
	}
	section(10, p)
	for _, e := range extra {
		out = append(out, e...)
	}
	return out
}

// instantiate compiles and instantiates a rewritten module in h's plain runtime.
func (h *harness) instantiate(t *testing.T, bin []byte) api.Module {
	t.Helper()
	out, _, err := meter.Rewrite(bin)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	mod, err := h.plain.InstantiateWithConfig(ctx, out, wazero.NewModuleConfig().WithName(""))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mod.Close(ctx) })
	return mod
}

// Guests that never end, with a loop and without one, are stopped by refill; so is a bulk
// instruction, before it runs.
func TestRunawayGuestsCallRefill(t *testing.T) {
	void := fnType{}
	i32i32 := fnType{params: []byte{i32}, results: []byte{i32}}
	tests := []struct {
		name  string
		types []fnType
		funcs []tinyFunc
		arg   []uint64
	}{
		{"loop", []fnType{void}, []tinyFunc{{code: []byte{0x03, 0x40, 0x0c, 0x00, 0x0b, 0x0b}, export: "run"}}, nil},
		{"recursion", []fnType{void}, []tinyFunc{{code: []byte{0x10, 0x00, 0x0b}, export: "run"}}, nil},
		// f(n) = n == 0 ? 0 : f(n-1) + f(n-1): 2^40 calls, no loop
		{"call tree", []fnType{i32i32}, []tinyFunc{{typ: 0, code: []byte{
			0x20, 0x00, 0x45, 0x04, 0x7f, 0x41, 0x00, 0x05,
			0x20, 0x00, 0x41, 0x01, 0x6b, 0x10, 0x00,
			0x20, 0x00, 0x41, 0x01, 0x6b, 0x10, 0x00, 0x6a, 0x0b, 0x0b}, export: "run"}}, []uint64{40}},
	}
	// A call tree without recursion: f_k(x) = f_k+1(x) + f_k+1(x), f_40(x) = x + 1; 2^40 calls.
	var dag []tinyFunc
	for k := 0; k < 40; k++ {
		dag = append(dag, tinyFunc{code: []byte{0x20, 0x00, 0x10, byte(k + 1), 0x20, 0x00, 0x10, byte(k + 1), 0x6a, 0x0b}})
	}
	dag[0].export = "run"
	dag = append(dag, tinyFunc{code: []byte{0x20, 0x00, 0x41, 0x01, 0x6a, 0x0b}})
	tests = append(tests, struct {
		name  string
		types []fnType
		funcs []tinyFunc
		arg   []uint64
	}{"call DAG", []fnType{i32i32}, dag, []uint64{1}})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, 1000)
			mod := h.instantiate(t, tinyModule(tc.types, tc.funcs, false))
			// The counter starts with a few thousand units: the first refill, which stops the
			// call, comes from inside the runaway part.
			mod.ExportedGlobal(meter.FuelExport).(api.MutableGlobal).Set(5000)
			h.deadline.Store(0)
			_, err := mod.ExportedFunction("run").Call(context.Background(), tc.arg...)
			if !errors.Is(err, errStopped) {
				t.Fatalf("err = %v, want the refill's", err)
			}
			if h.refills.Load() != 1 {
				t.Fatalf("%d refills", h.refills.Load())
			}
		})
	}
	t.Run("memory.fill", func(t *testing.T) {
		h := newHarness(t, 1000)
		// memory.fill(0, 0, 65536): 4,096 units, charged before it runs
		mod := h.instantiate(t, tinyModule([]fnType{void}, []tinyFunc{{code: []byte{0x41, 0x00, 0x41, 0x00, 0x41, 0x80, 0x80, 0x04, 0xfc, 0x0b, 0x00, 0x0b}, export: "run"}}, true))
		fuel := mod.ExportedGlobal(meter.FuelExport).(api.MutableGlobal)
		fuel.Set(5000)
		h.deadline.Store(1 << 62)
		if _, err := mod.ExportedFunction("run").Call(context.Background()); err != nil {
			t.Fatal(err)
		}
		if used := 5000 - int64(fuel.Get()); used < 4096 || h.refills.Load() != 0 {
			t.Fatalf("used %d units with %d refills, want at least 4096 and no refill", used, h.refills.Load())
		}
		fuel.Set(4000)
		if _, err := mod.ExportedFunction("run").Call(context.Background()); err != nil || int64(fuel.Get()) >= 0 {
			t.Fatalf("err %v, counter %d; want it below zero", err, int64(fuel.Get()))
		}
		// The function has no check (no loop, no recursion, a small call tree): the host reads the
		// counter when the call returns.
		if h.refills.Load() != 0 {
			t.Fatalf("%d refills", h.refills.Load())
		}
	})
}

// The counter is charged at least one unit per executed instruction and written back to the
// global when the function returns.
func TestFuelAccounting(t *testing.T) {
	h := newHarness(t, 1000)
	// run(n): loop { n = n - 1; br_if 0 (n != 0) }: 9 instructions per iteration
	code := []byte{0x03, 0x40, 0x20, 0x00, 0x41, 0x01, 0x6b, 0x22, 0x00, 0x0d, 0x00, 0x0b, 0x0b}
	mod := h.instantiate(t, tinyModule([]fnType{{params: []byte{i32}}}, []tinyFunc{{code: code, export: "run"}}, false))
	fuel := mod.ExportedGlobal(meter.FuelExport).(api.MutableGlobal)
	for _, n := range []int64{1, 10, 1000} {
		fuel.Set(1 << 40)
		if _, err := mod.ExportedFunction("run").Call(context.Background(), uint64(n)); err != nil {
			t.Fatal(err)
		}
		used := int64(1<<40) - int64(fuel.Get())
		// each iteration: local.get, i32.const, i32.sub, local.tee, br_if (5) and the loop's end
		// counted once per entry of the region; plus the function level: loop, end
		if used < 5*n || used > 6*n+4 {
			t.Fatalf("n=%d: %d units", n, used)
		}
	}
}

// What the rewriter refuses, with the reason.
func TestRefusals(t *testing.T) {
	void := []fnType{{}}
	fn := func(code ...byte) []byte { return tinyModule(void, []tinyFunc{{code: code}}, true) }
	reservedImport := func() []byte {
		b := []byte("\x00asm\x01\x00\x00\x00")
		b = append(b, 1, 4, 1, 0x60, 0, 0)
		imp := appendU32(nil, 1)
		imp = appendName(imp, meter.ImportModule)
		imp = appendName(imp, "refill")
		imp = append(imp, 0, 0)
		b = append(b, 2, byte(len(imp)))
		return append(b, imp...)
	}()
	tests := []struct {
		name string
		bin  []byte
		msg  string
	}{
		{"threads", fn(0x41, 0x00, 0xfe, 0x10, 0x02, 0x00, 0x1a, 0x0b), "unsupported instruction 0xfe (threads)"},
		{"tail call", fn(0x12, 0x00, 0x0b), "(tail calls)"},
		{"exceptions", fn(0x06, 0x40, 0x0b, 0x0b), "(exception handling)"},
		{"relaxed SIMD", fn(0xfd, 0x80, 0x02, 0x0b), "unsupported instruction 0xfd 256 (relaxed SIMD or unknown)"},
		{"non-canonical SIMD", fn(0xfd, 0x8c, 0x00, 0x0b), "SIMD instruction not in its canonical encoding"},
		{"unknown SIMD", fn(0xfd, 0x9a, 0x01, 0x0b), "unsupported instruction 0xfd 154"},
		{"multiple memories", fn(0x41, 0x00, 0x28, 0x40, 0x01, 0x00, 0x1a, 0x0b), "multiple memories are not supported"},
		{"memory.grow without memory", tinyModule(void, []tinyFunc{{code: []byte{0x41, 0x01, 0x40, 0x00, 0x1a, 0x0b}}}, false), "memory.grow without a memory"},
		{"reserved import", reservedImport, `imports from "sluice_meter"`},
		{"reserved export", tinyModule(void, []tinyFunc{{code: []byte{0x0b}, export: meter.FuelExport}}, false), `exports "sluice_meter_fuel"`},
		{"local out of range", fn(0x20, 0x00, 0x1a, 0x0b), "local index 0 out of range"},
		{"trailing bytes", fn(0x0b, 0x01), "bytes after the end of the function"},
		{"overlong LEB", fn(0x41, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00, 0x1a, 0x0b), "malformed s32"},
		{"stray bits", fn(0x41, 0x80, 0x80, 0x80, 0x80, 0x70, 0x1a, 0x0b), "malformed s32: stray bits"},
		{"not wasm", []byte("hello world"), "not a WebAssembly module"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := meter.Rewrite(tc.bin)
			var me *meter.Error
			if !errors.As(err, &me) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err = %v, want an *Error containing %q", err, tc.msg)
			}
		})
	}
}

// Function names survive the renumbering: the generated modules carry a name section.
func TestNamesFollowFunctions(t *testing.T) {
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCloseOnContextDone(false))
	defer rt.Close(ctx)
	for seed := int64(1); seed <= 10; seed++ {
		bin := newModule(seed, 6, true).encode()
		out, _, err := meter.Rewrite(bin)
		if err != nil {
			t.Fatal(err)
		}
		a, err := rt.CompileModule(ctx, bin)
		if err != nil {
			t.Fatal(err)
		}
		b, err := rt.CompileModule(ctx, out)
		if err != nil {
			t.Fatal(err)
		}
		for name, d := range a.ExportedFunctions() {
			if d.Name() == "" || b.ExportedFunctions()[name].Name() != d.Name() {
				t.Fatalf("seed %d: export %s is named %q, was %q", seed, name, b.ExportedFunctions()[name].Name(), d.Name())
			}
		}
		if a.Name() != b.Name() || a.Name() != "generated" {
			t.Fatalf("module name %q, was %q", b.Name(), a.Name())
		}
	}
}
