package transform

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// withModule registers a transform for the duration of a test (Register itself allows one call per
// process, as a module has exactly one transform).
func withModule(t *testing.T, meta Meta, p Processor, opts ...Option) {
	t.Helper()
	saved := mod
	t.Cleanup(func() { mod = saved })
	mod = module{}
	Register(meta, p, opts...)
}

var testMeta = Meta{Name: "t", Version: "0.1.0", Kinds: []Kind{KindFlatMap}, Ports: []string{"alerts", "audit"}}

func TestEncodeMeta(t *testing.T) {
	tests := []struct {
		name    string
		meta    Meta
		want    string
		wantErr string
	}{
		{"minimal", Meta{Name: "v", Version: "1", Kinds: []Kind{KindValidate}},
			`{"name":"v","version":"1","abi":"1.0","kinds":["validate"],"ports":["main"]}`, ""},
		{"ports and schema", Meta{Name: "a.b-c_1", Version: "1.2.3-rc\"1", Kinds: []Kind{KindMap, KindRoute},
			Ports: []string{"main", "bad_rows"}, ConfigSchema: ` {"type":"object"} `},
			`{"name":"a.b-c_1","version":"1.2.3-rc\"1","abi":"1.0","kinds":["map","route"],"ports":["main","bad_rows"],"config_schema":{"type":"object"}}`, ""},
		{"bad name", Meta{Name: "a b", Version: "1", Kinds: []Kind{KindMap}}, "", "name"},
		{"no version", Meta{Name: "a", Kinds: []Kind{KindMap}}, "", "version"},
		{"no kinds", Meta{Name: "a", Version: "1"}, "", "kind"},
		{"bad port", Meta{Name: "a", Version: "1", Kinds: []Kind{KindMap}, Ports: []string{"Alerts"}}, "", "port"},
		{"duplicate port", Meta{Name: "a", Version: "1", Kinds: []Kind{KindMap}, Ports: []string{"x", "x"}}, "", "twice"},
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

func TestDispositions(t *testing.T) {
	withModule(t, testMeta, ProcessFunc(func(b *Batch) error {
		// Deliberately out of input order, to exercise the sort of output descriptors.
		b.Emit(3, "audit", []byte("k3"), []byte("three-a"))
		b.Emit(1, "", nil, []byte("one-a"))
		b.Emit(1, "alerts", []byte{}, []byte("one-b"))
		b.Drop(2)
		b.Reject(4, CodeOutOfRange, "too big")
		b.Emit(3, "main", nil, []byte("three-b"))
		b.Emit(5, "", nil, []byte("discarded"))
		b.Pass(5)
		b.AppendEmit(6, "", nil, func(dst []byte) []byte { return append(dst, "built"...) })
		return nil
	}))
	in := make([]LocalRecord, 7)
	for i := range in {
		in[i] = LocalRecord{Value: []byte{'v', byte('0' + i)}, Timestamp: NoTimestamp}
	}
	got, err := RunLocal(nil, in)
	if err != nil {
		t.Fatal(err)
	}
	want := []LocalOutcome{
		{Action: ActionPass},
		{Action: ActionEmit, Emitted: []LocalEmitted{
			{Timestamp: NoTimestamp, HeadersInherited: true, Port: "main", KeyInherited: true, Value: []byte("one-a")},
			{Timestamp: NoTimestamp, HeadersInherited: true, Port: "alerts", Key: []byte{}, Value: []byte("one-b")},
		}},
		{Action: ActionDrop},
		{Action: ActionEmit, Emitted: []LocalEmitted{
			{Timestamp: NoTimestamp, HeadersInherited: true, Port: "audit", Key: []byte("k3"), Value: []byte("three-a")},
			{Timestamp: NoTimestamp, HeadersInherited: true, Port: "main", KeyInherited: true, Value: []byte("three-b")},
		}},
		{Action: ActionReject, Code: CodeOutOfRange, Reason: "too big"},
		{Action: ActionPass},
		{Action: ActionEmit, Emitted: []LocalEmitted{{Timestamp: NoTimestamp, HeadersInherited: true, Port: "main", KeyInherited: true, Value: []byte("built")}}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("outcomes:\n got %+v\nwant %+v", got, want)
	}
}

func TestRecordView(t *testing.T) {
	var seen []Record
	var hdr []string
	withModule(t, testMeta, ProcessFunc(func(b *Batch) error {
		for i := 0; i < b.Len(); i++ {
			r := b.Record(i)
			if !bytes.Equal(b.Value(i), r.Value) {
				return errors.New("Value and Record disagree")
			}
			seen = append(seen, Record{Key: clone(r.Key), Value: clone(r.Value), Timestamp: r.Timestamp, Index: r.Index})
			r.EachHeader(func(k, v []byte) bool {
				hdr = append(hdr, string(k)+"="+string(v))
				return true
			})
			if v, ok := r.Header("b"); ok {
				hdr = append(hdr, "first b="+string(v))
			}
		}
		return nil
	}))
	_, err := RunLocal(nil, []LocalRecord{
		{Key: []byte("key"), Value: []byte("val"), Timestamp: 1700000000000, Headers: [][2]string{{"a", "1"}, {"b", ""}, {"b", "2"}}},
		{KeyNull: true, Value: nil, Timestamp: NoTimestamp},
		{Key: []byte{}, Value: []byte("x"), Timestamp: -5},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []Record{
		{Key: []byte("key"), Value: []byte("val"), Timestamp: 1700000000000, Index: 0},
		{Key: nil, Value: nil, Timestamp: NoTimestamp, Index: 1},
		{Key: []byte{}, Value: []byte("x"), Timestamp: -5, Index: 2},
	}
	if !reflect.DeepEqual(seen, want) {
		t.Fatalf("records:\n got %+v\nwant %+v", seen, want)
	}
	if w := []string{"a=1", "b=", "b=2", "first b="}; !reflect.DeepEqual(hdr, w) {
		t.Fatalf("headers = %q, want %q", hdr, w)
	}
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte{}, b...)
}

func TestBatchErrors(t *testing.T) {
	tests := []struct {
		name     string
		proc     ProcessFunc
		frame    func([]byte) []byte
		wantCode int32
		wantMsg  string
	}{
		{"processor error", func(*Batch) error { return errors.New("boom") }, nil, errGeneric, "process: boom"},
		{"panic", func(b *Batch) error { b.Pass(99); return nil }, nil, errGeneric, "panic"},
		{"unknown port", func(b *Batch) error { b.Emit(0, "nope", nil, nil); return nil }, nil, errGeneric, `unknown port "nope"`},
		{"bad magic", nil, func(f []byte) []byte { f[0] = 'X'; return f }, errUnsupported, "bad magic"},
		{"wrong major", nil, func(f []byte) []byte { le.PutUint16(f[4:], 2); return f }, errUnsupported, "ABI major 2"},
		{"aggregation kind", nil, func(f []byte) []byte { le.PutUint32(f[12:], 2); return f }, errUnsupported, "kind 2"},
		{"short", nil, func(f []byte) []byte { return f[:20] }, errUnsupported, "shorter"},
		{"value outside frame", nil, func(f []byte) []byte { le.PutUint32(f[inHeaderSize+28:], 1<<20); return f }, errUnsupported, "outside"},
		{"too many records", nil, func(f []byte) []byte { le.PutUint32(f[16:], 1000); return f }, errUnsupported, "inconsistent"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.proc
			if p == nil {
				p = func(*Batch) error { return nil }
			}
			withModule(t, testMeta, p)
			frame := encodeFrame([]LocalRecord{{Value: []byte("v")}})
			if tc.frame != nil {
				frame = tc.frame(frame)
			}
			copy(reserve(uint32(len(frame))), frame)
			if code := initialize(0); code != 0 {
				t.Fatalf("init: %s", mod.lastErr)
			}
			copy(reserve(uint32(len(frame))), frame)
			res, code := process(uint32(len(frame)))
			if code != tc.wantCode || res != nil {
				t.Fatalf("process = (%d bytes, %d), want code %d", len(res), code, tc.wantCode)
			}
			if !strings.Contains(string(mod.lastErr), tc.wantMsg) {
				t.Fatalf("last error %q, want it to mention %q", mod.lastErr, tc.wantMsg)
			}
			// The instance stays usable after a batch error.
			good := encodeFrame([]LocalRecord{{Value: []byte("v")}})
			mod.proc = ProcessFunc(func(*Batch) error { return nil })
			copy(reserve(uint32(len(good))), good)
			if _, code := process(uint32(len(good))); code != 0 || len(mod.lastErr) != 0 {
				t.Fatalf("next batch failed: %d %s", code, mod.lastErr)
			}
		})
	}
}

func TestConfigAndInit(t *testing.T) {
	type conf struct {
		Max    float64  `json:"max"`
		Fields []string `json:"fields"`
	}
	tests := []struct {
		name    string
		config  string
		want    conf
		wantErr string
	}{
		{"empty object", `{}`, conf{}, ""},
		{"no config", ``, conf{}, ""},
		{"values", `{"max": 2.5, "fields": ["a","b.c"]}`, conf{Max: 2.5, Fields: []string{"a", "b.c"}}, ""},
		{"unknown field", `{"maks": 1}`, conf{}, "unknown field"},
		{"wrong type", `{"max": "x"}`, conf{}, "config:"},
		{"trailing", `{} {}`, conf{}, "trailing"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got conf
			withModule(t, testMeta, ProcessFunc(func(*Batch) error { return nil }), OnInit(func() error {
				return Config(&got)
			}))
			copy(reserve(uint32(len(tc.config))), tc.config)
			code := initialize(uint32(len(tc.config)))
			if tc.wantErr != "" {
				if code == 0 || !strings.Contains(string(mod.lastErr), tc.wantErr) {
					t.Fatalf("init = %d (%s), want an error mentioning %q", code, mod.lastErr, tc.wantErr)
				}
				return
			}
			if code != 0 {
				t.Fatalf("init failed: %s", mod.lastErr)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("config = %+v, want %+v", got, tc.want)
			}
			// The config is a copy: overwriting the input buffer does not change it.
			copy(reserve(1), bytes.Repeat([]byte("x"), len(tc.config)))
			if string(ConfigBytes()) != tc.config {
				t.Fatalf("ConfigBytes = %q after the buffer was reused", ConfigBytes())
			}
		})
	}
}

func TestHelpers(t *testing.T) {
	in := []LocalRecord{{Value: []byte("ok")}, {Value: []byte("bad")}, {Value: []byte("other")}}
	t.Run("validate", func(t *testing.T) {
		withModule(t, testMeta, Validate(func(r Record) error {
			switch string(r.Value) {
			case "bad":
				return Rejectf(CodeSchema, "value: %s is bad", r.Value)
			case "other":
				return errors.New("plain error")
			}
			return nil
		}))
		got, err := RunLocal(nil, in)
		if err != nil {
			t.Fatal(err)
		}
		want := []LocalOutcome{{Action: ActionPass},
			{Action: ActionReject, Code: CodeSchema, Reason: "value: bad is bad"},
			{Action: ActionReject, Code: CodeUnspecified, Reason: "plain error"}}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("got %+v\nwant %+v", got, want)
		}
	})
	t.Run("filter", func(t *testing.T) {
		withModule(t, testMeta, Filter(func(r Record) bool { return string(r.Value) == "ok" }))
		got, err := RunLocal(nil, in)
		if err != nil {
			t.Fatal(err)
		}
		want := []LocalOutcome{{Action: ActionPass}, {Action: ActionDrop}, {Action: ActionDrop}}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("got %+v\nwant %+v", got, want)
		}
	})
	t.Run("map", func(t *testing.T) {
		withModule(t, testMeta, Map(func(r Record, dst []byte) ([]byte, error) {
			if string(r.Value) == "bad" {
				dst = append(dst, "partial output that must vanish"...)
				return dst, Rejectf(CodeInvalidInput, "cannot map")
			}
			return append(append(dst, '<'), append(r.Value, '>')...), nil
		}))
		got, err := RunLocal(nil, in)
		if err != nil {
			t.Fatal(err)
		}
		want := []LocalOutcome{
			{Action: ActionEmit, Emitted: []LocalEmitted{{Timestamp: NoTimestamp, HeadersInherited: true, Port: "main", KeyInherited: true, Value: []byte("<ok>")}}},
			{Action: ActionReject, Code: CodeInvalidInput, Reason: "cannot map"},
			{Action: ActionEmit, Emitted: []LocalEmitted{{Timestamp: NoTimestamp, HeadersInherited: true, Port: "main", KeyInherited: true, Value: []byte("<other>")}}},
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("got %+v\nwant %+v", got, want)
		}
	})
}

func TestEmitRecord(t *testing.T) {
	withModule(t, testMeta, ProcessFunc(func(b *Batch) error {
		b.EmitRecord(0, Out{Value: []byte("inherit all")})
		b.EmitRecord(0, Out{Port: "alerts", KeyNull: true, Value: []byte("null key"), Timestamp: 42, HasTimestamp: true})
		b.EmitRecord(0, Out{Key: []byte("k"), Value: []byte("new headers"), Headers: []Header{{[]byte("a"), []byte("1")}, {[]byte("b"), nil}}})
		b.EmitRecord(0, Out{Key: []byte{}, Value: nil, Headers: []Header{}})
		return nil
	}))
	got, err := RunLocal(nil, []LocalRecord{{Key: []byte("in"), Value: []byte("x"), Timestamp: 7}})
	if err != nil {
		t.Fatal(err)
	}
	want := []LocalOutcome{{Action: ActionEmit, Emitted: []LocalEmitted{
		{Port: "main", KeyInherited: true, Value: []byte("inherit all"), Timestamp: NoTimestamp, HeadersInherited: true},
		{Port: "alerts", KeyNull: true, Value: []byte("null key"), Timestamp: 42, HeadersInherited: true},
		{Port: "main", Key: []byte("k"), Value: []byte("new headers"), Timestamp: NoTimestamp, Headers: [][2]string{{"a", "1"}, {"b", ""}}},
		{Port: "main", Key: []byte{}, Value: []byte{}, Timestamp: NoTimestamp},
	}}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
}

// A validator that passes or rejects with constant reasons allocates nothing per batch once the
// buffers have grown: the frame is read in place and the result frame buffer is reused.
func TestProcessDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates on its own; this test runs in the plain test pass")
	}
	withModule(t, testMeta, ProcessFunc(func(b *Batch) error {
		for i := 0; i < b.Len(); i++ {
			if len(b.Record(i).Value)%2 == 1 {
				b.Reject(i, CodeSchema, "odd length")
			}
		}
		return nil
	}))
	recs := make([]LocalRecord, 256)
	for i := range recs {
		recs[i] = LocalRecord{Value: bytes.Repeat([]byte("x"), i%7+90)}
	}
	frame := encodeFrame(recs)
	copy(reserve(uint32(len(frame))), frame)
	if _, code := process(uint32(len(frame))); code != 0 {
		t.Fatal(string(mod.lastErr))
	}
	allocs := testing.AllocsPerRun(50, func() {
		if _, code := process(uint32(len(frame))); code != 0 {
			t.Fatal(string(mod.lastErr))
		}
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per batch, want 0", allocs)
	}
}
