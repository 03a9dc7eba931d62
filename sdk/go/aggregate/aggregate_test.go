package aggregate

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"reflect"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/sdk/go/abi"
)

// withModule registers an aggregation for the duration of a test (Register itself allows one call
// per process, as a module has exactly one).
func withModule(t testing.TB, meta Meta, funcs Funcs, opts ...Option) {
	t.Helper()
	saved := mod
	t.Cleanup(func() { mod = saved })
	mod = module{}
	Register(meta, funcs, opts...)
}

var testMeta = Meta{Name: "t", Version: "0.1.0", Ports: []string{"alerts"}, StateVersion: 3}

// appendFuncs keeps the values of a slot's records, concatenated with '|' between them, so that
// a state shows the order of its folds.
var appendFuncs = Funcs{
	Accumulate: func(s *Step, state []byte) ([]byte, error) {
		if len(state) > 0 {
			state = append(state, '|')
		}
		return append(state, s.Record.Value...), nil
	},
	Emit: func(e *Emitter, state []byte) error {
		e.Emit("", state)
		return nil
	},
	Merge: func(_ *Slot, state, other []byte) ([]byte, error) {
		return append(append(state, '+'), other...), nil
	},
}

func rec(slot uint32, value string) abi.AggRecord {
	return abi.AggRecord{Slot: slot, TimeMs: 1000, Key: []byte("k"), Value: []byte(value)}
}

func slot(key, state string) abi.Slot {
	s := abi.Slot{Start: 0, End: 60000, Key: []byte(key)}
	if state != "" {
		s.State = []byte(state)
	}
	return s
}

func statesOf(t *testing.T, cs []StateChange) map[int]string {
	t.Helper()
	m := map[int]string{}
	for _, c := range cs {
		if _, dup := m[c.Slot]; dup {
			t.Fatalf("slot %d has two StateOuts", c.Slot)
		}
		if c.Delete {
			m[c.Slot] = "<delete>"
		} else {
			m[c.Slot] = string(c.State)
		}
	}
	return m
}

func TestEncodeMeta(t *testing.T) {
	tests := []struct {
		name    string
		meta    Meta
		want    string
		wantErr string
	}{
		{"minimal", Meta{Name: "v", Version: "1"},
			`{"name":"v","version":"1","abi":"1.1","kinds":["aggregate"],"ports":["main"],"state_version":0}`, ""},
		{"ports, schema, state version", Meta{Name: "a.b-c_1", Version: "1.2.3", Ports: []string{"main", "alerts"},
			ConfigSchema: ` {"type":"object"} `, StateVersion: 7},
			`{"name":"a.b-c_1","version":"1.2.3","abi":"1.1","kinds":["aggregate"],"ports":["main","alerts"],"state_version":7,"config_schema":{"type":"object"}}`, ""},
		{"bad name", Meta{Name: "a b", Version: "1"}, "", "name"},
		{"no version", Meta{Name: "a"}, "", "version"},
		{"bad port", Meta{Name: "a", Version: "1", Ports: []string{"Alerts"}}, "", "port"},
		{"duplicate port", Meta{Name: "a", Version: "1", Ports: []string{"x", "x"}}, "", "twice"},
		{"negative state version", Meta{Name: "a", Version: "1", StateVersion: -1}, "", "state_version"},
		{"bad schema", Meta{Name: "a", Version: "1", ConfigSchema: "{"}, "", "config_schema"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, _, err := encodeMeta(tc.meta)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Fatalf("meta = %s\nwant   %s", got, tc.want)
			}
			if !json.Valid(got) {
				t.Fatal("meta is not valid JSON")
			}
		})
	}
}

func TestRegisterPanics(t *testing.T) {
	saved := mod
	t.Cleanup(func() { mod = saved })
	for name, f := range map[string]func(){
		"no emit":       func() { Register(testMeta, Funcs{Accumulate: appendFuncs.Accumulate}) },
		"bad meta":      func() { Register(Meta{Name: "x"}, appendFuncs) },
		"state limit":   func() { Register(testMeta, appendFuncs, StateLimit(0)) },
		"twice":         func() { Register(testMeta, appendFuncs); Register(testMeta, appendFuncs) },
		"huge limit":    func() { Register(testMeta, appendFuncs, StateLimit(abi.MaxStateLimit+1)) },
		"nil functions": func() { Register(testMeta, Funcs{}) },
	} {
		t.Run(name, func(t *testing.T) {
			mod = module{}
			defer func() {
				if recover() == nil {
					t.Fatal("no panic")
				}
			}()
			f()
		})
	}
}

// TestStepFoldsInFrameOrder: several records of one slot fold in frame order, each seeing the
// state the previous one left, and each changed slot gets one StateOut.
func TestStepFoldsInFrameOrder(t *testing.T) {
	withModule(t, testMeta, appendFuncs)
	slots := []abi.Slot{slot("a", ""), slot("b", "b0"), slot("c", "c0")}
	recs := []abi.AggRecord{rec(0, "a1"), rec(1, "b1"), rec(0, "a2"), rec(2, "c1"), rec(0, "a3"), rec(1, "b2")}
	res, err := RunStep(nil, slots, recs)
	if err != nil {
		t.Fatal(err)
	}
	for i, o := range res.Outcomes {
		if o.Action != abi.Drop {
			t.Fatalf("record %d: %v, want DROP (the default)", i, o.Action)
		}
	}
	want := map[int]string{0: "a1|a2|a3", 1: "b0|b1|b2", 2: "c0|c1"}
	if got := statesOf(t, res.States); !reflect.DeepEqual(got, want) {
		t.Fatalf("states %v, want %v", got, want)
	}
	// The next frame starts from the states the host kept.
	Apply(slots, res.States)
	res, err = RunStep(nil, slots[:2], []abi.AggRecord{rec(1, "b3"), rec(0, "a4")})
	if err != nil {
		t.Fatal(err)
	}
	want = map[int]string{0: "a1|a2|a3|a4", 1: "b0|b1|b2|b3"}
	if got := statesOf(t, res.States); !reflect.DeepEqual(got, want) {
		t.Fatalf("second frame: states %v, want %v", got, want)
	}
}

// TestHoppingCopies: a record in several windows appears once per window, with one seq; each
// copy folds into its own slot.
func TestHoppingCopies(t *testing.T) {
	slots := []abi.Slot{{Start: 0, End: 300000, Key: []byte("k")}, {Start: 60000, End: 360000, Key: []byte("k")}}
	recs := []abi.AggRecord{
		{Slot: 0, Seq: 0, TimeMs: 90000, Value: []byte("x")},
		{Slot: 1, Seq: 0, TimeMs: 90000, Value: []byte("x")},
		{Slot: 0, Seq: 1, TimeMs: 95000, Value: []byte("y")},
		{Slot: 1, Seq: 1, TimeMs: 95000, Value: []byte("y")},
	}
	var seen []string
	withModule(t, testMeta, Funcs{
		Accumulate: func(s *Step, state []byte) ([]byte, error) {
			seen = append(seen, string(s.Record.Value)+"@"+itoa(s.Slot.Index)+"/"+itoa(int(s.Record.Seq))+"/"+itoa(int(s.Slot.Start)))
			return appendFuncs.Accumulate(s, state)
		},
		Emit: appendFuncs.Emit,
	})
	res, err := RunStep(nil, slots, recs)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"x@0/0/0", "x@1/0/60000", "y@0/1/0", "y@1/1/60000"}; !reflect.DeepEqual(seen, want) {
		t.Fatalf("folds %q, want %q", seen, want)
	}
	if got, want := statesOf(t, res.States), map[int]string{0: "x|y", 1: "x|y"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("states %v, want %v", got, want)
	}
}

// TestDispositions: PASS, DROP, REJECT (by call and by error), EMIT with and without value
// inheritance, and emits discarded by a later decision.
func TestDispositions(t *testing.T) {
	errBad := &RejectError{Code: CodeSchema, Reason: "value: bad"}
	withModule(t, testMeta, Funcs{
		Accumulate: func(s *Step, state []byte) ([]byte, error) {
			switch v := string(s.Record.Value); v {
			case "pass":
				s.Pass()
			case "drop":
				s.Emit("alerts", []byte("discarded"))
				s.Drop()
			case "reject":
				s.Emit("", []byte("discarded"))
				s.Reject(CodeOutOfRange, "too big")
				return append(state, 'X'), nil // ignored: a rejected record does not fold
			case "error":
				return nil, errBad
			case "plain-error":
				return nil, errors.New("plain")
			case "alert":
				s.EmitInput("main")
				s.AppendEmit("alerts", func(dst []byte) []byte { return append(dst, `{"alert":1}`...) })
			case "record":
				s.EmitRecord(Out{Port: "alerts", KeyNull: true, Value: []byte("r"), Time: 7, HasTime: true,
					Headers: []Header{{Key: []byte("h"), Value: []byte("v")}}})
				s.EmitRecord(Out{Key: []byte("k2"), Value: []byte("r2"), Headers: []Header{}})
			case "reject-then-emit":
				s.Reject(CodeOutOfRange, "forgotten")
				s.Emit("", []byte("kept"))
			}
			return append(state, s.Record.Value[0]), nil
		},
		Emit: appendFuncs.Emit,
	})
	values := []string{"pass", "drop", "reject", "error", "plain-error", "alert", "record", "reject-then-emit", "other"}
	recs := make([]abi.AggRecord, len(values))
	for i, v := range values {
		recs[i] = rec(0, v)
	}
	res, err := RunStep(nil, []abi.Slot{slot("k", "")}, recs)
	if err != nil {
		t.Fatal(err)
	}
	inherit := Emitted{Port: "main", KeyInherited: true, ValueInherited: true, HeadersInherited: true, Time: NoTimestamp}
	want := []Outcome{
		{Action: abi.Pass},
		{Action: abi.Drop},
		{Action: abi.Reject, Code: CodeOutOfRange, Reason: "too big"},
		{Action: abi.Reject, Code: CodeSchema, Reason: "value: bad"},
		{Action: abi.Reject, Code: CodeUnspecified, Reason: "plain"},
		{Action: abi.Emit, Emitted: []Emitted{
			withSlot(inherit, 5),
			{Slot: 5, Port: "alerts", KeyInherited: true, Value: []byte(`{"alert":1}`), HeadersInherited: true, Time: NoTimestamp},
		}},
		{Action: abi.Emit, Emitted: []Emitted{
			{Slot: 6, Port: "alerts", KeyNull: true, Value: []byte("r"), Time: 7, Headers: [][2]string{{"h", "v"}}},
			{Slot: 6, Port: "main", Key: []byte("k2"), Value: []byte("r2"), Time: NoTimestamp},
		}},
		{Action: abi.Emit, Emitted: []Emitted{{Slot: 7, Port: "main", KeyInherited: true, Value: []byte("kept"), HeadersInherited: true, Time: NoTimestamp}}},
		{Action: abi.Drop},
	}
	if !reflect.DeepEqual(res.Outcomes, want) {
		t.Fatalf("outcomes\n%+v\nwant\n%+v", res.Outcomes, want)
	}
	// Rejected records (2, 3, 4) did not fold.
	if got := statesOf(t, res.States)[0]; got != "pdarro" {
		t.Fatalf("state %q, want %q", got, "pdarro")
	}
}

func withSlot(e Emitted, i int) Emitted { e.Slot = i; return e }

// TestRejectKeepsState: a rejected record leaves its slot as the record before it left it, and a
// slot whose records all fail keeps the frame's state (no StateOut).
func TestRejectKeepsState(t *testing.T) {
	withModule(t, testMeta, Funcs{
		Accumulate: func(s *Step, state []byte) ([]byte, error) {
			if s.Record.Value[0] == '!' {
				return []byte("garbage"), Reject(CodeSchema, "bang")
			}
			return appendFuncs.Accumulate(s, state)
		},
		Emit: appendFuncs.Emit,
	})
	res, err := RunStep(nil, []abi.Slot{slot("a", "s"), slot("b", "t"), slot("c", "")},
		[]abi.AggRecord{rec(0, "1"), rec(0, "!"), rec(0, "2"), rec(1, "!"), rec(2, "!")})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := statesOf(t, res.States), map[int]string{0: "s|1|2"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("states %v, want %v", got, want)
	}
}

// TestStateOuts: an unchanged state writes no StateOut, an emptied one a delete, and a new slot
// that stays empty nothing; a returned slice the SDK does not own is copied.
func TestStateOuts(t *testing.T) {
	foreign := []byte("foreign")
	withModule(t, testMeta, Funcs{
		Accumulate: func(s *Step, state []byte) ([]byte, error) {
			switch string(s.Record.Value) {
			case "same":
				return state, nil
			case "empty":
				return nil, nil
			case "foreign":
				return foreign, nil
			case "shift":
				return state[1:], nil
			case "grow":
				return append(state, bytes.Repeat([]byte("g"), 3000)...), nil
			}
			return state, nil
		},
		Emit: appendFuncs.Emit,
	})
	slots := []abi.Slot{slot("same", "x"), slot("empty", "y"), slot("new", ""), slot("foreign", "z"), slot("shift", "abc"), slot("grow", "q")}
	recs := []abi.AggRecord{rec(0, "same"), rec(1, "empty"), rec(2, "empty"), rec(3, "foreign"), rec(4, "shift"), rec(4, "shift"), rec(5, "grow")}
	for round := 0; round < 2; round++ { // the second round reuses the SDK's buffers
		res, err := RunStep(nil, slots, recs)
		if err != nil {
			t.Fatal(err)
		}
		want := map[int]string{1: "<delete>", 3: "foreign", 4: "c", 5: "q" + strings.Repeat("g", 3000)}
		if got := statesOf(t, res.States); !reflect.DeepEqual(got, want) {
			t.Fatalf("round %d: states %v, want %v", round, got, want)
		}
		if string(foreign) != "foreign" {
			t.Fatalf("the SDK wrote into a slice it does not own: %q", foreign)
		}
	}
}

// TestStateLimit: with StateLimit, a record that would grow its state over the limit is rejected
// and the state stays as it was; without one, a state over the stage's default limits.state is
// an invalid result, as the host sees it.
func TestStateLimit(t *testing.T) {
	grow := Funcs{
		Accumulate: func(s *Step, state []byte) ([]byte, error) { return append(state, s.Record.Value...), nil },
		Emit:       appendFuncs.Emit,
		Merge:      appendFuncs.Merge,
	}
	withModule(t, testMeta, grow, StateLimit(8))
	res, err := RunStep(nil, []abi.Slot{slot("k", "")}, []abi.AggRecord{rec(0, "1234"), rec(0, "5678"), rec(0, "9"), rec(0, "")})
	if err != nil {
		t.Fatal(err)
	}
	if o := res.Outcomes[2]; o.Action != abi.Reject || o.Code != CodeOutOfRange || !strings.Contains(o.Reason, "limit of 8 bytes") {
		t.Fatalf("record over the limit: %+v", o)
	}
	if got := statesOf(t, res.States)[0]; got != "12345678" {
		t.Fatalf("state %q", got)
	}
	if _, err := RunMerge(nil, []abi.Slot{{Key: []byte("k"), State: []byte("1234"), Other: []byte("5678")}}); err == nil ||
		!strings.Contains(err.Error(), "over the module's limit") {
		t.Fatalf("merge over the limit: %v", err)
	}

	withModule(t, testMeta, grow)
	big := bytes.Repeat([]byte("x"), abi.DefaultMaxState/2+1)
	_, err = RunStep(nil, []abi.Slot{slot("k", "")}, []abi.AggRecord{rec(0, string(big)), rec(0, string(big))})
	if !errors.Is(err, abi.ErrInvalidResult) || !strings.Contains(err.Error(), "state limit") {
		t.Fatalf("state over the default limits.state: %v", err)
	}
}

func TestEmit(t *testing.T) {
	withModule(t, testMeta, Funcs{
		Accumulate: appendFuncs.Accumulate,
		Emit: func(e *Emitter, state []byte) error {
			switch string(state) {
			case "nothing":
				return nil
			case "fail":
				return errors.New("cannot read the state")
			case "bad port":
				e.Emit("nowhere", state)
				return nil
			}
			e.Emit("", state)
			e.AppendEmit("alerts", func(dst []byte) []byte {
				dst = append(dst, e.Slot.Key...)
				if e.Slot.Final {
					dst = append(dst, "/final"...)
				}
				return dst
			})
			e.EmitRecord(Out{Key: []byte("other"), Value: []byte("r"), Time: 5, HasTime: true, Headers: []Header{{Key: []byte("a"), Value: []byte("b")}}})
			e.SetState([]byte(string(state) + "+emitted"))
			return nil
		},
	})
	slots := []abi.Slot{slot("a", "s0"), slot("b", "nothing"), slot("c", "s2")}
	slots[0].Final = true
	res, err := RunEmit(nil, slots)
	if err != nil {
		t.Fatal(err)
	}
	want := []Emitted{
		{Slot: 0, Port: "main", KeyInherited: true, Value: []byte("s0"), Time: NoTimestamp, HeadersInherited: true},
		{Slot: 0, Port: "alerts", KeyInherited: true, Value: []byte("a/final"), Time: NoTimestamp, HeadersInherited: true},
		{Slot: 0, Port: "main", Key: []byte("other"), Value: []byte("r"), Time: 5, Headers: [][2]string{{"a", "b"}}},
		{Slot: 2, Port: "main", KeyInherited: true, Value: []byte("s2"), Time: NoTimestamp, HeadersInherited: true},
		{Slot: 2, Port: "alerts", KeyInherited: true, Value: []byte("c"), Time: NoTimestamp, HeadersInherited: true},
		{Slot: 2, Port: "main", Key: []byte("other"), Value: []byte("r"), Time: 5, Headers: [][2]string{{"a", "b"}}},
	}
	if !reflect.DeepEqual(res.Emitted, want) {
		t.Fatalf("emitted\n%+v\nwant\n%+v", res.Emitted, want)
	}
	// The final slot's SetState is ignored; the early update's is written.
	if got, want := statesOf(t, res.States), map[int]string{2: "s2+emitted"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("states %v, want %v", got, want)
	}
	if _, err := RunEmit(nil, []abi.Slot{slot("a", "fail")}); err == nil || !strings.Contains(err.Error(), "cannot read the state") {
		t.Fatalf("failing emit: %v", err)
	}
	if _, err := RunEmit(nil, []abi.Slot{slot("a", "bad port")}); err == nil || !strings.Contains(err.Error(), `unknown port "nowhere"`) {
		t.Fatalf("unknown port: %v", err)
	}
}

func TestMerge(t *testing.T) {
	withModule(t, testMeta, appendFuncs)
	slots := []abi.Slot{
		{Key: []byte("a"), State: []byte("s1"), Other: []byte("s2")},
		{Key: []byte("b"), State: []byte("t1"), Other: []byte("t2")},
	}
	res, err := RunMerge(nil, slots)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := statesOf(t, res.States), map[int]string{0: "s1+s2", 1: "t1+t2"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("states %v, want %v", got, want)
	}
	// A merge that leaves the state as it was still returns it (the host would lose the other).
	withModule(t, testMeta, Funcs{Accumulate: appendFuncs.Accumulate, Emit: appendFuncs.Emit,
		Merge: func(_ *Slot, state, _ []byte) ([]byte, error) { return state, nil }})
	res, err = RunMerge(nil, slots[:1])
	if err != nil {
		t.Fatal(err)
	}
	if got, want := statesOf(t, res.States), map[int]string{0: "s1"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("states %v, want %v", got, want)
	}
	withModule(t, testMeta, Funcs{Accumulate: appendFuncs.Accumulate, Emit: appendFuncs.Emit})
	if _, err := RunMerge(nil, slots); err == nil || !strings.Contains(err.Error(), "no Merge") {
		t.Fatalf("merge without Merge: %v", err)
	}
}

func TestSlotAndRecordViews(t *testing.T) {
	var got []string
	withModule(t, testMeta, Funcs{
		Accumulate: func(s *Step, state []byte) ([]byte, error) {
			r := s.Record
			got = append(got, strings.Join([]string{string(s.Slot.Key), itoa(int(s.Slot.Start)), itoa(int(s.Slot.End)),
				boolStr(s.Slot.KeyNull), boolStr(s.Slot.Windowed()), string(r.Key), boolStr(r.KeyNull), string(r.Value),
				itoa(int(r.Time)), itoa(int(r.Seq)), itoa(r.Index)}, ","))
			// Appending to a view must not overwrite the frame.
			_ = append(r.Value, "XXXXXXXX"...)
			_ = append(s.Slot.Key, "XXXXXXXX"...)
			return state, nil
		},
		Emit: appendFuncs.Emit,
	})
	slots := []abi.Slot{
		{Start: abi.NoWindowStart, End: abi.NoWindowEnd, KeyNull: true},
		{Start: 10, End: 20, Key: []byte("w")},
	}
	recs := []abi.AggRecord{
		{Slot: 0, Seq: 4, TimeMs: abi.NoTimestamp, KeyNull: true, Value: []byte("v0")},
		{Slot: 1, Seq: 9, TimeMs: 15, Key: []byte("rk"), Value: []byte("v1")},
	}
	if _, err := RunStep(nil, slots, recs); err != nil {
		t.Fatal(err)
	}
	want := []string{
		",-9223372036854775808,9223372036854775807,true,false,,true,v0,-9223372036854775808,4,0",
		"w,10,20,false,true,rk,false,v1,15,9,1",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("views\n%q\nwant\n%q", got, want)
	}
}

func boolStr(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

// TestResultLayout checks the result frame's bytes directly against ABI.md sections 7 and 13.3.
func TestResultLayout(t *testing.T) {
	withModule(t, testMeta, Funcs{
		Accumulate: func(s *Step, state []byte) ([]byte, error) {
			if string(s.Record.Value) == "r" {
				s.Reject(3, "no")
				return state, nil
			}
			s.EmitInput("alerts")
			return append(state, s.Record.Value...), nil
		},
		Emit: appendFuncs.Emit,
	})
	slots := []abi.Slot{slot("a", ""), slot("b", "B")}
	recs := []abi.AggRecord{rec(1, "x"), rec(0, "r"), rec(0, "yz")}
	frame := make([]byte, abi.AggFrameSize(recs, slots))
	n := abi.PutAggFrame(frame, abi.KindStep, recs, slots)
	copy(reserve(2), "{}")
	if initialize(2) != 0 {
		t.Fatal(string(mod.lastErr))
	}
	copy(reserve(uint32(n)), frame)
	res, code := call(abi.KindStep, uint32(n))
	if code != 0 {
		t.Fatal(string(mod.lastErr))
	}
	u32 := func(off int) uint32 { return binary.LittleEndian.Uint32(res[off:]) }
	if u32(0) != abi.OutMagic || binary.LittleEndian.Uint16(res[4:]) != 32 || binary.LittleEndian.Uint16(res[6:]) != 48 {
		t.Fatalf("header % x", res[:8])
	}
	nIn, dispOff, nOut, outOff, nState, stateOff := u32(8), u32(12), u32(16), u32(20), u32(24), u32(28)
	if nIn != 3 || nOut != 2 || nState != 2 {
		t.Fatalf("n_in %d n_out %d n_state %d", nIn, nOut, nState)
	}
	for _, off := range []uint32{dispOff, outOff, stateOff} {
		if off%8 != 0 {
			t.Fatalf("table at %d is not 8-byte aligned", off)
		}
	}
	if outOff < dispOff+3*12 || stateOff < outOff+2*48 || int(stateOff)+2*16 != len(res) {
		t.Fatalf("tables overlap or do not end the frame: disp %d out %d state %d len %d", dispOff, outOff, stateOff, len(res))
	}
	d := res[dispOff:]
	if d[0] != 2 || binary.LittleEndian.Uint32(d[4:]) != 0 || binary.LittleEndian.Uint32(d[8:]) != 1 { // EMIT [0,1)
		t.Fatalf("disposition 0 % x", d[:12])
	}
	if d[12] != 3 || binary.LittleEndian.Uint16(d[14:]) != 3 || string(res[u32(int(dispOff)+16):][:u32(int(dispOff)+20)]) != "no" {
		t.Fatalf("disposition 1 % x", d[12:24])
	}
	if d[24] != 2 || binary.LittleEndian.Uint32(d[28:]) != 1 || binary.LittleEndian.Uint32(d[32:]) != 1 { // EMIT [1,2)
		t.Fatalf("disposition 2 % x", d[24:36])
	}
	o := res[outOff+48:]
	if binary.LittleEndian.Uint64(o[8:]) != 2 || u32(int(outOff)+48+20) != abi.Inherit || u32(int(outOff)+48+28) != abi.Inherit ||
		u32(int(outOff)+48+36) != abi.Inherit || u32(int(outOff)+48+40) != 1 {
		t.Fatalf("second OutDesc % x", o[:48])
	}
	got := map[uint32]string{}
	for k := uint32(0); k < nState; k++ {
		p := int(stateOff + 16*k)
		if u32(p+4) != 0 {
			t.Fatalf("StateOut %d flags %d", k, u32(p+4))
		}
		got[u32(p)] = string(res[u32(p+8):][:u32(p+12)])
	}
	if want := map[uint32]string{0: "yz", 1: "Bx"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("StateOuts %v, want %v", got, want)
	}
}

func TestCallErrors(t *testing.T) {
	withModule(t, testMeta, Funcs{
		Accumulate: func(s *Step, state []byte) ([]byte, error) {
			if string(s.Record.Value) == "panic" {
				panic("boom")
			}
			if string(s.Record.Value) == "port" {
				s.Emit("nowhere", nil)
			}
			return state, nil
		},
		Emit: appendFuncs.Emit,
	})
	if _, err := RunStep(nil, []abi.Slot{slot("a", "")}, []abi.AggRecord{rec(0, "panic")}); err == nil ||
		!strings.Contains(err.Error(), "batch error -1") || !strings.Contains(err.Error(), "panic: boom") {
		t.Fatalf("panic: %v", err)
	}
	if _, err := RunStep(nil, []abi.Slot{slot("a", "")}, []abi.AggRecord{rec(0, "port")}); err == nil ||
		!strings.Contains(err.Error(), `unknown port "nowhere"`) {
		t.Fatalf("unknown port: %v", err)
	}
	// tf_process: an aggregate module takes no plain frames.
	if code := process(); code != abi.ErrUnsupported || !strings.Contains(string(mod.lastErr), "aggregate module") {
		t.Fatalf("process: %d %q", code, mod.lastErr)
	}
	// A frame of another kind, or no frame at all.
	slots := []abi.Slot{slot("a", "s")}
	frame := make([]byte, abi.AggFrameSize(nil, slots))
	n := abi.PutAggFrame(frame, abi.KindEmit, nil, slots)
	copy(reserve(uint32(n)), frame)
	if _, code := call(abi.KindStep, uint32(n)); code != abi.ErrUnsupported || !strings.Contains(string(mod.lastErr), "kind 4") {
		t.Fatalf("emit frame to step: %d %q", code, mod.lastErr)
	}
	// A record whose value lies outside the frame, after a good one.
	recs := []abi.AggRecord{rec(0, "a"), rec(0, "b")}
	frame = make([]byte, abi.AggFrameSize(recs, slots))
	n = abi.PutAggFrame(frame, abi.KindStep, recs, slots)
	binary.LittleEndian.PutUint32(frame[abi.InHeaderSize+abi.DescSize+28:], 1<<20)
	copy(reserve(uint32(n)), frame)
	if _, code := call(abi.KindStep, uint32(n)); code != abi.ErrUnsupported || !strings.Contains(string(mod.lastErr), "record 1") {
		t.Fatalf("record outside the frame: %d %q", code, mod.lastErr)
	}
	copy(reserve(64), bytes.Repeat([]byte{0xAB}, 64))
	if _, code := call(abi.KindEmit, 64); code != abi.ErrUnsupported {
		t.Fatalf("garbage: %d %q", code, mod.lastErr)
	}
	if _, code := call(abi.KindEmit, uint32(len(mod.in)+1)); code != abi.ErrUnsupported {
		t.Fatalf("frame past the buffer: %d %q", code, mod.lastErr)
	}
	// Config.
	withModule(t, testMeta, appendFuncs, OnInit(func() error {
		var c struct {
			Field string `json:"field"`
		}
		if err := Config(&c); err != nil {
			return err
		}
		if c.Field == "" {
			return errors.New("config: field is required")
		}
		return nil
	}))
	if _, err := RunStep([]byte(`{"field":"x"}`), []abi.Slot{slot("a", "")}, []abi.AggRecord{rec(0, "v")}); err != nil {
		t.Fatal(err)
	}
	if _, err := RunStep([]byte(`{"other":1}`), []abi.Slot{slot("a", "")}, []abi.AggRecord{rec(0, "v")}); err == nil ||
		!strings.Contains(err.Error(), "init: config") {
		t.Fatalf("bad config: %v", err)
	}
}

// fixedFuncs keeps an 8-byte counter per slot, changed in place: the shape of most aggregations.
var fixedFuncs = Funcs{
	Accumulate: func(s *Step, state []byte) ([]byte, error) {
		if len(state) == 0 {
			state = append(state, 0, 0, 0, 0, 0, 0, 0, 0)
		}
		binary.LittleEndian.PutUint64(state, binary.LittleEndian.Uint64(state)+uint64(len(s.Record.Value)))
		return state, nil
	},
	Emit: appendFuncs.Emit,
}

func stepFrame(nRecs, nSlots int) []byte {
	slots := make([]abi.Slot, nSlots)
	for i := range slots {
		slots[i] = abi.Slot{Start: 0, End: 60000, Key: []byte("key-" + itoa(i))}
		if i%2 == 0 {
			slots[i].State = make([]byte, 8)
		}
	}
	recs := make([]abi.AggRecord, nRecs)
	for i := range recs {
		recs[i] = abi.AggRecord{Slot: uint32(i % nSlots), Seq: uint64(i), TimeMs: int64(i), Key: []byte("k"), Value: []byte(`{"price":12.5}`)}
	}
	frame := make([]byte, abi.AggFrameSize(recs, slots))
	return frame[:abi.PutAggFrame(frame, abi.KindStep, recs, slots)]
}

func TestStepDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	withModule(t, testMeta, fixedFuncs)
	frame := stepFrame(1024, 64)
	copy(reserve(uint32(len(frame))), frame)
	run := func() {
		if _, code := call(abi.KindStep, uint32(len(frame))); code != 0 {
			t.Fatal(string(mod.lastErr))
		}
	}
	run()
	if n := testing.AllocsPerRun(20, run); n != 0 {
		t.Fatalf("%v allocations per frame", n)
	}
}

// BenchmarkStep measures the SDK's cost per record: decoding, the fold loop and the result frame,
// around an Accumulate that adds to an 8-byte state.
func BenchmarkStep(b *testing.B) {
	withModule(b, testMeta, fixedFuncs)
	const n = 4096
	frame := stepFrame(n, 256)
	copy(reserve(uint32(len(frame))), frame)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, code := call(abi.KindStep, uint32(len(frame))); code != 0 {
			b.Fatal(string(mod.lastErr))
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/record")
}

func TestLocal(t *testing.T) {
	withModule(t, testMeta, appendFuncs)
	l := Local{}
	a, b := LocalSlot{Key: "a"}, LocalSlot{Key: "b", Start: 0, End: 10}
	for _, v := range []string{"1", "2", "3"} {
		if _, err := l.Step([]LocalRecord{{Slot: a, Value: []byte(v)}, {Slot: b, Value: []byte(v + v)}}); err != nil {
			t.Fatal(err)
		}
	}
	if string(l.State(a)) != "1|2|3" || string(l.State(b)) != "11|22|33" || l.Len() != 2 {
		t.Fatalf("states %q %q", l.State(a), l.State(b))
	}
	out, err := l.Emit(true, b)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 1 || string(out[0].Value) != "11|22|33" || out[0].Slot != 0 || l.Len() != 1 || l.State(b) != nil {
		t.Fatalf("emit %+v, %d slots left", out, l.Len())
	}
}

// TestDecodeMatchesABI: the SDK's frame reader accepts and rejects what abi.DecodeAggFrame does,
// and reads the same slots and records, on valid frames and on frames with bytes changed at
// random.
func TestDecodeMatchesABI(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	var in input
	var ref abi.AggInput
	accepted, refused := 0, 0
	for iter := 0; iter < 20000; iter++ {
		ns := 1 + rng.Intn(4)
		slots := make([]abi.Slot, ns)
		for i := range slots {
			slots[i] = abi.Slot{Start: rng.Int63(), End: rng.Int63(), Key: randBytes(rng), KeyNull: rng.Intn(5) == 0,
				State: randBytes(rng), Final: rng.Intn(2) == 0}
		}
		kind := uint32(abi.KindStep + rng.Intn(3))
		var recs []abi.AggRecord
		if kind == abi.KindStep {
			recs = make([]abi.AggRecord, 1+rng.Intn(5))
			for i := range recs {
				recs[i] = abi.AggRecord{Slot: uint32(rng.Intn(ns)), Seq: rng.Uint64(), TimeMs: rng.Int63(), Key: randBytes(rng),
					KeyNull: rng.Intn(5) == 0, Value: randBytes(rng)}
			}
		}
		if kind == abi.KindMerge {
			for i := range slots {
				slots[i].Other = append(randBytes(rng), 1)
			}
		}
		frame := make([]byte, abi.AggFrameSize(recs, slots))
		frame = frame[:abi.PutAggFrame(frame, kind, recs, slots)]
		if iter%2 == 1 { // change a few bytes of the header and descriptors
			for k := 1 + rng.Intn(3); k > 0; k-- {
				frame[rng.Intn(min(len(frame), abi.InHeaderSize+len(recs)*abi.DescSize+ns*abi.SlotDescSize))] ^= byte(1 << rng.Intn(8))
			}
		}
		refErr := decodeABI(frame, &ref)
		err := in.decode(frame)
		var got []Record
		var gotSlots []int
		for i := 0; err == nil && i < in.n; i++ {
			var r Record
			var s int
			if s, err = in.record(i, &r); err == nil {
				got, gotSlots = append(got, r), append(gotSlots, s)
			}
		}
		if (err == nil) != (refErr == nil) {
			t.Fatalf("frame %d: SDK %v, abi %v", iter, err, refErr)
		}
		if err != nil {
			refused++
			continue
		}
		accepted++
		if in.kind != ref.Kind || len(got) != len(ref.Records) || len(in.slots) != len(ref.Slots) {
			t.Fatalf("frame %d: kind %d/%d, %d/%d records, %d/%d slots", iter, in.kind, ref.Kind, len(got), len(ref.Records), len(in.slots), len(ref.Slots))
		}
		for i, r := range ref.Records {
			g := got[i]
			key := r.Key
			if r.KeyNull {
				key = nil
			}
			if gotSlots[i] != int(r.Slot) || g.Seq != r.Seq || g.Time != r.TimeMs || g.KeyNull != r.KeyNull ||
				!bytes.Equal(g.Key, key) || !bytes.Equal(g.Value, r.Value) || g.Index != i {
				t.Fatalf("frame %d record %d: %+v, abi %+v", iter, i, g, r)
			}
		}
		for i, s := range ref.Slots {
			g := in.slots[i]
			if g.Start != s.Start || g.End != s.End || g.Final != s.Final || g.KeyNull != s.KeyNull ||
				!bytes.Equal(g.Key, s.Key) || !bytes.Equal(g.State, s.State) || !bytes.Equal(g.Other, s.Other) {
				t.Fatalf("frame %d slot %d: %+v, abi %+v", iter, i, g, s)
			}
		}
	}
	if accepted < 1000 || refused < 1000 {
		t.Fatalf("%d frames accepted, %d refused: the cases are not mixed enough", accepted, refused)
	}
}

// decodeABI is abi.DecodeAggFrame, with a panic as an error: it computes n_records × desc_size and
// n_slots × 48 in 32 bits, so a frame whose counts overflow them gets past its range checks.
func decodeABI(frame []byte, in *abi.AggInput) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return abi.DecodeAggFrame(frame, in)
}

func randBytes(rng *rand.Rand) []byte {
	b := make([]byte, rng.Intn(6))
	rng.Read(b)
	return b
}
