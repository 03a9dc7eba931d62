package wasmhost

import (
	"context"
	"sync"

	"github.com/tetratelabs/wazero/experimental"
)

// HostMemoryOverhead is the fixed part of the bound on a process's memory that runs WASM stages
// (ABI.md section 11): the host's own code, heap and compiled modules stay within it, and each
// live instance adds at most its memory limit on top. Instances discarded after a failure give
// their memory back to the operating system when they are closed, before their replacement is
// created, so retries and bisection do not add to the bound.
const HostMemoryOverhead = 192 << 20

// BatchOutputBytes is the output budget of one Process call of a stage whose instances have
// memoryBytes of memory each (ABI.md section 11): the emitted records it keeps, over all its frames
// and calls, are charged at their host size (connector.Record.Size: key, value and cursor bytes,
// a fixed cost per record and per header), and a call whose records would take the batch over
// the budget has an invalid result. Only kept records are charged: a call that fails copies
// nothing it keeps. The per-call bounds alone would let a guest that fails on frames of several
// records, so that bisection calls it record by record, build a batch result of n times the
// result frame cap. It is 256 MiB, or 4 times the memory limit when larger, enough for
// one-to-many transforms of real records (an explode of 20 items from 4.5 KB orders keeps about
// 90 MB for a batch of 1,024); each stage processing a batch adds it to the process's bound.
func BatchOutputBytes(memoryBytes int64) int64 { return max(256<<20, 4*memoryBytes) }

// linearMemory backs one instance's linear memory outside the Go heap (memory_linux.go) or, where
// that is not available, in it. Guest calls and host reads of guest memory run between enter and
// exit; Free during a call (Stage.Close, Host.Close) is deferred to exit, so memory is never
// released under a running call.
type linearMemory struct {
	mu       sync.Mutex
	mapping  []byte // the reservation: max bytes, of which size are usable
	size     uint64
	busy     bool
	pending  bool // Free was called while busy
	freed    bool
	platform bool // mapping comes from mapMemory and goes back through unmapMemory
}

// newLinearMemory reserves max bytes (nothing is committed yet). The memory starts busy because
// wazero runs the module's start functions before the host sees the instance.
func newLinearMemory(max uint64) *linearMemory {
	lm := &linearMemory{busy: true}
	if b, ok := mapMemory(max); ok {
		lm.mapping, lm.platform = b, true
	}
	return lm
}

// Reallocate implements experimental.LinearMemory: memory.grow to size bytes, or nil when refused.
func (lm *linearMemory) Reallocate(size uint64) []byte {
	lm.mu.Lock()
	defer lm.mu.Unlock()
	if lm.freed {
		return nil
	}
	if !lm.platform {
		// Go heap: grow by copying, as wazero's default allocator does.
		if size > uint64(cap(lm.mapping)) {
			b := make([]byte, size, max(size, 2*uint64(cap(lm.mapping))))
			copy(b, lm.mapping)
			lm.mapping = b
		}
		lm.size = size
		return lm.mapping[:size:size]
	}
	if size > uint64(len(lm.mapping)) {
		return nil
	}
	if size > lm.size {
		if !commitMemory(lm.mapping[lm.size:size]) {
			return nil
		}
		lm.size = size
	}
	return lm.mapping[:size:size]
}

// Free implements experimental.LinearMemory; wazero calls it when the module is closed.
func (lm *linearMemory) Free() {
	lm.mu.Lock()
	defer lm.mu.Unlock()
	if lm.busy {
		lm.pending = true
		return
	}
	lm.release()
}

func (lm *linearMemory) release() {
	if lm.freed {
		return
	}
	lm.freed = true
	if lm.platform {
		unmapMemory(lm.mapping)
	}
	lm.mapping = nil
}

// enter marks the start of a guest call or host access; false when the memory is released (the
// module was closed).
func (lm *linearMemory) enter() bool {
	lm.mu.Lock()
	defer lm.mu.Unlock()
	if lm.freed || lm.pending {
		return false
	}
	lm.busy = true
	return true
}

// exit ends what enter started and carries out a Free that came in meanwhile.
func (lm *linearMemory) exit() {
	lm.mu.Lock()
	defer lm.mu.Unlock()
	lm.busy = false
	if lm.pending {
		lm.release()
	}
}

// withMemoryAllocator makes the instantiation of in allocate its linear memory as a
// linearMemory kept in in.lm.
func withMemoryAllocator(ctx context.Context, in *instance) context.Context {
	return experimental.WithMemoryAllocator(ctx, experimental.MemoryAllocatorFunc(func(_, max uint64) experimental.LinearMemory {
		in.lm = newLinearMemory(max)
		return in.lm
	}))
}
