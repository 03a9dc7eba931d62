package pluginhost

import (
	"net"
	"os"
	"syscall"
)

// dataPair returns the two ends of a new data connection (protocol.FeatureDataConnection): the
// host's, and the plugin's as a file to hand the process. Both are closed on exec; os/exec
// duplicates the plugin's end into the child without that flag.
func dataPair() (net.Conn, *os.File, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	hf := os.NewFile(uintptr(fds[0]), "sluice-data-host")
	host, err := net.FileConn(hf)
	hf.Close()
	if err != nil {
		syscall.Close(fds[1])
		return nil, nil, err
	}
	return host, os.NewFile(uintptr(fds[1]), "sluice-data-plugin"), nil
}
