//go:build !linux

package pluginhost

import "time"

// selfCPU, procCPU, resetPeakRSS and peakRSS read /proc and getrusage as Linux has them; on
// other platforms nothing is measured.
func selfCPU() time.Duration    { return 0 }
func procCPU(int) time.Duration { return 0 }
func resetPeakRSS() bool        { return false }
func peakRSS(int) int64         { return 0 }
