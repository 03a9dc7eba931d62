package protocol_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"testing"
	"time"

	"github.com/sluicehq/sluice/sdk/go/connector"
	"github.com/sluicehq/sluice/sdk/go/protocol"
)

func TestBatchRoundTrip(t *testing.T) {
	ts := time.Unix(1700000000, 123456789)
	tests := []struct {
		name string
		recs []connector.Record
	}{
		{"empty", nil},
		{"minimal", []connector.Record{{Value: []byte("v")}}},
		{"full", []connector.Record{
			{Key: []byte("k"), Value: []byte(`{"a":1}`), Time: ts,
				Headers:  []connector.Header{{Key: "h1", Value: []byte("x")}, {Key: "h1", Value: nil}},
				Position: connector.Position{Partition: "orders/3", Offset: -7, Cursor: []byte{0, 1, 2}}},
			{Value: []byte("second"), Position: connector.Position{Partition: "orders/3", Offset: 1 << 40}},
			{Value: []byte("third"), Position: connector.Position{Partition: "other"}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := protocol.AppendBatch(nil, tt.recs)
			if len(data) != protocol.BatchSize(tt.recs) {
				t.Fatalf("packed %d bytes, BatchSize said %d", len(data), protocol.BatchSize(tt.recs))
			}
			got, err := protocol.DecodeBatch(data)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.recs) {
				t.Fatalf("decoded %d records, want %d", len(got), len(tt.recs))
			}
			for i := range got {
				w := tt.recs[i]
				g := got[i]
				if !w.Time.Equal(g.Time) {
					t.Errorf("record %d time %v, want %v", i, g.Time, w.Time)
				}
				g.Time, w.Time = time.Time{}, time.Time{}
				if len(w.Headers) > 0 && w.Headers[1].Value == nil {
					w.Headers = append([]connector.Header(nil), w.Headers...)
				}
				if !reflect.DeepEqual(g, w) {
					t.Errorf("record %d = %+v, want %+v", i, g, w)
				}
			}
		})
	}
}

func TestDecodeBatchMalformed(t *testing.T) {
	good := protocol.AppendBatch(nil, []connector.Record{{Key: []byte("key"), Value: []byte("value"), Position: connector.Position{Partition: "p"}}})
	for cut := 1; cut < len(good); cut++ {
		if _, err := protocol.DecodeBatch(good[:cut]); !errors.Is(err, protocol.ErrMalformedBatch) {
			t.Fatalf("truncated at %d: err = %v, want ErrMalformedBatch", cut, err)
		}
	}
	if _, err := protocol.DecodeBatch(append(good, 0)); !errors.Is(err, protocol.ErrMalformedBatch) {
		t.Fatalf("trailing byte: err = %v", err)
	}
	if _, err := protocol.DecodeBatch([]byte{0xff, 0xff, 0xff, 0xff, 0x0f}); !errors.Is(err, protocol.ErrMalformedBatch) {
		t.Fatalf("huge count: err = %v", err)
	}
}

func TestConfigTypes(t *testing.T) {
	fields := []connector.Field{
		{Name: "n", Type: connector.TypeInt},
		{Name: "size", Type: connector.TypeByteSize},
		{Name: "f", Type: connector.TypeFloat},
		{Name: "d", Type: connector.TypeDuration},
		{Name: "obj", Type: connector.TypeObject, Fields: []connector.Field{{Name: "wait", Type: connector.TypeDuration}}},
		{Name: "list", Type: connector.TypeList, Elem: &connector.Field{Type: connector.TypeInt}},
	}
	in := connector.Config{"n": int64(3), "size": int64(64 << 20), "f": 2.5, "d": 90 * time.Second,
		"obj": map[string]any{"wait": time.Millisecond}, "list": []any{int64(1), int64(2)}, "s": "x", "extra": int64(9), "b": true}
	js, err := protocol.EncodeConfig(in)
	if err != nil {
		t.Fatal(err)
	}
	got, err := protocol.DecodeConfig(js, fields)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, in) {
		t.Fatalf("round trip:\n got %#v\nwant %#v", got, in)
	}
	if got.Duration("d") != 90*time.Second || got.Object("obj").Duration("wait") != time.Millisecond {
		t.Fatalf("durations lost: %v", got)
	}
	if _, err := protocol.DecodeConfig([]byte(`{"n": 1.5}`), fields); err == nil {
		t.Fatal("1.5 decoded as an int")
	}
}

func TestSpecRoundTrip(t *testing.T) {
	spec := connector.Spec{Name: "x", Kind: connector.KindSource, Summary: "s", Description: "d", Bounded: true,
		Fields: []connector.Field{
			{Name: "wait", Type: connector.TypeDuration, Default: 5 * time.Second, Description: "w"},
			{Name: "mode", Type: connector.TypeString, Default: "a", Enum: []string{"a", "b"}, Secret: true},
			{Name: "tags", Type: connector.TypeList, Elem: &connector.Field{Type: connector.TypeString}, Example: []any{"x"}},
			{Name: "n", Type: connector.TypeInt, Default: int64(4), Required: false},
			{Name: "auth", Type: connector.TypeObject, Required: true, Fields: []connector.Field{{Name: "token", Type: connector.TypeString, Secret: true}}},
		}}
	p, err := protocol.Spec(spec)
	if err != nil {
		t.Fatal(err)
	}
	got, err := protocol.FromSpec(p)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, spec) {
		t.Fatalf("round trip:\n got %#v\nwant %#v", got, spec)
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name  string
		err   error
		check func(error) bool
	}{
		{"nil", nil, func(e error) bool { return e == nil }},
		{"eof", fmt.Errorf("read: %w", io.EOF), func(e error) bool { return e == io.EOF }},
		{"permanent", fmt.Errorf("bad creds: %w", connector.ErrPermanent), func(e error) bool {
			return errors.Is(e, connector.ErrPermanent) && e.Error() == "bad creds: permanent error"
		}},
		{"config", &connector.ConfigError{Field: "url", Msg: "bad"}, func(e error) bool {
			var ce *connector.ConfigError
			return errors.As(e, &ce) && ce.Field == "url" && ce.Msg == "bad"
		}},
		{"plain", errors.New("boom"), func(e error) bool { return e.Error() == "boom" && !errors.Is(e, connector.ErrPermanent) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := protocol.FromError(protocol.Error(tt.err)); !tt.check(got) {
				t.Fatalf("round trip of %v gave %v", tt.err, got)
			}
		})
	}
}

func BenchmarkBatch(b *testing.B) {
	recs := make([]connector.Record, 8192)
	for i := range recs {
		recs[i] = connector.Record{Key: fmt.Appendf(nil, "%d", i), Value: make([]byte, 100), Position: connector.Position{Partition: "p", Offset: int64(i)}}
	}
	b.SetBytes(int64(len(protocol.AppendBatch(nil, recs))))
	for range b.N {
		data := protocol.AppendBatch(make([]byte, 0, protocol.BatchSize(recs)), recs)
		if _, err := protocol.DecodeBatch(data); err != nil {
			b.Fatal(err)
		}
	}
}

func benchRecords() []connector.Record {
	recs := make([]connector.Record, 8192)
	for i := range recs {
		recs[i] = connector.Record{Key: fmt.Appendf(nil, "%d", i), Value: make([]byte, 100), Position: connector.Position{Partition: "p", Offset: int64(i)}}
	}
	return recs
}

func BenchmarkAppendBatch(b *testing.B) {
	recs := benchRecords()
	b.SetBytes(int64(len(protocol.AppendBatch(nil, recs))))
	var buf []byte
	for range b.N {
		buf = protocol.AppendBatch(buf[:0], recs)
	}
}

func BenchmarkDecodeBatch(b *testing.B) {
	data := protocol.AppendBatch(nil, benchRecords())
	b.SetBytes(int64(len(data)))
	for range b.N {
		if _, err := protocol.DecodeBatch(data); err != nil {
			b.Fatal(err)
		}
	}
}

// Decoding into the slice of an earlier batch leaves nothing of that batch behind.
func TestDecodeBatchIntoReusedSlice(t *testing.T) {
	full := []connector.Record{{Key: []byte("k"), Value: []byte("a"), Time: time.Unix(1, 2),
		Headers:  []connector.Header{{Key: "h", Value: []byte("x")}},
		Position: connector.Position{Partition: "p", Offset: 5, Cursor: []byte{9}}}, {Value: []byte("b")}}
	bare := []connector.Record{{Value: []byte("c")}}
	dst, err := protocol.DecodeBatchInto(nil, protocol.AppendBatch(nil, full))
	if err != nil {
		t.Fatal(err)
	}
	got, err := protocol.DecodeBatchInto(dst, protocol.AppendBatch(nil, bare))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := protocol.DecodeBatch(protocol.AppendBatch(nil, bare))
	if &got[0] != &dst[0] || !reflect.DeepEqual(got, want) {
		t.Fatalf("decoded into the old slice: %+v, want %+v (in the same memory)", got, want)
	}
}

func BenchmarkDecodeBatchInto(b *testing.B) {
	data := protocol.AppendBatch(nil, benchRecords())
	b.SetBytes(int64(len(data)))
	var recs []connector.Record
	for range b.N {
		var err error
		if recs, err = protocol.DecodeBatchInto(recs, data); err != nil {
			b.Fatal(err)
		}
	}
}

// Short records take the decoder's fast path, others the general one: a batch mixing them
// round-trips, and no change of a single byte makes decoding panic or read past the batch.
func TestDecodeBatchFastPathMixed(t *testing.T) {
	long := bytes.Repeat([]byte("v"), 200)
	recs := []connector.Record{
		{Key: []byte("k"), Value: []byte("short"), Position: connector.Position{Partition: "p", Offset: 1}},
		{Value: long, Position: connector.Position{Partition: "p", Offset: 2}},
		{Value: []byte("timed"), Time: time.Unix(5, 6), Position: connector.Position{Partition: "q", Offset: 3}},
		{Position: connector.Position{Partition: "q", Offset: 4}},
		{Key: long, Value: []byte("x"), Position: connector.Position{Offset: 5, Cursor: []byte{1}}},
	}
	data := protocol.AppendBatch(nil, recs)
	got, err := protocol.DecodeBatch(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(recs) {
		t.Fatalf("%d records, want %d", len(got), len(recs))
	}
	for i := range recs {
		w, g := recs[i], got[i]
		if !bytes.Equal(g.Key, w.Key) || !bytes.Equal(g.Value, w.Value) || !g.Time.Equal(w.Time) ||
			g.Position.Partition != w.Position.Partition || g.Position.Offset != w.Position.Offset ||
			!bytes.Equal(g.Position.Cursor, w.Position.Cursor) {
			t.Fatalf("record %d = %+v, want %+v", i, g, w)
		}
	}
	for i := range data {
		for _, v := range []byte{0, 1, 0x7f, 0x80, 0xff, data[i] + 1, data[i] - 1} {
			mut := bytes.Clone(data)
			mut[i] = v
			recs, err := protocol.DecodeBatch(mut[:len(mut):len(mut)])
			if err != nil {
				continue
			}
			for _, r := range recs {
				if len(r.Key)+len(r.Value) > len(mut) {
					t.Fatalf("byte %d = %#x: a record larger than the batch", i, v)
				}
			}
		}
	}
}
