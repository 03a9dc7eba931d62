//go:build !linux

package pluginhost

import "os/exec"

// dieWithParent is a no-op where the kernel offers no parent-death signal; the host kills its
// plugins on Close.
func dieWithParent(*exec.Cmd) {}
