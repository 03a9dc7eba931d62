package aggregate

import (
	"bytes"
	"cmp"
	"container/heap"
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"
	"unsafe"

	"github.com/sluicehq/sluice/sdk/go/template"
)

// timeFrom's fast path for integers gives what strconv does, and leaves to it what it cannot
// parse exactly.
func TestSmallIntAgreesWithParseInt(t *testing.T) {
	for _, s := range []string{"0", "-0", "1", "-1", "1767225600000", "-1767225600000", "999999999999999999",
		"-999999999999999999", "1000000000000000000", "9223372036854775807", "-9223372036854775808", "12.5", "1e3", "", "-", "1a"} {
		n, ok := smallInt([]byte(s))
		want, err := strconv.ParseInt(s, 10, 64)
		if ok && (err != nil || n != want) {
			t.Errorf("smallInt(%q) = %d, strconv %d (%v)", s, n, want, err)
		}
		if !ok && len(s) <= 19 && err == nil && len(s) > 0 && s[0] != '-' && len(s) <= 18 {
			t.Errorf("smallInt(%q) refused a small integer", s)
		}
	}
}

// The key and the time found in one pass give the same keys, times and errors as a lookup of
// each.
func TestKeyAndTimeInOnePass(t *testing.T) {
	key, tm := mustPath("$.commodity"), mustPath("$.ts")
	paths := [][]string{key, tm}
	found := make([]template.Field, 2)
	for _, v := range []string{
		`{"commodity":"corn","ts":1767225600000,"price":1}`, `{"ts":"2026-01-01T00:00:01.5Z","commodity":{"a": 1}}`,
		`{"commodity":7,"ts":12.9}`, `{"commodity":null,"ts":1}`, `{"ts":1}`, `{"commodity":"x"}`, `{"commodity":"x","ts":"soon"}`,
		`{"commodity":"x","ts":1`, `{"commodity":"x" "ts":1}`, `[1]`, `"s"`, ``, `{"commodity":"` + string(make([]byte, 200)) + `","ts":1}`,
		`{"commodity":"` + fmt.Sprint(make([]int, 40)) + `","ts":-5}`,
	} {
		template.LookupAll([]byte(v), paths, found)
		k1, e1 := keyFrom(nil, found[0].Raw, found[0].OK, found[0].Err)
		k2, e2 := keyOf(nil, []byte(v), key)
		t1, f1 := timeFrom(found[1].Raw, found[1].OK, found[1].Err)
		t2, f2 := timeOf([]byte(v), tm)
		if string(k1) != string(k2) || fmt.Sprint(e1) != fmt.Sprint(e2) || t1 != t2 || fmt.Sprint(f1) != fmt.Sprint(f2) {
			t.Errorf("%q: one pass gave key %q (%v) time %d (%v); separate lookups key %q (%v) time %d (%v)", v, k1, e1, t1, f1, k2, e2, t2, f2)
		}
	}
}

// A slot holds a short key in itself and stays in its size class.
func TestSlotKeyInline(t *testing.T) {
	if n := unsafe.Sizeof(slot{}); n != 144 {
		t.Errorf("a slot is %d bytes, want 144 (a size class)", n)
	}
	for _, k := range []string{"", "corn", string(make([]byte, inlineKey)), string(make([]byte, inlineKey+1))} {
		buf := []byte(k)
		s := newSlot(unsafe.String(unsafe.SliceData(buf), len(buf)), 1, 2, false, 3) // aliases buf, as Process's key does
		for i := range buf {
			buf[i] = 'x'
		}
		if s.key != k {
			t.Errorf("slot key %q, want %q", s.key, k)
		}
	}
}

// endHeap's push and pop give container/heap's order, equal ends included.
func TestEndHeapOrderIsContainerHeaps(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var mine, std endHeap
	for step := range 20000 {
		if rng.IntN(3) > 0 || len(mine) == 0 {
			e := endEntry{end: int64(rng.IntN(50)), s: &slot{start: int64(step)}}
			mine.push(e)
			heap.Push(&std, e)
			continue
		}
		a, b := mine.pop(), heap.Pop(&std).(endEntry)
		if a.end != b.end || a.s != b.s {
			t.Fatalf("step %d: pop gave end %d (slot %d), container/heap end %d (slot %d)", step, a.end, a.s.start, b.end, b.s.start)
		}
	}
}

// sortKeys order store keys as bytes.Compare does whenever they differ.
func TestSortKeyOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	key := func() []byte {
		k := make([]byte, rng.IntN(20))
		for i := range k {
			k[i] = []byte{0, 1, 'a', 'b', 0xff}[rng.IntN(5)]
		}
		return k
	}
	for range 100000 {
		a, b := key(), key()
		x, y := sortKeyOf(a, 0), sortKeyOf(b, 1)
		c := cmp.Or(cmp.Compare(x.hi, y.hi), cmp.Compare(x.lo, y.lo))
		if c != 0 && c != bytes.Compare(a, b) {
			t.Fatalf("%x and %x: sortKey order %d, bytes.Compare %d", a, b, c, bytes.Compare(a, b))
		}
	}
}
