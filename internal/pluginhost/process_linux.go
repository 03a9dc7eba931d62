package pluginhost

import (
	"os/exec"
	"syscall"
)

// prepareProcess puts the plugin in a process group of its own, so that stopping it also stops
// what it started (a shell's children hold its output pipes open), and has the kernel kill the
// plugin when the host process dies, even by SIGKILL.
func prepareProcess(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
}

// killGroup kills the process group the plugin with the given pid leads.
func killGroup(pid int) {
	if pid > 0 {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	}
}
