package plugin

import (
	"net"
	"os"
	"strconv"
	"sync"

	"google.golang.org/grpc"

	"github.com/sluicehq/sluice/sdk/go/protocol"
	pb "github.com/sluicehq/sluice/sdk/go/protocol/pluginv1"
)

// serveData serves srv on the data connection the host handed the process
// (protocol.FeatureDataConnection), if it handed one, and reports whether it does. The variable
// naming it is removed from the environment, which the connectors see as the manifest granted it.
func serveData(srv pb.ConnectorServer) bool {
	v, ok := os.LookupEnv(protocol.EnvDataFD)
	if !ok {
		return false
	}
	os.Unsetenv(protocol.EnvDataFD)
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return false
	}
	f := os.NewFile(uintptr(fd), "sluice-data")
	if f == nil {
		return false
	}
	conn, err := net.FileConn(f) // a duplicate, closed on exec; the inherited descriptor goes
	f.Close()
	if err != nil {
		return false
	}
	gs := grpc.NewServer(serverOptions()...)
	pb.RegisterConnectorServer(gs, srv)
	go gs.Serve(&oneConn{conn: conn, closed: make(chan struct{})}) //nolint:errcheck // ends with the process
	return true
}

// serverOptions are the gRPC server options of both connections: large messages and windows,
// 1 MiB buffers and the batch codec.
func serverOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.MaxRecvMsgSize(protocol.MaxMessageBytes), grpc.MaxSendMsgSize(protocol.MaxMessageBytes),
		grpc.InitialWindowSize(protocol.WindowBytes), grpc.InitialConnWindowSize(protocol.WindowBytes),
		grpc.ReadBufferSize(1 << 20), grpc.WriteBufferSize(1 << 20), grpc.ForceServerCodecV2(protocol.Codec())}
}

// oneConn is a listener that accepts one connection, then waits until it is closed.
type oneConn struct {
	mu     sync.Mutex
	conn   net.Conn
	closed chan struct{}
	once   sync.Once
}

func (l *oneConn) Accept() (net.Conn, error) {
	l.mu.Lock()
	c := l.conn
	l.conn = nil
	l.mu.Unlock()
	if c != nil {
		return c, nil
	}
	<-l.closed
	return nil, net.ErrClosed
}

func (l *oneConn) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *oneConn) Addr() net.Addr { return dataAddr{} }

type dataAddr struct{}

func (dataAddr) Network() string { return "unix" }
func (dataAddr) String() string  { return "sluice-data" }
