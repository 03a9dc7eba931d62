package kafka

import (
	"strconv"
	"testing"
)

// TestAppendNext: the incremented text equals strconv's for every number around the carries.
func TestAppendNext(t *testing.T) {
	for _, n := range []int64{0, 1, 8, 9, 10, 19, 99, 100, 998, 999, 1000, 123456789, 999999999, 9223372036854775806} {
		dst := []byte("x")
		got := appendNext(dst, []byte(strconv.FormatInt(n, 10)))
		if want := "x" + strconv.FormatInt(n+1, 10); string(got) != want {
			t.Fatalf("appendNext(%d) = %q, want %q", n, got, want)
		}
	}
}

// TestRecordPoolClasses: a slice taken is empty with room for what was asked, rounded up to its
// size class, and slices of any size can be given back.
func TestRecordPoolClasses(t *testing.T) {
	var p recordPool
	for _, n := range []int{0, 1, 2, 3, 1000, 1024, 1025, 1 << 22, 1<<23 + 1} {
		recs := p.GetRecords(n)
		if cap(recs) < n || len(recs) != 0 {
			t.Fatalf("GetRecords(%d): len %d cap %d", n, len(recs), cap(recs))
		}
		p.PutRecords(recs)
	}
	recs := p.GetRecords(600)
	p.PutRecords(recs[:cap(recs)])
	if again := p.GetRecords(1000); cap(again) != 1024 {
		t.Fatalf("GetRecords(1000) after a 1024 was given back: cap %d", cap(again))
	}
}
