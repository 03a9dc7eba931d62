package crosslang_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/sluicehq/sluice/internal/wasmhost"
	"github.com/sluicehq/sluice/runtime/transform"
	"github.com/sluicehq/sluice/sdk/go/abi"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// The aggregate probe modules of sdk/{c,rust,assemblyscript}/testdata/agg_probe.*, built by
// make wasm-guests, and sdk/go/aggregate/testdata/probe, which each test builds (aggProbePaths).
// sdk/c/testdata/agg_probe.c describes their common behaviour; aggModel below is the same
// behaviour in Go, which gives the expectations.
var aggLanguages = []string{"c", "rust", "assemblyscript", "go"}

// aggProbePaths returns the module of each language: the C, Rust and AssemblyScript probes from
// build/wasm/sdktest, and the Go probe compiled into a temporary directory of the test with the
// sdk/go module (as internal/wasmhost's buildSDKGuest builds its Go SDK guest).
func aggProbePaths(t *testing.T) map[string]string {
	t.Helper()
	paths := map[string]string{}
	for _, lang := range aggLanguages {
		if lang == "go" {
			continue
		}
		p := filepath.Join("..", "..", "..", "build", "wasm", "sdktest", "agg_probe_"+lang+".wasm")
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s: %v: run make wasm-guests, which builds the aggregate probes", lang, err)
		}
		paths[lang] = p
	}
	out := filepath.Join(t.TempDir(), "agg_probe_go.wasm")
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-trimpath", "-o", out, ".")
	cmd.Dir = filepath.Join("..", "..", "..", "sdk", "go", "aggregate", "testdata", "probe")
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go: build %s: %v\n%s", cmd.Dir, err, b)
	}
	paths["go"] = out
	return paths
}

// aggGuest is one instance of an aggregate module, driven through the ABI exports directly with
// wazero, without the host package, so that the SDKs' result frames themselves are compared
// (TestAggregateSDKsThroughHost runs the probes in the host).
type aggGuest struct {
	lang string
	rt   wazero.Runtime
	mod  api.Module
	buf  uint32 // the tf_reserve buffer
	cap  int
}

func newAggGuest(t *testing.T, ctx context.Context, lang, path string) *aggGuest {
	t.Helper()
	bin, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%s: %v", lang, err)
	}
	rt := wazero.NewRuntime(ctx)
	t.Cleanup(func() { rt.Close(ctx) })
	wasi_snapshot_preview1.MustInstantiate(ctx, rt)
	if _, err := rt.NewHostModuleBuilder("tf_host_v1").
		NewFunctionBuilder().WithFunc(func(context.Context, api.Module, uint32, uint32, uint32) {}).Export("log").
		NewFunctionBuilder().WithFunc(func(context.Context, api.Module, uint32, uint32, int64) {}).Export("metric_add").
		Instantiate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.NewHostModuleBuilder("env").
		NewFunctionBuilder().WithFunc(func(context.Context, api.Module, uint32, uint32, uint32, uint32) {}).Export("abort").
		Instantiate(ctx); err != nil {
		t.Fatal(err)
	}
	mod, err := rt.InstantiateWithConfig(ctx, bin, wazero.NewModuleConfig().WithName("agg_probe").WithStartFunctions())
	if err != nil {
		t.Fatalf("%s: instantiate: %v", lang, err)
	}
	if f := mod.ExportedFunction("_initialize"); f != nil {
		if _, err := f.Call(ctx); err != nil {
			t.Fatalf("%s: _initialize: %v", lang, err)
		}
	}
	return &aggGuest{lang: lang, rt: rt, mod: mod}
}

func (g *aggGuest) call(ctx context.Context, name string, args ...uint64) (uint64, error) {
	f := g.mod.ExportedFunction(name)
	if f == nil {
		return 0, fmt.Errorf("no export %s", name)
	}
	r, err := f.Call(ctx, args...)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	return r[0], nil
}

func (g *aggGuest) read(ptr, n uint32) []byte {
	b, ok := g.mod.Memory().Read(ptr, n)
	if !ok {
		panic(fmt.Sprintf("%s: [%d,+%d) outside memory", g.lang, ptr, n))
	}
	return append([]byte(nil), b...)
}

// write puts b at the tf_reserve buffer, reserving more room when needed.
func (g *aggGuest) write(ctx context.Context, b []byte) error {
	if len(b) > g.cap || g.buf == 0 {
		p, err := g.call(ctx, "tf_reserve", uint64(max(len(b), 1)))
		if err != nil {
			return err
		}
		if uint32(p) == 0 {
			return fmt.Errorf("tf_reserve(%d) returned 0", len(b))
		}
		g.buf, g.cap = uint32(p), max(len(b), 1)
	}
	if !g.mod.Memory().Write(g.buf, b) {
		return fmt.Errorf("frame outside memory")
	}
	return nil
}

// guestError is a negative result of an export, with the module's tf_last_error.
type guestError struct {
	Code int32
	Msg  string
}

func (e *guestError) Error() string { return fmt.Sprintf("guest error %d: %s", e.Code, e.Msg) }

// frameCall writes frame and calls the export; it returns a copy of the result frame.
func (g *aggGuest) frameCall(ctx context.Context, name string, frame []byte) ([]byte, error) {
	if err := g.write(ctx, frame); err != nil {
		return nil, err
	}
	r, err := g.call(ctx, name, uint64(len(frame)))
	if err != nil {
		return nil, err
	}
	if r>>32 == 0xFFFFFFFF {
		e := &guestError{Code: int32(uint32(r))}
		if m, err := g.call(ctx, "tf_last_error"); err == nil {
			e.Msg = string(g.read(uint32(m>>32), uint32(m)))
		}
		return nil, e
	}
	return g.read(uint32(r>>32), uint32(r)), nil
}

// aggOutput is an OutDesc as the test compares it: copies, not views.
type aggOutput struct {
	Slot           int // emit results: the slot the record is for
	Port           uint32
	TimeMs         int64
	Key            string
	KeyInherit     bool
	KeyNull        bool
	Value          string
	ValueInherit   bool
	Headers        string
	HeadersInherit bool
}

func toAggOutput(slot int, o *abi.Output) aggOutput {
	return aggOutput{Slot: slot, Port: o.Port, TimeMs: o.TimeMs, Key: string(o.Key), KeyInherit: o.KeyInherit,
		KeyNull: o.KeyNull, Value: string(o.Value), ValueInherit: o.ValueInherit, Headers: string(o.Headers),
		HeadersInherit: o.HeadersInherit}
}

type aggDisposition struct {
	Action  abi.Action
	Code    uint16
	Reason  string
	Outputs []aggOutput
}

type aggState struct {
	Slot   uint32
	Delete bool
	State  []byte
}

// aggResult is a decoded step, emit or merge result.
type aggResult struct {
	Dispositions []aggDisposition // step
	Emitted      []aggOutput      // emit
	States       []aggState
}

const aggPorts = 2 // main, alerts

func decodeStates(t *testing.T, lang string, res []byte, nSlots int) []aggState {
	t.Helper()
	var states []aggState
	if err := abi.DecodeStates(res, nSlots, abi.DefaultMaxState, func(s abi.StateOut) {
		states = append(states, aggState{Slot: s.Slot, Delete: s.Delete, State: append([]byte(nil), s.State...)})
	}); err != nil {
		t.Fatalf("%s: %v", lang, err)
	}
	return states
}

func (g *aggGuest) step(t *testing.T, ctx context.Context, recs []abi.AggRecord, slots []abi.Slot) aggResult {
	t.Helper()
	res, err := g.frameCall(ctx, "tf_agg_step", aggFrame(abi.KindStep, recs, slots))
	if err != nil {
		t.Fatalf("%s: step: %v", g.lang, err)
	}
	var r aggResult
	r.Dispositions = make([]aggDisposition, len(recs))
	actions, err := abi.DecodeResult(res, len(recs), aggPorts, nil, func(i int, d *abi.Disposition) {
		ad := aggDisposition{Action: d.Action, Code: d.Code, Reason: string(d.Reason)}
		for j := range d.Outputs {
			ad.Outputs = append(ad.Outputs, toAggOutput(-1, &d.Outputs[j]))
		}
		r.Dispositions[i] = ad
	})
	if err != nil {
		t.Fatalf("%s: step: %v", g.lang, err)
	}
	for i, a := range actions {
		r.Dispositions[i].Action = a
	}
	r.States = decodeStates(t, g.lang, res, len(slots))
	return r
}

func (g *aggGuest) emit(t *testing.T, ctx context.Context, slots []abi.Slot) aggResult {
	t.Helper()
	res, err := g.frameCall(ctx, "tf_agg_emit", aggFrame(abi.KindEmit, nil, slots))
	if err != nil {
		t.Fatalf("%s: emit: %v", g.lang, err)
	}
	var r aggResult
	if err := abi.DecodeEmitResult(res, len(slots), aggPorts, abi.MaxResultBytes, func(slot int, o *abi.Output) {
		out := toAggOutput(slot, o)
		// In an emit result, hdr_len 0xFFFFFFFF means no headers, as 0 does (ABI.md 13.3): the
		// Go SDK writes the former, the C, Rust and AssemblyScript SDKs the latter.
		out.HeadersInherit = false
		r.Emitted = append(r.Emitted, out)
	}); err != nil {
		t.Fatalf("%s: emit: %v", g.lang, err)
	}
	r.States = decodeStates(t, g.lang, res, len(slots))
	return r
}

func (g *aggGuest) merge(t *testing.T, ctx context.Context, slots []abi.Slot) aggResult {
	t.Helper()
	res, err := g.frameCall(ctx, "tf_agg_merge", aggFrame(abi.KindMerge, nil, slots))
	if err != nil {
		t.Fatalf("%s: merge: %v", g.lang, err)
	}
	if _, err := abi.DecodeResult(res, 0, aggPorts, nil, func(int, *abi.Disposition) {}); err != nil {
		t.Fatalf("%s: merge: %v", g.lang, err)
	}
	if n := binary.LittleEndian.Uint32(res[16:]); n != 0 {
		t.Fatalf("%s: merge result with n_out %d, want 0", g.lang, n)
	}
	return aggResult{States: decodeStates(t, g.lang, res, len(slots))}
}

func aggFrame(kind uint32, recs []abi.AggRecord, slots []abi.Slot) []byte {
	b := make([]byte, abi.AggFrameSize(recs, slots))
	return b[:abi.PutAggFrame(b, kind, recs, slots)]
}

// aggStateBytes is the probes' state: little-endian {u64 count, f64 sum}.
func aggStateBytes(count uint64, sum float64) []byte {
	b := binary.LittleEndian.AppendUint64(nil, count)
	return binary.LittleEndian.AppendUint64(b, math.Float64bits(sum))
}

func aggParseState(t *testing.T, b []byte) (uint64, float64) {
	t.Helper()
	switch len(b) {
	case 0:
		return 0, 0
	case 16:
		return binary.LittleEndian.Uint64(b), math.Float64frombits(binary.LittleEndian.Uint64(b[8:]))
	}
	t.Fatalf("state of %d bytes", len(b))
	return 0, 0
}

// aggModel is the probes' behaviour (sdk/c/testdata/agg_probe.c) in Go.
type aggModel struct{ t *testing.T }

// number is the record's "n" when it is a number: its value and its text.
func (m aggModel) number(value []byte) (float64, string, bool) {
	var obj map[string]json.RawMessage
	if json.Unmarshal(value, &obj) != nil {
		return 0, "", false
	}
	raw, ok := obj["n"]
	if !ok || len(raw) == 0 || !(raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9') {
		return 0, "", false
	}
	x, err := strconv.ParseFloat(string(raw), 64)
	if err != nil {
		m.t.Fatalf("model: n %s: %v", raw, err)
	}
	return x, string(raw), true
}

func (m aggModel) step(recs []abi.AggRecord, slots []abi.Slot) aggResult {
	cur := make([][]byte, len(slots))
	changed := make([]bool, len(slots))
	for i := range slots {
		cur[i] = slots[i].State
	}
	var r aggResult
	for _, rec := range recs {
		x, text, ok := m.number(rec.Value)
		if !ok {
			r.Dispositions = append(r.Dispositions, aggDisposition{Action: abi.Reject, Code: abi.CodeSchema,
				Reason: "n: missing or not a number"})
			continue
		}
		c, s := aggParseState(m.t, cur[rec.Slot])
		cur[rec.Slot], changed[rec.Slot] = aggStateBytes(c+1, s+x), true
		if x < 0 {
			in := aggOutput{Slot: -1, TimeMs: abi.NoTimestamp, KeyInherit: true, ValueInherit: true, HeadersInherit: true}
			alert := aggOutput{Slot: -1, Port: 1, TimeMs: abi.NoTimestamp, KeyInherit: true, HeadersInherit: true,
				Value: `{"neg":` + text + `}`}
			r.Dispositions = append(r.Dispositions, aggDisposition{Action: abi.Emit, Outputs: []aggOutput{in, alert}})
			continue
		}
		r.Dispositions = append(r.Dispositions, aggDisposition{Action: abi.Drop})
	}
	for i := range slots {
		if changed[i] {
			r.States = append(r.States, aggState{Slot: uint32(i), State: cur[i]})
		}
	}
	return r
}

func (m aggModel) emit(slots []abi.Slot) aggResult {
	var r aggResult
	for i, s := range slots {
		c, sum := aggParseState(m.t, s.State)
		key := "null"
		if !s.KeyNull {
			key = `"`
			for _, b := range s.Key {
				switch {
				case b == '"' || b == '\\':
					key += `\` + string(rune(b))
				case b < 0x20:
					key += fmt.Sprintf(`\u%04x`, b)
				default:
					key += string(rune(b))
				}
			}
			key += `"`
		}
		v := fmt.Sprintf(`{"key":%s,"start":%d,"end":%d,"count":%d,"sum":%s}`, key, s.Start, s.End, c, aggSumText(sum))
		r.Emitted = append(r.Emitted, aggOutput{Slot: i, TimeMs: abi.NoTimestamp, KeyInherit: true, Value: v})
	}
	return r
}

func (m aggModel) merge(slots []abi.Slot) aggResult {
	var r aggResult
	for i, s := range slots {
		c1, s1 := aggParseState(m.t, s.State)
		c2, s2 := aggParseState(m.t, s.Other)
		r.States = append(r.States, aggState{Slot: uint32(i), State: aggStateBytes(c1+c2, s1+s2)})
	}
	return r
}

// aggSumText writes a sum as the probes do (put_sum in agg_probe.c); the explicit conversions
// keep each operation rounded on its own, as in WebAssembly.
func aggSumText(x float64) string {
	if !(x > -1e18 && x < 1e18) {
		return "null"
	}
	var b []byte
	if x < 0 {
		b, x = append(b, '-'), -x
	}
	ip := uint64(x)
	f := float64(x - float64(ip))
	b = strconv.AppendUint(b, ip, 10)
	if f > 0 {
		b = append(b, '.')
		for k := 0; k < 17 && f > 0; k++ {
			f = float64(f * 10)
			d := int32(f)
			f = float64(f - float64(d))
			b = append(b, byte('0'+d))
		}
	}
	return string(b)
}

const aggMinute = 60_000

func aggRec(slot uint32, seq uint64, value string) abi.AggRecord {
	// 40 s + seq ms lies in both windows of the hopping slots below, [0, 60 s) and [30 s, 90 s).
	return abi.AggRecord{Slot: slot, Seq: seq, TimeMs: 40_000 + int64(seq), Key: []byte("k"), Value: []byte(value)}
}

// aggStepFrame is the step of the aggregation tests: five slots (new ones, existing ones, one
// only a rejected record reaches), several records per slot, hopping-window copies sharing a seq,
// rejects and negative numbers.
func aggStepFrame() ([]abi.Slot, []abi.AggRecord) {
	const minute = aggMinute
	stepSlots := []abi.Slot{
		{Start: 0, End: minute, Key: []byte("corn")},                                                // new
		{Start: minute / 2, End: minute + minute/2, Key: []byte("corn")},                            // new, the hopping copy
		{Start: 0, End: minute, Key: []byte("wheat"), State: aggStateBytes(2, 10.5)},                // existing
		{Start: 0, End: minute, Key: []byte("soy")},                                                 // new, only a rejected record
		{Start: abi.NoWindowStart, End: abi.NoWindowEnd, KeyNull: true, State: aggStateBytes(1, 1)}, // only a rejected record
	}
	stepRecs := []abi.AggRecord{
		aggRec(0, 0, `{"n":1.5}`), aggRec(1, 0, `{"n":1.5}`),
		aggRec(2, 1, `{"n":2}`),
		aggRec(0, 2, `{"n":-0.25,"note":"dip"}`), aggRec(1, 2, `{"n":-0.25,"note":"dip"}`),
		aggRec(3, 3, `{"x":1}`),
		aggRec(2, 4, `{"n":"7"}`),
		aggRec(2, 5, `{"n":4.25}`),
		aggRec(4, 6, `not json`),
		aggRec(0, 7, `{"other":"x","n":3}`),
		aggRec(2, 8, `{"n":-1e2}`),
		aggRec(4, 9, `{"n":null}`),
	}
	return stepSlots, stepRecs
}

// TestAggregateSDKs runs the aggregate probe of each SDK (C, Rust, AssemblyScript, Go) on the same
// aggregation frames: a step with several slots and several records per slot (hopping-window
// copies sharing a seq, a new slot, rejects, negative numbers emitted with value inheritance),
// an emit (final and early, with and without windows, null and escaped keys), a merge, and the
// step again on the same instance. The decoded results, state bytes included, must be the same
// in the four languages and match aggModel.
func TestAggregateSDKs(t *testing.T) {
	ctx := context.Background()
	m := aggModel{t: t}
	const minute = aggMinute

	stepSlots, stepRecs := aggStepFrame()
	wantStep := m.step(stepRecs, stepSlots)

	// The sanity of the expectations themselves.
	if len(wantStep.States) != 3 || !reflect.DeepEqual(wantStep.States[2], aggState{Slot: 2, State: aggStateBytes(5, -83.25)}) ||
		!reflect.DeepEqual(wantStep.States[0], aggState{Slot: 0, State: aggStateBytes(3, 4.25)}) {
		t.Fatalf("model step states %+v", wantStep.States)
	}

	paths := aggProbePaths(t)
	results := map[string][]aggResult{}
	for _, lang := range aggLanguages {
		g := newAggGuest(t, ctx, lang, paths[lang])

		v, err := g.call(ctx, "tf_abi_version")
		if err != nil || uint32(v) != abi.VersionAggregate {
			t.Fatalf("%s: tf_abi_version = %#x, %v; want %#x", lang, uint32(v), err, abi.VersionAggregate)
		}
		pl, err := g.call(ctx, "tf_meta")
		if err != nil {
			t.Fatal(err)
		}
		var meta struct {
			Name         string   `json:"name"`
			ABI          string   `json:"abi"`
			Kinds        []string `json:"kinds"`
			Ports        []string `json:"ports"`
			StateVersion *int     `json:"state_version"`
		}
		if err := json.Unmarshal(g.read(uint32(pl>>32), uint32(pl)), &meta); err != nil {
			t.Fatalf("%s: meta: %v", lang, err)
		}
		if meta.Name != "agg_probe" || meta.ABI != "1.1" || !reflect.DeepEqual(meta.Kinds, []string{abi.KindAggregate}) ||
			!reflect.DeepEqual(meta.Ports, []string{"main", "alerts"}) || meta.StateVersion == nil || *meta.StateVersion != 1 {
			t.Fatalf("%s: meta %+v", lang, meta)
		}
		for _, name := range []string{"tf_agg_step", "tf_agg_emit", "tf_agg_merge", "tf_process", "tf_last_error"} {
			if g.mod.ExportedFunction(name) == nil {
				t.Fatalf("%s: no export %s", lang, name)
			}
		}
		if err := g.write(ctx, []byte("{}")); err != nil {
			t.Fatal(err)
		}
		if rc, err := g.call(ctx, "tf_init", 2); err != nil || int32(rc) != 0 {
			t.Fatalf("%s: tf_init = %d, %v", lang, int32(rc), err)
		}

		// tf_process refuses records (-2), and each export refuses a frame of another kind.
		plain := make([]byte, abi.DataOffset(1))
		abi.PutFrameHeader(plain, 1, len(plain))
		abi.PutDesc(plain[abi.InHeaderSize:], &abi.Desc{TimeMs: abi.NoTimestamp, KeyOff: uint32(len(plain)), ValOff: uint32(len(plain))})
		var ge *guestError
		if _, err := g.frameCall(ctx, "tf_process", plain); !asGuestError(err, &ge) || ge.Code != abi.ErrUnsupported {
			t.Errorf("%s: tf_process = %v, want guest error -2", lang, err)
		}
		if _, err := g.frameCall(ctx, "tf_agg_emit", aggFrame(abi.KindStep, stepRecs, stepSlots)); !asGuestError(err, &ge) || ge.Code != abi.ErrUnsupported {
			t.Errorf("%s: tf_agg_emit on a step frame = %v, want guest error -2", lang, err)
		}

		var rs []aggResult
		step := g.step(t, ctx, stepRecs, stepSlots)
		rs = append(rs, step)

		// Emit from the states the step returned: slot 0 closes, slot 2 gets an early update,
		// then a slot without a window and a null key, one with a key to escape, a new one.
		stateOf := func(slot uint32) []byte {
			for _, s := range step.States {
				if s.Slot == slot {
					return s.State
				}
			}
			t.Fatalf("%s: no state for slot %d", lang, slot)
			return nil
		}
		emitSlots := []abi.Slot{
			{Start: 0, End: minute, Key: []byte("corn"), State: stateOf(0), Final: true},
			{Start: 0, End: minute, Key: []byte("wheat"), State: stateOf(2)},
			{Start: abi.NoWindowStart, End: abi.NoWindowEnd, KeyNull: true, State: aggStateBytes(1, 1), Final: true},
			{Start: -minute, End: 0, Key: []byte("a\"b\\c\x01"), State: aggStateBytes(7, 1e-3), Final: true},
			{Start: minute, End: 2 * minute, Key: []byte("barley"), State: aggStateBytes(4, -2.5e17), Final: true},
			{Start: minute, End: 2 * minute, Key: []byte{}, State: aggStateBytes(1, 3e18), Final: true},
		}
		emit := g.emit(t, ctx, emitSlots)
		rs = append(rs, emit)
		if want := m.emit(emitSlots); !reflect.DeepEqual(emit, want) {
			t.Errorf("%s: emit\n got %+v\nwant %+v", lang, emit, want)
		}

		mergeSlots := []abi.Slot{
			{Start: 0, End: 5 * minute, Key: []byte("corn"), State: stateOf(0), Other: stateOf(2)},
			{Start: 0, End: 5 * minute, Key: []byte("rye"), State: aggStateBytes(1, 0.5), Other: aggStateBytes(2, 0.25)},
		}
		merge := g.merge(t, ctx, mergeSlots)
		rs = append(rs, merge)
		if want := m.merge(mergeSlots); !reflect.DeepEqual(merge, want) {
			t.Errorf("%s: merge\n got %+v\nwant %+v", lang, merge, want)
		}

		// The same step again on the same instance (the SDKs reuse their slot buffers), then a
		// step from the states it returned.
		rs = append(rs, g.step(t, ctx, stepRecs, stepSlots))
		next := append([]abi.Slot(nil), stepSlots...)
		for _, s := range step.States {
			next[s.Slot].State = s.State
		}
		nextRecs := []abi.AggRecord{aggRec(1, 0, `{"n":0.125}`), aggRec(4, 1, `{"n":-0}`), aggRec(1, 2, `{"n":1}`)}
		rs = append(rs, g.step(t, ctx, nextRecs, next))

		for i, want := range []aggResult{wantStep, m.emit(emitSlots), m.merge(mergeSlots), wantStep, m.step(nextRecs, next)} {
			if !reflect.DeepEqual(rs[i], want) {
				t.Errorf("%s: result %d\n got %+v\nwant %+v", lang, i, rs[i], want)
			}
		}
		results[lang] = rs
	}
	for _, lang := range aggLanguages[1:] {
		if !reflect.DeepEqual(results[lang], results[aggLanguages[0]]) {
			t.Errorf("%s and %s differ:\n%+v\n%+v", lang, aggLanguages[0], results[lang], results[aggLanguages[0]])
		}
	}
}

// TestAggregateSDKsGenerated runs generated step, emit and merge frames through one instance of
// each probe: up to 300 slots and 2,000 records a frame, frames growing and shrinking (the SDKs
// keep and reuse per-slot buffers), numbers in many notations, existing and new states. Every
// result must match aggModel.
func TestAggregateSDKsGenerated(t *testing.T) {
	ctx := context.Background()
	m := aggModel{t: t}
	values := []string{`{"n":0}`, `{"n":-0}`, `{"n":12}`, `{"n":-7}`, `{"n":0.1}`, `{"n":-2.5e-3}`, `{"n":1E3}`,
		`{"n":-123456789.125}`, `{"n":1e308}`, `{"a":[1,{"n":2}],"n":5}`, `{"n":"5"}`, `{"m":1}`, `[1]`, `{"n":`,
		`{"n":true}`, ` { "n" : -4.5 } `, `{"n":9007199254740993}`, `{"n\u0000":1,"n":2}`, ``}
	paths := aggProbePaths(t)
	for _, lang := range aggLanguages {
		g := newAggGuest(t, ctx, lang, paths[lang])
		if err := g.write(ctx, []byte("{}")); err != nil {
			t.Fatal(err)
		}
		if rc, err := g.call(ctx, "tf_init", 2); err != nil || int32(rc) != 0 {
			t.Fatalf("%s: tf_init = %d, %v", lang, int32(rc), err)
		}
		rng := rand.New(rand.NewSource(1))
		for round := 0; round < 40; round++ {
			slots := make([]abi.Slot, 1+rng.Intn([]int{3, 40, 300}[round%3]))
			for i := range slots {
				s := &slots[i]
				s.Start = int64(rng.Intn(100)) * aggMinute
				s.End = s.Start + aggMinute
				s.Key = []byte(strconv.Itoa(rng.Intn(1000)))
				s.KeyNull = rng.Intn(20) == 0
				if rng.Intn(2) == 0 {
					s.State = aggStateBytes(uint64(rng.Intn(1000)), float64(rng.Intn(2000)-1000)/8)
				}
				s.Other = aggStateBytes(uint64(rng.Intn(10)), float64(rng.Intn(100))/4)
				s.Final = rng.Intn(2) == 0
			}
			var recs []abi.AggRecord
			for seq, n := 0, 1+rng.Intn(2000); len(recs) < n; seq++ {
				v := values[rng.Intn(len(values))]
				for c := 1 + rng.Intn(2); c > 0; c-- { // one or two copies
					recs = append(recs, aggRec(uint32(rng.Intn(len(slots))), uint64(seq), v))
				}
			}
			if got, want := g.step(t, ctx, recs, slots), m.step(recs, slots); !reflect.DeepEqual(got, want) {
				t.Fatalf("%s: round %d: step\n got %+v\nwant %+v", lang, round, got, want)
			}
			for i := range slots {
				if len(slots[i].State) == 0 {
					slots[i].State = aggStateBytes(0, 0) // emit and merge frames carry existing slots
				}
			}
			if got, want := g.emit(t, ctx, slots), m.emit(slots); !reflect.DeepEqual(got, want) {
				t.Fatalf("%s: round %d: emit\n got %+v\nwant %+v", lang, round, got, want)
			}
			if got, want := g.merge(t, ctx, slots), m.merge(slots); !reflect.DeepEqual(got, want) {
				t.Fatalf("%s: round %d: merge\n got %+v\nwant %+v", lang, round, got, want)
			}
		}
	}
}

// TestAggregateSDKsThroughHost runs the same step, emit and merge through the WASM host
// (internal/wasmhost), which checks every result frame and combines the hopping copies of an
// input: the four probes must be accepted, agree, and give what aggModel expects.
func TestAggregateSDKsThroughHost(t *testing.T) {
	ctx := context.Background()
	m := aggModel{t: t}
	h, err := wasmhost.New(ctx, wasmhost.Options{CacheDir: filepath.Join("..", "..", "..", "build", "wasm-cache")})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(ctx)
	slots, recs := aggStepFrame()
	inputs := make([]connector.Record, int(recs[len(recs)-1].Seq)+1)
	for _, r := range recs {
		inputs[r.Seq] = connector.Record{Key: r.Key, Value: r.Value, Time: time.UnixMilli(r.TimeMs).UTC()}
	}
	emitSlots := []abi.Slot{
		{Start: 0, End: aggMinute, Key: []byte("corn"), State: aggStateBytes(3, 4.25), Final: true},
		{Start: 0, End: aggMinute, KeyNull: true, State: aggStateBytes(2, -0.5)},
	}
	mergeSlots := []abi.Slot{{Start: 0, End: 5 * aggMinute, Key: []byte("rye"), State: aggStateBytes(1, 0.5), Other: aggStateBytes(2, 0.25)}}

	type outcome struct {
		Step  transform.StepResult
		Emit  transform.EmitResult
		Merge []transform.StateChange
	}
	results := map[string]outcome{}
	paths := aggProbePaths(t)
	for _, lang := range aggLanguages {
		mod, err := h.Load(ctx, paths[lang], "")
		if err != nil {
			t.Fatalf("%s: %v", lang, err)
		}
		if meta := mod.Meta(); !meta.IsAggregate() || meta.ABI != "1.1" || meta.StateVersion != 1 {
			t.Fatalf("%s: meta %+v", lang, meta)
		}
		st, err := h.NewStage(ctx, mod, wasmhost.StageConfig{Name: "agg", Instances: 1})
		if err != nil {
			t.Fatalf("%s: %v", lang, err)
		}
		if name, v := st.Module(); name != "agg_probe" || v != 1 || !st.CanMerge() {
			t.Fatalf("%s: module %s, state version %d, can merge %v", lang, name, v, st.CanMerge())
		}
		var o outcome
		if o.Step, err = st.Step(ctx, inputs, recs, slots); err != nil {
			t.Fatalf("%s: step: %v", lang, err)
		}
		if o.Emit, err = st.Emit(ctx, emitSlots); err != nil {
			t.Fatalf("%s: emit: %v", lang, err)
		}
		if o.Merge, err = st.Merge(ctx, mergeSlots); err != nil {
			t.Fatalf("%s: merge: %v", lang, err)
		}
		if s := st.Stats(); s.Traps+s.GuestErrors+s.InvalidResults+s.Poison != 0 {
			t.Fatalf("%s: the host had to step in: %+v", lang, s)
		}
		st.Close(ctx)
		results[lang] = o
	}

	// The host's view of the model's results: an input is rejected if a copy is, emits the
	// records of every copy that emits, else is dropped (ABI.md 13.3).
	want := m.step(recs, slots)
	actions := make([]transform.Action, len(inputs))
	var emitted []transform.Emitted
	var rejected []transform.Rejected
	for i := 0; i < len(recs); {
		seq := int(recs[i].Seq)
		j, rejectedAt := i, -1
		for ; j < len(recs) && int(recs[j].Seq) == seq; j++ {
			if want.Dispositions[j].Action == abi.Reject && rejectedAt < 0 {
				rejectedAt = j
			}
		}
		actions[seq] = transform.Drop
		if rejectedAt >= 0 {
			actions[seq] = transform.Reject
			rejected = append(rejected, transform.Rejected{Input: seq, Code: abi.CodeSchema, Reason: want.Dispositions[rejectedAt].Reason})
		}
		for k := i; k < j && rejectedAt < 0; k++ {
			for _, out := range want.Dispositions[k].Outputs {
				actions[seq] = transform.Emit
				r := inputs[seq]
				if !out.ValueInherit {
					r.Value = []byte(out.Value)
				}
				emitted = append(emitted, transform.Emitted{Input: seq, Port: []string{"main", "alerts"}[out.Port], Record: r})
			}
		}
		i = j
	}
	var wantStates []transform.StateChange
	for _, s := range want.States {
		wantStates = append(wantStates, transform.StateChange{Slot: int(s.Slot), State: s.State})
	}
	var wantRecords []transform.SlotRecord
	for _, e := range m.emit(emitSlots).Emitted {
		sl := emitSlots[e.Slot]
		r := connector.Record{Value: []byte(e.Value), Time: time.UnixMilli(sl.End - 1).UTC()}
		if !sl.KeyNull {
			r.Key = sl.Key
		}
		wantRecords = append(wantRecords, transform.SlotRecord{Slot: e.Slot, Port: "main", Record: r})
	}
	wantMerge := []transform.StateChange{{Slot: 0, State: aggStateBytes(3, 0.75)}}
	for _, lang := range aggLanguages {
		o := results[lang]
		if !reflect.DeepEqual(o.Step.Actions, actions) {
			t.Errorf("%s: step actions %v, want %v", lang, o.Step.Actions, actions)
		}
		if !reflect.DeepEqual(o.Step.Rejected, rejected) {
			t.Errorf("%s: step rejected %+v, want %+v", lang, o.Step.Rejected, rejected)
		}
		if len(o.Step.Emitted) != len(emitted) {
			t.Errorf("%s: step emitted %d records, want %d", lang, len(o.Step.Emitted), len(emitted))
		} else {
			for i, e := range emitted {
				g := o.Step.Emitted[i]
				if g.Input != e.Input || g.Port != e.Port || string(g.Record.Key) != string(e.Record.Key) ||
					string(g.Record.Value) != string(e.Record.Value) || !g.Record.Time.Equal(e.Record.Time) {
					t.Errorf("%s: step emitted[%d] = %+v, want %+v", lang, i, g, e)
				}
			}
		}
		if !reflect.DeepEqual(o.Step.States, wantStates) {
			t.Errorf("%s: step states %+v, want %+v", lang, o.Step.States, wantStates)
		}
		if len(o.Emit.Records) != len(wantRecords) || len(o.Emit.States)+len(o.Emit.Failed) != 0 {
			t.Errorf("%s: emit %+v, want the records %+v", lang, o.Emit, wantRecords)
		} else {
			for i, w := range wantRecords {
				g := o.Emit.Records[i]
				if g.Slot != w.Slot || g.Port != w.Port || string(g.Record.Key) != string(w.Record.Key) ||
					(g.Record.Key == nil) != (w.Record.Key == nil) || string(g.Record.Value) != string(w.Record.Value) ||
					!g.Record.Time.Equal(w.Record.Time) || len(g.Record.Headers) != 0 {
					t.Errorf("%s: emitted[%d] = %+v, want %+v", lang, i, g, w)
				}
			}
		}
		if !reflect.DeepEqual(o.Merge, wantMerge) {
			t.Errorf("%s: merge %+v, want %+v", lang, o.Merge, wantMerge)
		}
	}
	for _, lang := range aggLanguages[1:] {
		if !reflect.DeepEqual(results[lang], results[aggLanguages[0]]) {
			t.Errorf("%s and %s differ through the host:\n%+v\n%+v", lang, aggLanguages[0], results[lang], results[aggLanguages[0]])
		}
	}
}

func asGuestError(err error, ge **guestError) bool {
	e, ok := err.(*guestError)
	if ok {
		*ge = e
	}
	return ok
}
