// Package child runs one scenario of a benchmark program in a child process of its own, so that
// its CPU time and peak memory are its own.
package child

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// Run runs this program again with args, its standard error passed through, decodes the JSON
// the child prints into out, and returns the CPU time (user and system) the child used.
func Run(out any, args ...string) (time.Duration, error) {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Stderr = os.Stderr
	b, err := cmd.Output()
	if err != nil {
		return 0, err
	}
	if err := json.Unmarshal(b, out); err != nil {
		return 0, fmt.Errorf("%w: %s", err, b)
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}
