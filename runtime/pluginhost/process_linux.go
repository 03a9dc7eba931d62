package pluginhost

import (
	"os/exec"
	"syscall"
)

// dieWithParent has the kernel kill the plugin when the host process dies, even by SIGKILL.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
