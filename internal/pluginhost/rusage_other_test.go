//go:build !unix

package pluginhost

import "time"

// cpuTimes is not measured on this platform.
func cpuTimes() (self, children time.Duration) { return 0, 0 }
