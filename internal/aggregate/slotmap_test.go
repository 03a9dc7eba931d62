package aggregate

import (
	"fmt"
	"testing"
)

// slotMap finds, removes and walks exactly the slots put in it, also when slots share a hash.
func TestSlotMap(t *testing.T) {
	sm := newSlotMap()
	want := map[slotID]*slot{}
	for i := 0; i < 2000; i++ {
		id := slotID{key: fmt.Sprintf("k%d", i%300), start: int64(i/300) * 60000}
		s := newSlot(id.key, id.start, id.start+60000, false, 0)
		id.key = s.key
		sm.put(id, s)
		want[id] = s
	}
	check := func() {
		t.Helper()
		if sm.len() != len(want) {
			t.Fatalf("len %d, want %d", sm.len(), len(want))
		}
		seen := 0
		for id, s := range sm.all {
			if want[id] != s {
				t.Fatalf("all yielded %v, not held", id)
			}
			seen++
		}
		if seen != len(want) {
			t.Fatalf("all yielded %d slots, want %d", seen, len(want))
		}
		for id, s := range want {
			if got := sm.get(id); got != s {
				t.Fatalf("get %v = %p, want %p", id, got, s)
			}
		}
	}
	check()
	// Removing while walking.
	for id := range sm.all {
		if id.start == 0 {
			sm.del(id)
			delete(want, id)
		}
	}
	check()
	if sm.get(slotID{key: "k1", start: 0}) != nil {
		t.Fatal("a removed slot is found")
	}
	// Slots that share a hash: a chain, found and removed at either end.
	a := slotID{key: "a", start: 1}
	sa := newSlot("a", 1, 2, false, 0)
	sm.put(a, sa)
	b := slotID{key: "b", start: 1}
	sb := newSlot("b", 1, 2, false, 0)
	sb.idStart, sb.next = b.start, sa
	sm.m[sm.hash(a)] = sb // b collides with a, ahead of it in the chain
	sm.n++
	if sm.get(a) != sa {
		t.Fatal("a slot behind another of the same hash is not found")
	}
	sm.del(a)
	if sm.get(a) != nil || sm.m[sm.hash(a)] != sb || sb.next != nil || sm.len() != len(want)+1 {
		t.Fatal("removing the second slot of a chain")
	}
	sm.put(a, sa) // a heads the chain again, b behind it
	if sa.next != sb {
		t.Fatal("put does not chain")
	}
	sm.del(a)
	if sm.m[sm.hash(a)] != sb || sm.len() != len(want)+1 {
		t.Fatal("removing the head of a chain")
	}
}
