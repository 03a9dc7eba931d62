package main_test

// The Rust version of stats (rust/stats.rs) must behave byte for byte like the Go module: these
// tests run both .wasm modules through the host (internal/wasmhost) on the same frames and
// require the same meta, config errors, dispositions, reject reasons, states, emitted records
// and failures.

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/rand"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/wasmhost"
	"github.com/sluicehq/sluice/runtime/transform"
	"github.com/sluicehq/sluice/sdk/go/abi"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

const (
	goWasm   = "stats-go.wasm"
	rustWasm = "stats.wasm"
)

func loadBoth(t *testing.T) (*wasmhost.Host, *wasmhost.Module, *wasmhost.Module) {
	t.Helper()
	if _, err := os.Stat(rustWasm); err != nil {
		t.Fatalf("%s: %v: run make wasm-guests", rustWasm, err)
	}
	ctx := context.Background()
	h, err := wasmhost.New(ctx, wasmhost.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close(ctx) })
	g, err := h.Load(ctx, goWasm, "")
	if err != nil {
		t.Fatal(err)
	}
	r, err := h.Load(ctx, rustWasm, "")
	if err != nil {
		t.Fatal(err)
	}
	return h, g, r
}

func TestRustMeta(t *testing.T) {
	_, g, r := loadBoth(t)
	gm, rm := g.Meta(), r.Meta()
	gm.Digest, rm.Digest = "", "" // the digest of the .wasm file
	if !reflect.DeepEqual(gm, rm) {
		t.Fatalf("meta differs:\ngo   %+v\nrust %+v", g.Meta(), r.Meta())
	}
	if string(g.Meta().ConfigSchema) != string(r.Meta().ConfigSchema) {
		t.Fatalf("config_schema differs: %s / %s", g.Meta().ConfigSchema, r.Meta().ConfigSchema)
	}
}

func TestRustConfig(t *testing.T) {
	h, g, r := loadBoth(t)
	ctx := context.Background()
	for _, cfg := range []string{
		``, ` `, `{}`, `null`, `{"field":"price"}`, `{"field":"quote.bid"}`, `{"fi\u0065ld":"a.b"}`,
		`{"field":"a..b"}`, `{"field":"."}`, `{"field":"a."}`, `{"field":".a"}`, `{"field":""}`,
		`{"field":"x.\u00ad\u2028\u0007\t\"\\\ud83d\ude00\udb40\udc01."}`, `{"field":"\u00e9..\u0301"}`,
		`{"field":5}`, `{"field":null}`, `{"field":5,"field":"x"}`, `{"field":null,"field":"x"}`,
		`{"field":"x","field":"y.."}`, `{"Field":"x"}`, `{"other":1}`, `[1]`, `"x"`, `{"field":"x"} {}`,
		`{"field":"\ud800.."}`, `{"field":"p\u0000.."}`,
	} {
		var errs [2]string
		for i, m := range []*wasmhost.Module{g, r} {
			st, err := h.NewStage(ctx, m, wasmhost.StageConfig{Config: []byte(cfg)})
			if err != nil {
				errs[i] = strings.ReplaceAll(strings.ReplaceAll(err.Error(), rustWasm, "MODULE"), goWasm, "MODULE")
				continue
			}
			st.Close(ctx)
		}
		if errs[0] != errs[1] {
			t.Errorf("config %s:\ngo   %q\nrust %q", cfg, errs[0], errs[1])
		} else {
			t.Logf("config %s: %q", cfg, errs[0])
		}
	}
}

// pair runs the same calls on a Go and a Rust stage and compares the results.
type pair struct {
	t    *testing.T
	ctx  context.Context
	g, r *wasmhost.Stage
}

func newPair(t *testing.T, cfg string) *pair {
	h, g, r := loadBoth(t)
	p := &pair{t: t, ctx: context.Background()}
	var err error
	if p.g, err = h.NewStage(p.ctx, g, wasmhost.StageConfig{Config: []byte(cfg)}); err != nil {
		t.Fatal(err)
	}
	if p.r, err = h.NewStage(p.ctx, r, wasmhost.StageConfig{Config: []byte(cfg)}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.g.Close(p.ctx); p.r.Close(p.ctx) })
	return p
}

func (p *pair) step(inputs []connector.Record, recs []abi.AggRecord, slots []abi.Slot) transform.StepResult {
	p.t.Helper()
	a, errA := p.g.Step(p.ctx, inputs, recs, slots)
	b, errB := p.r.Step(p.ctx, inputs, recs, slots)
	if fmt.Sprint(errA) != fmt.Sprint(errB) {
		p.t.Fatalf("step errors differ: go %v, rust %v", errA, errB)
	}
	if !reflect.DeepEqual(a, b) {
		p.t.Fatalf("step results differ:\ngo   %s\nrust %s", dumpStep(a), dumpStep(b))
	}
	return a
}

func dumpStep(r transform.StepResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "actions %v rejected %+v emitted %d\n", r.Actions, r.Rejected, len(r.Emitted))
	for _, s := range r.States {
		fmt.Fprintf(&b, "  slot %d delete %v %x\n", s.Slot, s.Delete, s.State)
	}
	return b.String()
}

func (p *pair) emit(slots []abi.Slot) transform.EmitResult {
	p.t.Helper()
	a, errA := p.g.Emit(p.ctx, slots)
	b, errB := p.r.Emit(p.ctx, slots)
	if fmt.Sprint(errA) != fmt.Sprint(errB) {
		p.t.Fatalf("emit errors differ: go %v, rust %v", errA, errB)
	}
	// A slot without a window takes the host's clock as its records' time.
	for _, res := range []*transform.EmitResult{&a, &b} {
		for i := range res.Records {
			if slots[res.Records[i].Slot].End == abi.NoWindowEnd {
				res.Records[i].Record.Time = time.Time{}
			}
		}
	}
	if !reflect.DeepEqual(a, b) {
		var s strings.Builder
		for i := 0; i < max(len(a.Records), len(b.Records)); i++ {
			var x, y string
			if i < len(a.Records) {
				x = string(a.Records[i].Record.Value)
			}
			if i < len(b.Records) {
				y = string(b.Records[i].Record.Value)
			}
			if x != y {
				fmt.Fprintf(&s, "record %d:\ngo   %s\nrust %s\n", i, x, y)
			}
		}
		p.t.Fatalf("emit results differ: %s\ngo failed %+v states %d\nrust failed %+v states %d", s.String(), a.Failed, len(a.States), b.Failed, len(b.States))
	}
	return a
}

func (p *pair) merge(slots []abi.Slot) []transform.StateChange {
	p.t.Helper()
	a, errA := p.g.Merge(p.ctx, slots)
	b, errB := p.r.Merge(p.ctx, slots)
	if fmt.Sprint(errA) != fmt.Sprint(errB) {
		p.t.Fatalf("merge errors differ:\ngo   %v\nrust %v", errA, errB)
	}
	if !reflect.DeepEqual(a, b) {
		p.t.Fatalf("merge results differ:\ngo   %+v\nrust %+v", a, b)
	}
	return a
}

// Numbers as JSON text, and values that are not numbers or not in range.
var numbers = []string{
	"0", "-0", "0.0", "-0.0", "1", "-1", "7", "42", "100", "123456", "1234567", "-999999",
	"9007199254740993", "18446744073709551616", "12345678901234567890123", "0.1", "0.2", "0.3",
	"1.5", "-2.25", "3.14159265358979323846264338327950288", "0.000123", "1e-5", "1e-7", "1E-7",
	"1e21", "1e+21", "1E21", "1e20", "9.999999999999999e20", "1e6", "1e-4", "2.5e-3", "-3e2",
	"1e308", "1.7976931348623157e308", "-1.7976931348623157e308", "1.7976931348623158e308",
	"1e-320", "5e-324", "4.9e-324", "2e-324", "1e-400", "-1e-400", "2.2250738585072014e-308",
	"0.30000000000000004", "73709206610042.625", "1.00000000000000011102230246251565404236316680908203125",
	"123.456e-2", "6.02214076e23", "-6.62607015e-34", "1" + strings.Repeat("0", 300),
	"0." + strings.Repeat("0", 330) + "1", strings.Repeat("9", 400), "1e400", "-1e309",
	"1e99999999999999999999", "1e-99999999999999999999",
	"1.7976931348623157e308", "-1.7976931348623157e308", "1.5e308", "-1.6e308", // overflow: inf, NaN
}

var junkStrings = []string{
	`" 1"`, `"1 "`, `"NaN"`, `"Inf"`, `"-Infinity"`, `"0x10"`, `"01"`, `"1."`, `".5"`, `"+1"`,
	`""`, `"1e"`, `"1_000"`, `"\ud800"`, `"1\u0000"`, `"١"`, `"abc"`,
}

func numString(r *rand.Rand, n string) string {
	if r.Intn(4) == 0 {
		// escape the first character
		return fmt.Sprintf(`"\u%04x%s"`, n[0], n[1:])
	}
	return `"` + n + `"`
}

func randNumber(r *rand.Rand) string {
	switch r.Intn(10) {
	case 0:
		return numbers[r.Intn(len(numbers))]
	case 1, 2, 3:
		return strconv.FormatFloat(r.NormFloat64()*math.Pow(10, float64(r.Intn(30)-10)), 'g', -1, 64)
	case 4:
		return strconv.Itoa(r.Intn(2000) - 1000)
	case 5:
		return strconv.FormatFloat(float64(r.Intn(100000))/100, 'f', -1, 64)
	case 6:
		return strconv.FormatFloat(r.Float64()*1000, 'f', r.Intn(20), 64)
	default:
		return strconv.FormatFloat(100+r.NormFloat64()*10, 'g', -1, 64)
	}
}

// jsonName is name as written between the quotes of a JSON string.
func jsonName(name string) string {
	b, _ := json.Marshal(name)
	return string(b[1 : len(b)-1])
}

// randValue is a record value for the field path (one or two members).
func randValue(r *rand.Rand, path []string) string {
	num := randNumber(r)
	val := num
	switch r.Intn(12) {
	case 0:
		val = numString(r, num)
	case 1:
		val = `"` + num + `"`
	}
	obj := func(name, v string) string { return `{"` + name + `":` + v + `}` }
	leaf := jsonName(path[len(path)-1]) // member names as written inside quotes
	wrap := func(inner string) string { // the members above the leaf
		for i := len(path) - 2; i >= 0; i-- {
			inner = `{"x":1,"` + jsonName(path[i]) + `":` + inner + `}`
		}
		return inner
	}
	switch k := r.Intn(40); {
	case k < 20:
		return wrap(`{"commodity":"c","` + leaf + `":` + val + `,"ts":1}`)
	case k < 22:
		return " \t\n" + wrap(obj(leaf, val)) + "\r\n "
	case k == 22:
		return wrap(`{"` + leaf + `":` + val + `,"` + leaf + `":2}`) // duplicate
	case k == 23:
		return wrap(`{"other":` + val + `}`) // missing
	case k == 24:
		return wrap(obj(leaf, junkStrings[r.Intn(len(junkStrings))]))
	case k == 25:
		return wrap(obj(leaf, []string{"true", "false", "null", "{}", "[]", `[1]`, `{"a":1}`}[r.Intn(7)]))
	case k == 26:
		return `[` + wrap(obj(leaf, val)) + `]` // not an object
	case k == 27:
		return []string{`"x"`, `12`, `null`, `true`, `[]`}[r.Intn(5)]
	case k == 28:
		v := wrap(obj(leaf, val))
		return v[:r.Intn(len(v))] // truncated: not JSON
	case k == 29:
		return wrap(obj(leaf, val)) + []string{"x", "{}", ",", "\x00"}[r.Intn(4)]
	case k == 30:
		return wrap(`{"s":"` + string([]byte{0xff, 0xfe}) + `","` + leaf + `":` + val + `}`) // invalid UTF-8
	case k == 31:
		return wrap(`{"s":"a` + "\x01" + `","` + leaf + `":` + val + `}`) // control character
	case k == 32:
		// an escaped member name
		return wrap(fmt.Sprintf(`{"\u%04x%s":%s}`, leaf[0], leaf[1:], val)) // a non-ASCII leaf[0] makes another name
	case k == 33:
		d := 250 + r.Intn(10) // around the depth limit of 256
		return wrap(`{"` + leaf + `":` + val + `,"d":` + strings.Repeat("[", d) + strings.Repeat("]", d) + `}`)
	case k == 34:
		return wrap(`{"` + leaf + `":` + val + `,"n":[1,2.5e3,-0,"\u00e9\ud83d\ude00",{"a":[true,false,null]}]}`)
	case k == 35 && len(path) > 1:
		return `{"` + jsonName(path[0]) + `":[` + wrap(obj(leaf, val)) + `]}` // a path step is an array
	case k == 36:
		return wrap(obj(leaf, `"\ud83d\ude00"`))
	case k == 37:
		return wrap(`{"` + leaf + `": ` + val + ` }`)
	case k == 38:
		return wrap(obj(leaf, "01")) // not JSON
	default:
		return wrap(obj(leaf, num))
	}
}

var keyPool = []string{
	"corn", "wheat", "", "with \"quotes\" and \\", "line\nbreak\ttab\r\x01\x1f\x7f", "<html>&amp;",
	"é", "日本語", "\U0001F600", "\u2028\u2029", "\xff\xfe", "a\xc3", "\xed\xa0\x80", "\xe2\x82",
	"\xf0\x9f\x98", "\xef\xbf\xbd", "\x00", strings.Repeat("k", 128), "/slash/",
}

func randKey(r *rand.Rand) string {
	if r.Intn(3) == 0 {
		b := make([]byte, r.Intn(12))
		for i := range b {
			b[i] = byte(r.Intn(256))
		}
		return string(b)
	}
	return keyPool[r.Intn(len(keyPool))]
}

type slotSet struct {
	slots []abi.Slot
}

func (s *slotSet) apply(ch []transform.StateChange) {
	for _, c := range ch {
		if c.Delete {
			s.slots[c.Slot].State = nil
		} else {
			s.slots[c.Slot].State = c.State
		}
	}
}

func newSlots(r *rand.Rand, n int) *slotSet {
	s := &slotSet{}
	for i := 0; i < n; i++ {
		sl := abi.Slot{Key: []byte(randKey(r))}
		switch r.Intn(6) {
		case 0:
			sl.Start, sl.End = abi.NoWindowStart, abi.NoWindowEnd
		case 1:
			sl.KeyNull, sl.Key = true, nil
			w := int64(r.Intn(100))
			sl.Start, sl.End = w*60000, (w+1)*60000
		case 2:
			sl.Start, sl.End = -120000, -60000
		case 3:
			sl.Start, sl.End = abi.NoWindowStart, 5 // windowed: one bound set
		default:
			w := int64(1700000000000/60000 + r.Intn(1000))
			sl.Start, sl.End = w*60000, (w+5)*60000
		}
		s.slots = append(s.slots, sl)
	}
	return s
}

// frame builds a step frame: inputs, each folded into 1 to 3 slots (hopping copies share Seq).
func frame(r *rand.Rand, nslots, ninputs int, path []string) ([]connector.Record, []abi.AggRecord) {
	var in []connector.Record
	var recs []abi.AggRecord
	for i := 0; i < ninputs; i++ {
		v := []byte(randValue(r, path))
		in = append(in, connector.Record{Value: v})
		ts := int64(1700000000000 + r.Intn(20)) // few times: ties
		switch r.Intn(20) {
		case 0:
			ts = abi.NoTimestamp
		case 1:
			ts = math.MaxInt64
		case 2:
			ts = -int64(r.Intn(1000))
		}
		copies := 1
		if r.Intn(3) == 0 {
			copies += r.Intn(3)
		}
		first := r.Intn(nslots)
		for c := 0; c < copies; c++ {
			recs = append(recs, abi.AggRecord{Slot: uint32((first + c) % nslots), Seq: uint64(i), TimeMs: ts, Value: v})
		}
	}
	return in, recs
}

func state(count uint64, f ...float64) []byte {
	b := binary.LittleEndian.AppendUint64(nil, count)
	for i, v := range f {
		if i == 5 || i == 7 { // first_ts, last_ts
			b = binary.LittleEndian.AppendUint64(b, uint64(int64(v)))
			continue
		}
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
	}
	return b
}

// oddStates are states no record builds: infinities, huge counts and times, signed zeros, NaNs.
// A NaN from arithmetic on records (inf - inf) is the engine's default NaN, and one from math.Min
// or math.Max is Go's; min, max, first and last may hold any NaN, since they are only compared
// and copied. A mean or m2 that holds a NaN of another payload is left out: which payload the
// arithmetic keeps depends on the operand order each compiler chose (see README.md).
func oddStates() [][]byte {
	inf := math.Inf(1)
	nan := math.Float64frombits(0xfff8000000000000) // the default NaN of x86-64 and of wazero
	gonan := math.NaN()
	negz := math.Copysign(0, -1)
	return [][]byte{
		state(1, 0, 0, negz, negz, negz, 5, negz, 5),
		state(2, inf, nan, -inf, inf, 1, 0, 2, 0),
		state(3, nan, -1, gonan, gonan, gonan, 0, gonan, 0),
		state(3, 1, 1, nan, math.Float64frombits(0x7ff4000000000001), math.Float64frombits(0xfff8000000000123), 0, nan, 0),
		state(math.MaxUint64, 1e308, 1e308, -1e308, 1e308, 1, math.MinInt64, 2, math.MaxInt64),
		state(1<<53+1, 0.1, 1e-300, 0, 0, 0, 1, 0, 1),
		state(4, 1e308, inf, 0, 1e308, 1e-7, 3, 1e21, 3),
		state(4, -inf, nan, -inf, inf, 1e-7, 3, 1e21, 3),
		append(state(7, 1, 2, 0, 3, 1, 9, 3, 9)[:64], 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f),
	}
}

var badStates = [][]byte{[]byte("garbage"), make([]byte, 72), make([]byte, 71), make([]byte, 73), make([]byte, 144)}

func TestRustMatchesGo(t *testing.T) {
	for _, c := range []struct {
		cfg  string
		path []string
	}{
		{``, []string{"price"}},
		{`{"field":"quote.bid"}`, []string{"quote", "bid"}},
		{`{"field":"p\u00e9.\u65e5\"x"}`, []string{"pé", "日\"x"}},
	} {
		t.Run(c.cfg, func(t *testing.T) {
			p := newPair(t, c.cfg)
			r := rand.New(rand.NewSource(int64(len(c.cfg)) + 1))
			var records, rejected, emitted, merged, nulls int
			countNulls := func(res transform.EmitResult) int {
				n := 0
				for _, x := range res.Records {
					v := string(x.Record.Value)
					if strings.Contains(v, `"min":null`) || strings.Contains(v, `"max":null`) || strings.Contains(v, `"mean":null`) || strings.Contains(v, `"stddev":null`) {
						n++
					}
				}
				emitted += len(res.Records)
				return n
			}
			for round := 0; round < 60; round++ {
				s := newSlots(r, 1+r.Intn(40))
				if round%5 == 4 { // resume states that no record built
					for i := range s.slots {
						if r.Intn(3) == 0 {
							s.slots[i].State = oddStates()[r.Intn(len(oddStates()))]
						}
					}
				}
				for f := 0; f < 1+r.Intn(6); f++ {
					in, recs := frame(r, len(s.slots), 1+r.Intn(300), c.path)
					res := p.step(in, recs, s.slots)
					records += len(recs)
					rejected += len(res.Rejected)
					s.apply(res.States)
					if r.Intn(3) == 0 { // an early update
						nulls += countNulls(p.emit(s.slots))
					}
				}
				if r.Intn(2) == 0 { // merges: each slot's state folded into another's
					var m []abi.Slot
					for i := range s.slots {
						o := s.slots[r.Intn(len(s.slots))].State
						if len(o) == 0 {
							continue
						}
						sl := s.slots[i]
						if r.Intn(4) == 0 {
							sl.State = nil
						}
						sl.Other = o
						m = append(m, sl)
					}
					if len(m) > 0 {
						ch := p.merge(m)
						merged += len(ch)
						for _, x := range ch {
							m[x.Slot].State, m[x.Slot].Other = x.State, nil
						}
						nulls += countNulls(p.emit(m))
					}
				}
				for i := range s.slots {
					s.slots[i].Final = true
				}
				nulls += countNulls(p.emit(s.slots))
			}
			if nulls == 0 {
				t.Error("no emitted record has a value that is not finite: the overflow cases did not run")
			}
			t.Logf("%d records (%d rejected), %d records emitted (%d with values that are not finite), %d merges: identical",
				records, rejected, emitted, nulls, merged)
		})
	}
}

// States the module cannot read: the records of the slot are rejected, emits fail with the
// module's message, merges fail.
func TestRustBadStates(t *testing.T) {
	p := newPair(t, ``)
	r := rand.New(rand.NewSource(7))
	good := state(2, 1.5, 0.5, 1, 2, 1, 10, 2, 11)
	for _, bad := range badStates {
		slots := []abi.Slot{{Start: 0, End: 60000, Key: []byte("a"), State: bad}, {Start: 0, End: 60000, Key: []byte("b"), State: good}}
		in, recs := frame(r, 2, 50, []string{"price"})
		p.step(in, recs, slots)
		p.emit(slots)
		slots[0].Final, slots[1].Final = true, true
		p.emit(slots)
		p.merge([]abi.Slot{{Key: []byte("a"), State: good, Other: bad}})
		p.merge([]abi.Slot{{Key: []byte("a"), State: bad, Other: good}})
		p.merge([]abi.Slot{{Key: []byte("a"), Other: bad}})
		p.merge([]abi.Slot{{Key: []byte("a"), State: good, Other: good}, {Key: []byte("b"), State: bad, Other: good}})
	}
	p.merge([]abi.Slot{{Key: []byte("a"), State: good, Other: good}, {Key: []byte("b"), State: good}}) // no other state
}
