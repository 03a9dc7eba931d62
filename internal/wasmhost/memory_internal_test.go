package wasmhost

import "testing"

// A module closed while a call runs on it (Stage.Close, Host.Close) must not lose its memory under
// the call: Free waits for exit.
func TestLinearMemoryFreeWaitsForTheCall(t *testing.T) {
	lm := newLinearMemory(4 << 16)
	if !lm.platform {
		t.Skip("no mmap on this platform")
	}
	b := lm.Reallocate(1 << 16)
	if len(b) != 1<<16 || b[0] != 0 {
		t.Fatalf("first page: %d bytes", len(b))
	}
	b[1<<16-1] = 7
	lm.exit() // instantiation done
	if !lm.enter() {
		t.Fatal("enter refused on a live memory")
	}
	lm.Free() // the module is closed during the call
	if lm.freed {
		t.Fatal("memory released under a running call")
	}
	if b[1<<16-1] != 7 {
		t.Fatal("memory changed under a running call")
	}
	lm.exit()
	if !lm.freed || lm.enter() {
		t.Fatal("memory not released at the end of the call, or entered after it")
	}
	if lm.Reallocate(2<<16) != nil {
		t.Fatal("grew a released memory")
	}
	lm.Free() // idempotent
}

func TestLinearMemoryGrowsWithinItsReservation(t *testing.T) {
	lm := newLinearMemory(4 << 16)
	defer func() { lm.exit(); lm.Free() }()
	b := lm.Reallocate(1 << 16)
	b[0] = 1
	b = lm.Reallocate(3 << 16)
	if len(b) != 3<<16 || b[0] != 1 || b[3<<16-1] != 0 {
		t.Fatalf("grown memory: %d bytes, first %d, last %d", len(b), b[0], b[len(b)-1])
	}
	if lm.Reallocate(5<<16) != nil {
		t.Fatal("grew past the maximum")
	}
}

// Where mmap is not available the memory lives in the Go heap, with the same semantics.
func TestLinearMemoryGoHeapFallback(t *testing.T) {
	lm := &linearMemory{busy: true}
	b := lm.Reallocate(1 << 16)
	b[5] = 9
	b = lm.Reallocate(4 << 16)
	if len(b) != 4<<16 || b[5] != 9 || b[4<<16-1] != 0 {
		t.Fatalf("grown memory: %d bytes", len(b))
	}
	lm.exit()
	lm.Free()
	if !lm.freed || lm.Reallocate(8<<16) != nil {
		t.Fatal("not released")
	}
}
