package wasmhost

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/sluicehq/sluice/runtime/transform"
	"github.com/sluicehq/sluice/sdk/go/abi"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// A frame that breaks the ABI leaves the result as it was, even after dispositions were decoded.
func TestDecodeResultLeavesOutUntouched(t *testing.T) {
	le := binary.LittleEndian
	f := make([]byte, abi.OutHeaderSize+2*abi.DispSize)
	le.PutUint32(f[0:], abi.OutMagic)
	le.PutUint16(f[4:], abi.OutHeaderSize)
	le.PutUint16(f[6:], abi.DescSize)
	le.PutUint32(f[8:], 2)
	le.PutUint32(f[12:], abi.OutHeaderSize)
	f[abi.OutHeaderSize+abi.DispSize] = 9 // record 1: unknown action, after record 0 passed
	out := transform.Result{Actions: []transform.Action{transform.Drop}}
	_, err := decodeResult(f, make([]connector.Record, 2), 0, []string{"main"}, abi.MaxResultBytes, &out)
	if !errors.Is(err, abi.ErrInvalidResult) || err.Error() != "invalid result frame: record 1: unknown action 9" {
		t.Fatalf("err = %v", err)
	}
	if len(out.Actions) != 1 || len(out.Emitted) != 0 || len(out.Rejected) != 0 {
		t.Fatalf("a rejected frame changed the result: %+v", out)
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
	if le.Uint32(f) != abi.InMagic || le.Uint16(f[8:]) != 40 || le.Uint16(f[10:]) != 48 || le.Uint32(f[16:]) != 2 ||
		le.Uint32(f[24:]) != 40 || le.Uint32(f[32:]) != 40+2*48 || le.Uint32(f[36:]) != uint32(n) {
		t.Fatalf("header % x", f[:40])
	}
	d0, d1 := f[40:88], f[88:136]
	get := func(d []byte, off int) []byte {
		o, l := le.Uint32(d[off:]), le.Uint32(d[off+4:])
		return f[o : o+l]
	}
	if string(get(d0, 16)) != "k" || string(get(d0, 24)) != "value" || le.Uint32(d0[44:]) != 0 || int64(le.Uint64(d0)) != abi.NoTimestamp {
		t.Fatalf("record 0 descriptor % x", d0)
	}
	if h := get(d0, 32); len(h) != 4+4+1+4+1 || le.Uint32(h) != 1 || string(h[8:9]) != "a" || string(h[13:14]) != "b" {
		t.Fatalf("headers % x", h)
	}
	if le.Uint32(d1[44:])&abi.FlagKeyNull == 0 || string(get(d1, 24)) != "v2" || le.Uint64(d1[8:]) != 1 {
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
