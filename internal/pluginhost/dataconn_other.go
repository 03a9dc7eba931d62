//go:build !linux

package pluginhost

import (
	"errors"
	"net"
	"os"
)

// dataPair is not implemented here: plugins get no data connection, and every call goes over
// go-plugin's connection.
func dataPair() (net.Conn, *os.File, error) {
	return nil, nil, errors.New("no data connection on this platform")
}
