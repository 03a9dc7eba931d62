package wasmhost

import "syscall"

// mapMemory reserves n bytes of address space outside the Go heap without committing any: the
// pages are inaccessible until commitMemory, count towards the process's RSS only once written,
// and go back to the system at once on unmapMemory, without waiting for a garbage collection.
func mapMemory(n uint64) ([]byte, bool) {
	if n == 0 || n > 1<<32 {
		return nil, false
	}
	b, err := syscall.Mmap(-1, 0, int(n), syscall.PROT_NONE, syscall.MAP_PRIVATE|syscall.MAP_ANON|syscall.MAP_NORESERVE)
	if err != nil {
		return nil, false
	}
	return b, true
}

// commitMemory makes b (page-aligned, inside a mapping) readable and writable. Fresh pages read
// as zero, as memory.grow requires.
func commitMemory(b []byte) bool {
	return syscall.Mprotect(b, syscall.PROT_READ|syscall.PROT_WRITE) == nil
}

func unmapMemory(b []byte) { _ = syscall.Munmap(b) }
