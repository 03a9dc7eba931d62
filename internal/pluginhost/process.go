package pluginhost

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/sluicehq/sluice/sdk/go/connector"
	"github.com/sluicehq/sluice/sdk/go/protocol"
	pb "github.com/sluicehq/sluice/sdk/go/protocol/pluginv1"
)

// SupportedProtocols are the plugin protocol versions this host speaks.
var supportedProtocols = []int{protocol.ProtocolVersion}

// proc is one running plugin process.
type proc struct {
	plugin *Plugin
	client *goplugin.Client
	conn   pb.ConnectorClient
	pid    int // 0 when unknown
	// data is the client on the data connection (protocol.FeatureDataConnection), nil without
	// one; dataCC is its connection, closed when the process is stopped.
	data   pb.ConnectorClient
	dataCC *grpc.ClientConn
	raw    net.Conn // the host's end of the data connection, nil without one
}

// bulk returns the client for the calls that carry batches (Read, Write): the data
// connection's when there is one.
func (pr *proc) bulk() pb.ConnectorClient {
	if pr.data != nil {
		return pr.data
	}
	return pr.conn
}

// running is what the host keeps of a started plugin process: its plugin's name and the pid of
// the process group leader once known (0 before).
type running struct {
	name string
	pid  int
	data net.Conn // the host's end of its data connection, closed with it; nil without one
}

// killGrace bounds how long stopping a plugin waits for go-plugin's own shutdown (a graceful
// close, then a kill of the plugin process) before it kills the plugin's whole process group, and
// then how long it waits for the output pipes to close before it gives up on them.
const killGrace = 5 * time.Second

// grpcGlue is the go-plugin glue on the host side.
type grpcGlue struct {
	goplugin.NetRPCUnsupportedPlugin
}

func (grpcGlue) GRPCServer(*goplugin.GRPCBroker, *grpc.Server) error {
	return errors.New("the host does not serve plugins")
}

func (grpcGlue) GRPCClient(_ context.Context, _ *goplugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return pb.NewConnectorClient(c), nil
}

var versionRE = regexp.MustCompile(`Plugin version: (\d+)`)

// start launches the plugin with the pinned checksum and the given environment (nothing else).
func (h *Host) start(ctx context.Context, p *Plugin, pin string, env []string) (*proc, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	h.mu.Lock()
	closed := h.closed
	h.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("plugin %s: host is closed", p.Name)
	}
	sum, err := hex.DecodeString(pin)
	if err != nil || len(sum) != sha256.Size {
		return nil, fmt.Errorf("plugin %s: bad pinned sha256 %q", p.Name, pin)
	}
	logger := h.opts.Logger.With("plugin", p.Name)
	cmd := exec.Command(p.Path)
	cmd.Env = append([]string{}, env...)
	prepareProcess(cmd)
	// Every process gets a data connection (the plugin reports in its specs whether it serves
	// it); a plugin that does not know it leaves descriptor 3 alone.
	dataHost, dataPlugin, derr := dataPair()
	if derr == nil {
		cmd.ExtraFiles = []*os.File{dataPlugin} // descriptor 3
		cmd.Env = append(cmd.Env, protocol.EnvDataFD+"=3")
	}
	versions := map[int]goplugin.PluginSet{}
	for _, v := range supportedProtocols {
		versions[v] = goplugin.PluginSet{protocol.PluginName: grpcGlue{}}
	}
	client := goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig: goplugin.HandshakeConfig{
			ProtocolVersion:  protocol.ProtocolVersion,
			MagicCookieKey:   protocol.MagicCookieKey,
			MagicCookieValue: protocol.MagicCookieValue,
		},
		VersionedPlugins: versions,
		Cmd:              cmd,
		SecureConfig:     &goplugin.SecureConfig{Checksum: sum, Hash: sha256.New()},
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		AutoMTLS:         true,
		SkipHostEnv:      true,
		StartTimeout:     h.opts.StartTimeout,
		Logger:           newLogBridge(logger),
		SyncStdout:       &lineLogger{logger: logger, stream: "stdout"},
		SyncStderr:       &lineLogger{logger: logger, stream: "stderr"},
		GRPCDialOptions:  dialOptions(),
	})
	run := &running{name: p.Name}
	h.mu.Lock()
	h.clients[client] = run
	h.mu.Unlock()
	rpc, err := client.Client()
	if dataPlugin != nil {
		dataPlugin.Close() // the process has its copy, or never started
	}
	pid := 0
	if cmd.Process != nil {
		pid = cmd.Process.Pid
	}
	h.mu.Lock()
	run.pid = pid
	h.mu.Unlock()
	fail := func(err error) (*proc, error) {
		if dataHost != nil {
			dataHost.Close()
		}
		h.forget(client)
		// A plugin that failed to start gets no graceful close: its group goes first, so that
		// children holding its pipes cannot keep the client waiting.
		killGroup(pid)
		h.stop(p.Name, client, pid)
		return nil, err
	}
	if err != nil {
		return fail(h.startError(p, pin, err))
	}
	raw, err := rpc.Dispense(protocol.PluginName)
	if err != nil {
		return fail(fmt.Errorf("plugin %s: dispense: %w", p.Name, err))
	}
	conn, ok := raw.(pb.ConnectorClient)
	if !ok {
		return fail(fmt.Errorf("plugin %s: dispense: unexpected client %T", p.Name, raw))
	}
	pr := &proc{plugin: p, client: client, conn: conn, pid: pid}
	if dataHost != nil {
		if slices.Contains(p.Features, protocol.FeatureDataConnection) {
			cc, err := dialData(dataHost)
			if err != nil {
				return fail(fmt.Errorf("plugin %s: data connection: %w", p.Name, err))
			}
			pr.data, pr.dataCC, pr.raw = pb.NewConnectorClient(cc), cc, dataHost
			h.mu.Lock()
			run.data = dataHost
			h.mu.Unlock()
		} else {
			dataHost.Close() // discovery, or a plugin without the feature
		}
	}
	logger.Debug("plugin started", "pid", pr.pid, "protocol", client.NegotiatedVersion())
	return pr, nil
}

// dialOptions are the gRPC options of both connections to a plugin: large messages and windows,
// 1 MiB buffers and the batch codec.
func dialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(protocol.MaxMessageBytes), grpc.MaxCallSendMsgSize(protocol.MaxMessageBytes),
			grpc.ForceCodecV2(protocol.Codec())),
		grpc.WithInitialWindowSize(protocol.WindowBytes), grpc.WithInitialConnWindowSize(protocol.WindowBytes),
		grpc.WithReadBufferSize(1 << 20), grpc.WithWriteBufferSize(1 << 20),
	}
}

// dialData returns a gRPC client connection over the host's end of a data connection, in plain
// text (no other process can reach it). It is never re-dialled: once the connection breaks (the
// process died), every call on it fails, and it never goes idle.
func dialData(conn net.Conn) (*grpc.ClientConn, error) {
	var used atomic.Bool
	dial := func(context.Context, string) (net.Conn, error) {
		if used.Swap(true) {
			return nil, errors.New("the data connection is closed")
		}
		return conn, nil
	}
	opts := append(dialOptions(), grpc.WithContextDialer(dial), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithIdleTimeout(0))
	cc, err := grpc.NewClient("passthrough:///sluice-data", opts...)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return cc, nil
}

// startError turns go-plugin's start failures into messages that say what is wrong.
func (h *Host) startError(p *Plugin, pin string, err error) error {
	msg := err.Error()
	switch {
	case errors.Is(err, goplugin.ErrChecksumsDoNotMatch):
		got, herr := fileSHA256(p.Path)
		if herr != nil {
			return herr
		}
		return &ChecksumError{Path: p.Path, Want: pin, Got: got}
	case strings.Contains(msg, "ncompatible API version"):
		got := "another version"
		if m := versionRE.FindStringSubmatch(msg); m != nil {
			got = "version " + m[1]
		}
		return fmt.Errorf("plugin %s speaks plugin protocol %s, but this sluice supports version %d: %w",
			p.Name, got, protocol.ProtocolVersion, ErrUnsupportedProtocol)
	case strings.Contains(msg, "Unrecognized remote plugin message"),
		strings.Contains(msg, "exited before we could connect"),
		strings.Contains(msg, "timeout while waiting for plugin to start"),
		strings.Contains(msg, "incompatible core API version"),
		strings.Contains(msg, "unsupported plugin protocol"):
		first, _, _ := strings.Cut(msg, "\n")
		return fmt.Errorf("plugin %s: %s is not a Sluice connector plugin (no plugin handshake: %s): %w",
			p.Name, p.Path, first, ErrNotPlugin)
	}
	return fmt.Errorf("plugin %s: start: %w", p.Name, err)
}

// ErrNotPlugin is wrapped by the error for a binary that does not complete the plugin handshake.
// It matches connector.ErrPermanent: retrying cannot help.
var ErrNotPlugin error = &permanentError{"not a plugin"}

// ErrUnsupportedProtocol is wrapped by the error for a plugin speaking another protocol version.
// It matches connector.ErrPermanent.
var ErrUnsupportedProtocol error = &permanentError{"unsupported plugin protocol version"}

// permanentError is a sentinel that also matches connector.ErrPermanent.
type permanentError struct{ msg string }

func (e *permanentError) Error() string        { return e.msg }
func (e *permanentError) Is(target error) bool { return target == connector.ErrPermanent }

// ErrPluginFailed is wrapped by errors of calls that failed because the plugin process crashed
// or missed its deadline (rather than the connector returning an error).
var ErrPluginFailed = errors.New("plugin failed")

func (h *Host) forget(c *goplugin.Client) {
	h.mu.Lock()
	delete(h.clients, c)
	h.mu.Unlock()
}

func (h *Host) kill(pr *proc) {
	if pr == nil {
		return
	}
	if pr.dataCC != nil {
		pr.dataCC.Close()
		pr.raw.Close() // gRPC dials it only with the first call
	}
	h.forget(pr.client)
	h.stop(pr.plugin.Name, pr.client, pr.pid)
}

// stop shuts a plugin process down and returns within about twice killGrace whatever the plugin
// does: go-plugin's Kill waits until the plugin's stdout and stderr pipes close, which a child
// of the plugin (a shell script's sleep) can hold open forever. When Kill does not return within
// killGrace, stop kills the plugin's process group; when even that does not release the pipes
// (a child that left the group), stop gives up on them and logs so.
func (h *Host) stop(name string, c *goplugin.Client, pid int) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Kill()
	}()
	t := time.NewTimer(killGrace)
	defer t.Stop()
	select {
	case <-done:
		// What the plugin started and left behind goes too.
		killGroup(pid)
		return
	case <-t.C:
	}
	killGroup(pid)
	t.Reset(killGrace)
	select {
	case <-done:
	case <-t.C:
		h.opts.Logger.Warn("plugin process did not release its output pipes after being killed; not waiting any longer",
			"plugin", name, "pid", pid)
	}
}

// callError describes a failed RPC: a missed deadline, a dead process or another transport error.
func (pr *proc) callError(call string, err error) error {
	st, _ := status.FromError(err)
	switch {
	case st.Code() == codes.DeadlineExceeded:
		return fmt.Errorf("plugin %s (pid %d): %s: no answer before the deadline; the plugin hangs: %w", pr.plugin.Name, pr.pid, call, ErrPluginFailed)
	case pr.client.Exited():
		return fmt.Errorf("plugin %s (pid %d): %s: the plugin process exited: %w", pr.plugin.Name, pr.pid, call, ErrPluginFailed)
	}
	return fmt.Errorf("plugin %s (pid %d): %s: %v: %w", pr.plugin.Name, pr.pid, call, st.Message(), ErrPluginFailed)
}

// newLogBridge returns an hclog logger whose entries (go-plugin's own and the plugin's stderr
// JSON lines) go to logger.
func newLogBridge(logger *slog.Logger) hclog.Logger {
	// The inner logger must not be Off: go-plugin then drops plugin stderr lines unread.
	l := hclog.NewInterceptLogger(&hclog.LoggerOptions{Output: discard{}, Level: hclog.Debug})
	l.RegisterSink(&sinkAdapter{logger: logger})
	return l
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

type sinkAdapter struct{ logger *slog.Logger }

func (s *sinkAdapter) Accept(name string, level hclog.Level, msg string, args ...any) {
	var lvl slog.Level
	switch level {
	case hclog.Trace, hclog.Debug, hclog.NoLevel:
		lvl = slog.LevelDebug
	case hclog.Info:
		lvl = slog.LevelInfo
	case hclog.Warn:
		lvl = slog.LevelWarn
	default:
		lvl = slog.LevelError
	}
	if name == "" {
		// go-plugin's own messages; the host logs the failures that matter itself.
		lvl = slog.LevelDebug
	}
	ctx := context.Background()
	if !s.logger.Enabled(ctx, lvl) {
		return
	}
	s.logger.Log(ctx, lvl, msg, args...)
}

// lineLogger logs what a plugin prints on its redirected stdout or stderr, one entry per line.
type lineLogger struct {
	logger *slog.Logger
	stream string
	mu     sync.Mutex
	buf    []byte
}

func (l *lineLogger) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		l.logger.Info(string(l.buf[:i]), "stream", l.stream)
		l.buf = l.buf[i+1:]
	}
	if len(l.buf) > 64<<10 {
		l.logger.Info(string(l.buf), "stream", l.stream)
		l.buf = nil
	}
	return len(p), nil
}
