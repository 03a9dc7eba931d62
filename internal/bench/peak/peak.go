// Package peak reads a benchmark child's own peak memory.
package peak

import (
	"fmt"
	"os"
	"strings"
)

// RSS is this process's peak resident set in bytes (VmHWM of /proc/self/status), 0 where the
// file is missing. A benchmark child reports it itself: the parent's rusage of a child counts the
// parent's pages too (os/exec's vfork'd child is charged the parent's resident set before exec), so
// every child would show at least the parent's peak.
func RSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(v), "%d", &kb)
			return kb * 1024
		}
	}
	return 0
}
