// Command v2plugin stands for a plugin built against a future SDK: it completes the go-plugin
// handshake but speaks only plugin protocol version 2.
package main

import (
	"context"

	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/sluicehq/sluice/sdk/go/protocol"
	pb "github.com/sluicehq/sluice/sdk/go/protocol/pluginv1"
)

type glue struct {
	goplugin.NetRPCUnsupportedPlugin
}

func (glue) GRPCServer(_ *goplugin.GRPCBroker, s *grpc.Server) error {
	pb.RegisterConnectorServer(s, pb.UnimplementedConnectorServer{})
	return nil
}

func (glue) GRPCClient(context.Context, *goplugin.GRPCBroker, *grpc.ClientConn) (any, error) {
	return nil, nil
}

func main() {
	goplugin.Serve(&goplugin.ServeConfig{
		HandshakeConfig:  goplugin.HandshakeConfig{ProtocolVersion: 2, MagicCookieKey: protocol.MagicCookieKey, MagicCookieValue: protocol.MagicCookieValue},
		VersionedPlugins: map[int]goplugin.PluginSet{2: {protocol.PluginName: glue{}}},
		GRPCServer:       goplugin.DefaultGRPCServer,
	})
}
