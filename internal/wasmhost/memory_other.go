//go:build !linux

package wasmhost

// Outside Linux linear memory lives in the Go heap (linearMemory's fallback): it is released by
// the garbage collector, so the bound of ABI.md section 11 is not enforced there.
func mapMemory(uint64) ([]byte, bool) { return nil, false }

func commitMemory([]byte) bool { return false }

func unmapMemory([]byte) {}
