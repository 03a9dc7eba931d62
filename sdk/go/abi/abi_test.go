package abi

import (
	"encoding/binary"
	"errors"
	"math/rand"
	"strings"
	"testing"
)

// result builds a TFR1 frame: dispositions, output descriptors and a data tail.
func result(nIn uint32, disps [][12]byte, outs [][48]byte, data []byte) []byte {
	le := binary.LittleEndian
	b := make([]byte, 32)
	le.PutUint32(b[0:], OutMagic)
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

// decodeAll decodes res for nIn inputs and nPorts ports and lists the dispositions seen.
func decodeAll(res []byte, nIn, nPorts int) ([]Disposition, error) {
	got := make([]Disposition, nIn)
	actions, err := DecodeResult(res, nIn, nPorts, nil, func(i int, d *Disposition) {
		c := *d
		c.Outputs = append([]Output(nil), d.Outputs...)
		got[i] = c
	})
	if err != nil {
		return nil, err
	}
	if len(actions) != nIn {
		panic("one action per input")
	}
	for i, a := range actions {
		got[i].Action = a
	}
	return got, nil
}

func TestDecodeResultValid(t *testing.T) {
	var o1, o2 [48]byte
	binary.LittleEndian.PutUint64(o1[0:], 1<<63) // NoTimestamp
	binary.LittleEndian.PutUint32(o1[20:], Inherit)
	binary.LittleEndian.PutUint32(o1[36:], Inherit)
	binary.LittleEndian.PutUint64(o2[0:], 1700000000000)
	binary.LittleEndian.PutUint32(o2[40:], 1)
	binary.LittleEndian.PutUint32(o2[44:], FlagKeyNull)
	frame := result(3, [][12]byte{disp(0, 0, 0, 0), disp(2, 0, 0, 2), disp(3, 7, 0, 0)}, [][48]byte{o1, o2}, nil)
	// Point the reason and the values at a data tail.
	tail := uint32(len(frame))
	frame = append(frame, "whyab"...)
	binary.LittleEndian.PutUint32(frame[32+2*12+4:], tail)
	binary.LittleEndian.PutUint32(frame[32+2*12+8:], 3)
	outs := 32 + 3*12
	binary.LittleEndian.PutUint32(frame[outs+24:], tail+3)
	binary.LittleEndian.PutUint32(frame[outs+28:], 1)
	binary.LittleEndian.PutUint32(frame[outs+48+24:], tail+4)
	binary.LittleEndian.PutUint32(frame[outs+48+28:], 1)
	got, err := decodeAll(frame, 3, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].Action != Pass || got[1].Action != Emit || got[2].Action != Reject {
		t.Fatalf("dispositions %+v", got)
	}
	if r := got[2]; r.Code != 7 || string(r.Reason) != "why" {
		t.Fatalf("reject %+v", r)
	}
	e := got[1].Outputs
	if len(e) != 2 || !e[0].KeyInherit || !e[0].HeadersInherit || e[0].TimeMs != NoTimestamp || string(e[0].Value) != "a" ||
		e[1].Port != 1 || !e[1].KeyNull || e[1].Key != nil || e[1].TimeMs != 1700000000000 || string(e[1].Value) != "b" {
		t.Fatalf("outputs %+v", e)
	}
}

func TestDecodeResultInvalid(t *testing.T) {
	ok := result(2, [][12]byte{disp(0, 0, 0, 0), disp(1, 0, 0, 0)}, nil, nil)
	if got, err := decodeAll(ok, 2, 1); err != nil || len(got) != 2 {
		t.Fatalf("valid frame: %v %+v", err, got)
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
			_, err := decodeAll(tc.frame, 2, 1)
			if !errors.Is(err, ErrInvalidResult) {
				t.Fatalf("err = %v, want an invalid result frame", err)
			}
			if n := strings.Count(err.Error(), "invalid result frame"); n != 1 {
				t.Fatalf("err = %v: the prefix appears %d times", err, n)
			}
		})
	}
}

// TestDecodeResultNeverPanics feeds mutated frames to the decoder: a guest controls every byte.
func TestDecodeResultNeverPanics(t *testing.T) {
	var o [48]byte
	binary.LittleEndian.PutUint32(o[20:], Inherit)
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
		_, _ = decodeAll(f, 3, 2)
	}
}

func TestEachHeader(t *testing.T) {
	b := make([]byte, HeadersSize(2, 4))
	n := PutHeaders(b, 2)
	n += PutHeader(b[n:], "a", []byte("b"))
	n += PutHeader(b[n:], "cd", []byte(""))
	if n != len(b) {
		t.Fatalf("wrote %d of %d bytes", n, len(b))
	}
	var got []string
	if err := EachHeader(b, func(k, v []byte) { got = append(got, string(k)+"="+string(v)) }); err != nil || strings.Join(got, ",") != "a=b,cd=" {
		t.Fatalf("%v %v", got, err)
	}
	if err := EachHeader(b[:len(b)-1], func(_, _ []byte) {}); err == nil {
		t.Fatal("a truncated list was accepted")
	}
}

// sharedOutputs builds a result of nIn EMIT dispositions that each name all nOut OutDescs, every
// OutDesc naming the one data (at the descriptor's offset/length pair at field: 24 for the value,
// 32 for the headers) and inheriting the key.
func sharedOutputs(nIn, nOut int, data []byte, field int) []byte {
	le := binary.LittleEndian
	var o [48]byte
	ts := int64(NoTimestamp)
	le.PutUint64(o[0:], uint64(ts))
	le.PutUint32(o[20:], Inherit)
	le.PutUint32(o[field+4:], uint32(len(data)))
	outs := make([][48]byte, nOut)
	for k := range outs {
		outs[k] = o
	}
	disps := make([][12]byte, nIn)
	for i := range disps {
		disps[i] = disp(2, 0, 0, uint32(nOut))
	}
	f := result(uint32(nIn), disps, outs, data)
	for k := 0; k < nOut; k++ {
		le.PutUint32(f[32+12*nIn+48*k+field:], uint32(len(f)-len(data)))
	}
	return f
}

// wantRefused checks that DecodeResult refuses f with an error containing want before calling
// its callback.
func wantRefused(t *testing.T, f []byte, nIn int, want string) {
	t.Helper()
	calls := 0
	_, err := DecodeResult(f, nIn, 1, nil, func(int, *Disposition) { calls++ })
	if !errors.Is(err, ErrInvalidResult) || !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %v, want %q", err, want)
	}
	if calls != 0 {
		t.Fatalf("f called %d times before the frame was refused", calls)
	}
}

// A result whose EMIT dispositions all name the same OutDescs, which all name the same value
// bytes, is refused before anything is handed out: the records and bytes it would make the host
// copy count every repeat.
func TestDecodeResultBoundsRepeatedOutputs(t *testing.T) {
	value := make([]byte, 4096)
	build := func(nIn, nOut int) []byte { return sharedOutputs(nIn, nOut, value, 24) }
	tests := []struct {
		name      string
		nIn, nOut int
		want      string
	}{
		{"records", 40, 2000, "emitted records over the limit of 65536"},        // 80,000 records of 4 KiB
		{"bytes", 300, 100, "emitted bytes over the limit of 67108864"},         // 30,000 records, 120 MiB
		{"bytes from few outputs", 2, 10000, "emitted bytes over the limit of"}, // 20,000 records, 80 MiB
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wantRefused(t, build(tc.nIn, tc.nOut), tc.nIn, tc.want)
		})
	}
	// One-to-many within the bounds stays valid, with or without shared bytes.
	if got, err := decodeAll(build(16, 1000), 16, 1); err != nil || len(got[15].Outputs) != 1000 {
		t.Fatalf("16 x 1000 outputs of 4 KiB: %v", err)
	}
	// A smaller bound (a host passes its guest's memory size) applies to the bytes.
	if _, err := DecodeResultWithin(build(2, 200), 2, 1, 1<<20, nil, func(int, *Disposition) {}); !errors.Is(err, ErrInvalidResult) {
		t.Fatalf("1.6 MiB of outputs under a 1 MiB bound: err = %v", err)
	}
}

// TestDecodeResultChargesHeaders covers emitted records with many empty headers: 8 encoded bytes
// each, but a header costs the host far more, so HeaderCost is charged for each and an output
// may have at most MaxOutHeaders.
func TestDecodeResultChargesHeaders(t *testing.T) {
	le := binary.LittleEndian
	build := func(nIn, nOut, nHeaders int) []byte {
		hdrs := make([]byte, 4+8*nHeaders) // nHeaders headers with empty keys and values
		le.PutUint32(hdrs, uint32(nHeaders))
		return sharedOutputs(nIn, nOut, hdrs, 32)
	}
	tests := []struct {
		name               string
		nIn, nOut, headers int
		want               string
	}{
		// One output of 100,000 empty headers: 800 KB encoded, about 5 MB on the host.
		{"headers per output", 1, 1, 100000, "100000 headers, over the limit of 1024"},
		// 2,000 records of 1,024 empty headers: 16 MB encoded, 114 MB charged.
		{"empty headers charged", 2, 1000, 1024, "emitted bytes over the limit of 67108864"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wantRefused(t, build(tc.nIn, tc.nOut, tc.headers), tc.nIn, tc.want)
		})
	}
	// Within the bounds: 1,024 headers on each of 100 outputs (5.7 MB charged).
	if got, err := decodeAll(build(1, 100, MaxOutHeaders), 1, 1); err != nil || len(got[0].Outputs) != 100 {
		t.Fatalf("100 outputs of 1,024 empty headers: %v", err)
	}
}
