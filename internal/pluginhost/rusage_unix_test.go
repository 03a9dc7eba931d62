//go:build unix

package pluginhost

import (
	"syscall"
	"time"
)

// cpuTimes returns the CPU time (user and system) used so far by this process and by its
// children that have been waited for (plugin processes, once stopped).
func cpuTimes() (self, children time.Duration) {
	var s, c syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &s)
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &c)
	return rusageTime(&s), rusageTime(&c)
}

func rusageTime(r *syscall.Rusage) time.Duration {
	return time.Duration(r.Utime.Nano() + r.Stime.Nano())
}
