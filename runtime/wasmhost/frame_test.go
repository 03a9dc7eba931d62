package wasmhost

import (
	"encoding/binary"
	"errors"
	"math/rand"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/runtime/transform"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// result builds a TFR1 frame: dispositions, output descriptors and a data tail.
func result(nIn uint32, disps [][12]byte, outs [][48]byte, data []byte) []byte {
	le := binary.LittleEndian
	b := make([]byte, 32)
	le.PutUint32(b[0:], outMagic)
	le.PutUint16(b[4:], 32)
	le.PutUint16(b[6:], 48)
	le.PutUint32(b[8:], nIn)
	le.PutUint32(b[12:], 32)
	for _, d := range disps {
		b = append(b, d[:]...)
	}
	le.PutUint32(b[16:], uint32(len(outs)))
	le.PutUint32(b[20:], uint32(len(b)))
	for _, o := range outs {
		b = append(b, o[:]...)
	}
	return append(b, data...)
}

func disp(action byte, code uint16, a, b uint32) (d [12]byte) {
	d[0] = action
	binary.LittleEndian.PutUint16(d[2:], code)
	binary.LittleEndian.PutUint32(d[4:], a)
	binary.LittleEndian.PutUint32(d[8:], b)
	return d
}

func TestDecodeResultInvalid(t *testing.T) {
	recs := make([]connector.Record, 2)
	ok := result(2, [][12]byte{disp(0, 0, 0, 0), disp(1, 0, 0, 0)}, nil, nil)
	var out transform.Result
	if err := decodeResult(ok, recs, 0, []string{"main"}, &out); err != nil || len(out.Actions) != 2 {
		t.Fatalf("valid frame: %v %+v", err, out)
	}
	var badPort [48]byte
	binary.LittleEndian.PutUint32(badPort[40:], 7)
	tests := []struct {
		name  string
		frame []byte
	}{
		{"short", ok[:20]},
		{"bad magic", append([]byte("XXXX"), ok[4:]...)},
		{"n_in mismatch", result(3, [][12]byte{disp(0, 0, 0, 0), disp(0, 0, 0, 0), disp(0, 0, 0, 0)}, nil, nil)},
		{"dispositions outside", ok[:40]},
		{"unknown action", result(2, [][12]byte{disp(9, 0, 0, 0), disp(0, 0, 0, 0)}, nil, nil)},
		{"reason outside", result(2, [][12]byte{disp(3, 1, 1000, 5), disp(0, 0, 0, 0)}, nil, nil)},
		{"emit range outside", result(2, [][12]byte{disp(2, 0, 0, 2), disp(0, 0, 0, 0)}, [][48]byte{{}}, nil)},
		{"bad port", result(2, [][12]byte{disp(2, 0, 0, 1), disp(0, 0, 0, 0)}, [][48]byte{badPort}, nil)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := transform.Result{Actions: []transform.Action{transform.Drop}}
			err := decodeResult(tc.frame, recs, 0, []string{"main"}, &out)
			if !errors.Is(err, errInvalidResult) {
				t.Fatalf("err = %v, want an invalid result frame", err)
			}
			if n := strings.Count(err.Error(), "invalid result frame"); n != 1 {
				t.Fatalf("err = %v: the prefix appears %d times", err, n)
			}
			if len(out.Actions) != 1 || len(out.Emitted) != 0 || len(out.Rejected) != 0 {
				t.Fatalf("a rejected frame changed the result: %+v", out)
			}
		})
	}
}

// TestDecodeResultNeverPanics feeds mutated frames to the decoder: a guest controls every byte.
func TestDecodeResultNeverPanics(t *testing.T) {
	recs := make([]connector.Record, 3)
	var o [48]byte
	binary.LittleEndian.PutUint32(o[20:], inheritU32)
	base := result(3, [][12]byte{disp(2, 0, 0, 2), disp(3, 4, 0, 8), disp(0, 0, 0, 0)}, [][48]byte{o, o}, []byte("reasons!"))
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 200000; i++ {
		f := append([]byte(nil), base...)
		for k := rng.Intn(4) + 1; k > 0; k-- {
			f[rng.Intn(len(f))] = byte(rng.Intn(256))
		}
		if rng.Intn(10) == 0 {
			f = f[:rng.Intn(len(f))]
		}
		var out transform.Result
		_ = decodeResult(f, recs, 0, []string{"main", "alerts"}, &out)
	}
}

func TestEncodeFrameLayout(t *testing.T) {
	recs := []connector.Record{
		{Key: []byte("k"), Value: []byte("value"), Headers: []connector.Header{{Key: "a", Value: []byte("b")}}},
		{Value: []byte("v2")},
	}
	n := frameLen(recs)
	f := make([]byte, n)
	encodeFrame(f, recs)
	le := binary.LittleEndian
	if le.Uint32(f) != inMagic || le.Uint16(f[8:]) != 40 || le.Uint16(f[10:]) != 48 || le.Uint32(f[16:]) != 2 ||
		le.Uint32(f[24:]) != 40 || le.Uint32(f[32:]) != 40+2*48 || le.Uint32(f[36:]) != uint32(n) {
		t.Fatalf("header % x", f[:40])
	}
	d0, d1 := f[40:88], f[88:136]
	get := func(d []byte, off int) []byte {
		o, l := le.Uint32(d[off:]), le.Uint32(d[off+4:])
		return f[o : o+l]
	}
	if string(get(d0, 16)) != "k" || string(get(d0, 24)) != "value" || le.Uint32(d0[44:]) != 0 || int64(le.Uint64(d0)) != tsNone {
		t.Fatalf("record 0 descriptor % x", d0)
	}
	if h := get(d0, 32); len(h) != 4+4+1+4+1 || le.Uint32(h) != 1 || string(h[8:9]) != "a" || string(h[13:14]) != "b" {
		t.Fatalf("headers % x", h)
	}
	if le.Uint32(d1[44:])&flagKeyNull == 0 || string(get(d1, 24)) != "v2" || le.Uint64(d1[8:]) != 1 {
		t.Fatalf("record 1 descriptor % x", d1)
	}
}

func TestSplitFrames(t *testing.T) {
	recs := make([]connector.Record, 10)
	for i := range recs {
		recs[i].Value = make([]byte, 100)
	}
	recs[5].Value = make([]byte, 5000)
	got := splitFrames(recs, frameCap{maxBytes: 1000, maxRecords: 3}, nil)
	want := []int{3, 5, 6, 9, 10}
	if len(got) != len(want) {
		t.Fatalf("ends %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("ends %v, want %v", got, want)
		}
	}
}

func TestSubdivide(t *testing.T) {
	tests := []struct {
		ends    []int
		k       int
		want    []int
		comment string
	}{
		{[]int{1000}, 2, []int{500, 1000}, "one frame in two"},
		{[]int{1000}, 4, []int{333, 666, 1000}, "no part under 256 records: three, not four"},
		{[]int{2048}, 4, []int{512, 1024, 1536, 2048}, "one frame in four"},
		{[]int{600}, 4, []int{300, 600}, "two parts of 300"},
		{[]int{300}, 4, []int{300}, "too small to split"},
		{[]int{4096, 5000}, 4, []int{2048, 4096, 4548, 5000}, "two frames, each in two"},
		{[]int{4096, 4300}, 4, []int{2048, 4096, 4300}, "a tail under 512 records stays whole"},
	}
	for _, tc := range tests {
		t.Run(tc.comment, func(t *testing.T) {
			got := subdivide(tc.ends, tc.k, 256)
			if len(got) != len(tc.want) {
				t.Fatalf("subdivide(%v, %d) = %v, want %v", tc.ends, tc.k, got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("subdivide(%v, %d) = %v, want %v", tc.ends, tc.k, got, tc.want)
				}
			}
		})
	}
}
