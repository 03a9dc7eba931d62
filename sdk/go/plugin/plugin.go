// Package plugin turns connectors written against sdk/go/connector into a Sluice plugin binary.
//
// A plugin's main declares its connectors and calls Serve:
//
//	func main() {
//		plugin.Serve(plugin.Plugin{
//			Version:    "1.0.0",
//			Components: csv.Components(), // []connector.Component
//		})
//	}
//
// A connector.Component (a spec and its factory) is the one shape of a connector: the same values
// go into a catalog of a Sluice build to compile the connectors in, so one connector package
// serves both ways. Sluice starts the binary with hashicorp/go-plugin over gRPC (the protocol of
// sdk/go/protocol, which this package speaks for you) and one process serves one connector
// instance.
package plugin

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"

	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/sluicehq/sluice/sdk/go/connector"
	"github.com/sluicehq/sluice/sdk/go/protocol"
	pb "github.com/sluicehq/sluice/sdk/go/protocol/pluginv1"
)

// SDKVersion is the version of this SDK, reported to the host by Specs.
const SDKVersion = "0.1.0"

// Plugin declares what a plugin binary provides.
type Plugin struct {
	// Version is the plugin's own version, shown by `sluice plugins list`. Optional.
	Version string
	// Components are the plugin's sources and sinks (connector.SourceComponent,
	// connector.SinkComponent), each named uniquely within its kind.
	Components []connector.Component
}

// check reports a component that is incomplete or named twice.
func (p *Plugin) check() error {
	seen := map[string]bool{}
	for _, c := range p.Components {
		if err := c.Check(); err != nil {
			return err
		}
		key := string(c.Spec.Kind) + " " + c.Spec.Name
		if seen[key] {
			return fmt.Errorf("%s %q is declared twice", c.Spec.Kind, c.Spec.Name)
		}
		seen[key] = true
	}
	return nil
}

// component returns the component of the given kind and name, or nil.
func (p *Plugin) component(kind connector.Kind, name string) *connector.Component {
	for i := range p.Components {
		if c := &p.Components[i]; c.Spec.Kind == kind && c.Spec.Name == name {
			return c
		}
	}
	return nil
}

// Serve runs the plugin until the host stops it, then exits the process. Run by hand (without
// the host's handshake) it prints an explanation and exits with status 1. Connector loggers
// (connector.Env.Logger) write JSON lines to the original stderr, which the host bridges into its
// own log. Serve never returns.
func Serve(p Plugin) {
	logOut := os.Stderr // go-plugin later redirects os.Stderr; logs keep the real one.
	if os.Getenv(protocol.MagicCookieKey) != protocol.MagicCookieValue {
		fmt.Fprintf(os.Stderr, "This binary is a Sluice connector plugin (protocol %d); put it in the directory passed to `sluice --plugins-dir` instead of running it.\n", protocol.ProtocolVersion)
		os.Exit(1)
	}
	if err := p.check(); err != nil {
		fmt.Fprintf(os.Stderr, "plugin: %v\n", err)
		os.Exit(1)
	}
	tuneGC()
	logger := slog.New(newLogHandler(logOut, slog.LevelDebug))
	srv := NewServer(p, logger)
	srv.(*server).data = serveData(srv)
	goplugin.Serve(&goplugin.ServeConfig{
		HandshakeConfig: goplugin.HandshakeConfig{ProtocolVersion: protocol.ProtocolVersion, MagicCookieKey: protocol.MagicCookieKey, MagicCookieValue: protocol.MagicCookieValue},
		VersionedPlugins: map[int]goplugin.PluginSet{
			protocol.ProtocolVersion: {protocol.PluginName: &grpcPlugin{server: srv}},
		},
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			return grpc.NewServer(append(opts, serverOptions()...)...)
		},
		Logger: newHCLogger(logOut),
	})
	os.Exit(0)
}

// GC defaults of a plugin process, unless its environment sets GOGC or GOMEMLIMIT (a manifest
// grants them with `env: [GOGC=100]`). A plugin's live heap is small (a batch or two, bounded by
// the host's read credit and write chunk size) while it allocates a batch per call, so Go's
// default GOGC=100 collects every other batch; 400 measured about 1.5 times the records/s
// through a plugin source. The soft memory limit makes the collector work harder before the
// process grows past it.
const (
	defaultGCPercent   = 400
	defaultMemoryLimit = 512 << 20
)

func tuneGC() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(defaultGCPercent)
	}
	if _, set := os.LookupEnv("GOMEMLIMIT"); !set {
		debug.SetMemoryLimit(defaultMemoryLimit)
	}
}

// grpcPlugin is the go-plugin glue on the plugin side.
type grpcPlugin struct {
	goplugin.NetRPCUnsupportedPlugin
	server pb.ConnectorServer
}

func (g *grpcPlugin) GRPCServer(_ *goplugin.GRPCBroker, s *grpc.Server) error {
	pb.RegisterConnectorServer(s, g.server)
	return nil
}

func (g *grpcPlugin) GRPCClient(_ context.Context, _ *goplugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return pb.NewConnectorClient(c), nil
}
