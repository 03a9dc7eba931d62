//go:build !linux

package pluginhost

import "os/exec"

// prepareProcess does nothing here: the host kills its plugins on Close, and stopping a plugin
// waits only a bounded time for what it started to let go of its output pipes.
func prepareProcess(*exec.Cmd) {}

// killGroup does nothing where plugins get no process group of their own.
func killGroup(int) {}
