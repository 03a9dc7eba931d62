package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/sluicehq/sluice/sdk/go/connector"
	"github.com/sluicehq/sluice/sdk/go/protocol"
	pb "github.com/sluicehq/sluice/sdk/go/protocol/pluginv1"
)

// instance is the process side shared by the source and sink proxies: the current process, the
// restart bookkeeping and the call wrapper.
type instance struct {
	h      *Host
	plugin *Plugin
	conn   string // connector name inside the plugin
	pin    string
	env    []string
	logger *slog.Logger

	mu       sync.Mutex
	proc     *proc
	opened   bool  // the runtime's Open succeeded once
	openedOn *proc // the process on which the connector's Open succeeded
	failures int   // consecutive failed attempts
	lastErr  error
	closed   bool
}

// newInstance builds the instance for connector connName of p. It returns the configuration for
// the plugin, without the host's reserved fields, as JSON.
func newInstance(h *Host, p *Plugin, connName string, cfg connector.Config, env connector.Env) (*instance, []byte, error) {
	pin, penv, rest, err := configParts(cfg)
	if err != nil {
		return nil, nil, err
	}
	js, err := protocol.EncodeConfig(rest)
	if err != nil {
		return nil, nil, err
	}
	// Refused here, not only when the process starts, so that validate reports it too.
	if err := checkPin(p, pin); err != nil {
		return nil, nil, err
	}
	if pin == "" {
		// Unpinned in the manifest: pin what discovery saw, so a binary swapped later is refused.
		pin = p.SHA256
	}
	logger := env.Logger
	if logger == nil {
		logger = h.opts.Logger
	}
	logger = logger.With("plugin", p.Name)
	return &instance{h: h, plugin: p, conn: connName, pin: pin, env: penv, logger: logger}, js, nil
}

// checkPin refuses a manifest pin (lower case, trimmed; "" when none) that differs from the sum
// of the binary discovery ran.
func checkPin(p *Plugin, pin string) error {
	if pin != "" && p.SHA256 != "" && pin != p.SHA256 {
		return &connector.ConfigError{Field: FieldSHA256,
			Msg:  fmt.Sprintf("the plugin binary %s has sha256 %s, not the pinned %s", p.Path, p.SHA256, pin),
			Hint: "pin the binary you mean to run: sha256sum prints its digest"}
	}
	return nil
}

// current returns the running process, or nil.
func (in *instance) current() *proc {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.proc
}

// pid returns the process id of the running plugin process, 0 when none runs.
func (in *instance) pid() int {
	if pr := in.current(); pr != nil {
		return pr.pid
	}
	return 0
}

// drop stops the current process, if any, without counting a failure (a retried Open).
func (in *instance) drop() {
	in.mu.Lock()
	pr := in.proc
	in.proc = nil
	in.mu.Unlock()
	in.h.kill(pr)
}

// launch starts a new process after the backoff owed to earlier failures.
func (in *instance) launch(ctx context.Context) (*proc, error) {
	in.mu.Lock()
	if in.closed {
		in.mu.Unlock()
		return nil, fmt.Errorf("plugin %s: %s is closed", in.plugin.Name, in.conn)
	}
	failures := in.failures
	in.mu.Unlock()
	if failures > 0 {
		d := in.h.opts.RestartBackoff << min(failures-1, 20)
		if d > in.h.opts.MaxRestartBackoff || d <= 0 {
			d = in.h.opts.MaxRestartBackoff
		}
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		}
		in.h.opts.Metrics.PluginRestarted(in.plugin.Name)
		in.logger.Warn("restarting plugin", "attempt", failures, "after", d, "cause", in.lastErr)
	}
	pr, err := in.h.start(ctx, in.plugin, in.pin, in.env)
	if err != nil {
		return nil, err
	}
	in.mu.Lock()
	in.proc = pr
	in.mu.Unlock()
	return pr, nil
}

// fail kills the process after a failed call and counts the failure. It returns the error to
// hand the caller when the restarts are used up, or nil when the call should be retried.
func (in *instance) fail(pr *proc, err error) error {
	in.h.kill(pr)
	in.mu.Lock()
	defer in.mu.Unlock()
	if pr != nil {
		if in.proc != pr {
			return nil // a concurrent call already handled this process's failure
		}
		in.proc = nil
	}
	in.failures++
	in.lastErr = err
	in.logger.Error("plugin failed", "error", err, "consecutive_failures", in.failures)
	if in.failures > in.h.opts.MaxRestarts {
		in.failures = in.h.opts.MaxRestarts // the next call still waits the longest backoff
		return fmt.Errorf("%w (after %d restarts)", err, in.h.opts.MaxRestarts)
	}
	return nil
}

// succeeded resets the failure count.
func (in *instance) succeeded() {
	in.mu.Lock()
	in.failures = 0
	in.lastErr = nil
	in.mu.Unlock()
}

// call runs one RPC on go-plugin's connection with the host's deadline (plus extra) and records
// its latency.
func call[T any](ctx context.Context, in *instance, pr *proc, method string, extra time.Duration, f func(context.Context, pb.ConnectorClient) (T, error)) (T, error) {
	return callOn(ctx, in, pr.conn, method, extra, f)
}

// bulkCall is call for the calls that carry batches (Read, Write): on the data connection when
// the process has one.
func bulkCall[T any](ctx context.Context, in *instance, pr *proc, method string, extra time.Duration, f func(context.Context, pb.ConnectorClient) (T, error)) (T, error) {
	return callOn(ctx, in, pr.bulk(), method, extra, f)
}

func callOn[T any](ctx context.Context, in *instance, c pb.ConnectorClient, method string, extra time.Duration, f func(context.Context, pb.ConnectorClient) (T, error)) (T, error) {
	cctx, cancel := context.WithTimeout(ctx, in.h.opts.CallTimeout+extra)
	defer cancel()
	start := time.Now()
	resp, err := f(cctx, c)
	in.h.opts.Metrics.PluginCall(in.plugin.Name, method, time.Since(start), err)
	return resp, err
}

// isStartFailure reports whether err is a start failure that restarting cannot cure.
func isStartFailure(err error) bool {
	var ce *ChecksumError
	return errors.As(err, &ce) || errors.Is(err, ErrNotPlugin) || errors.Is(err, ErrUnsupportedProtocol)
}

// close sends Close to the process, if any, and stops it. It is idempotent.
func (in *instance) close(ctx context.Context) error {
	in.mu.Lock()
	if in.closed {
		in.mu.Unlock()
		return nil
	}
	in.closed = true
	pr := in.proc
	in.proc = nil
	in.mu.Unlock()
	if pr == nil {
		return nil
	}
	defer in.h.kill(pr)
	resp, err := call(ctx, in, pr, "close", 0, func(ctx context.Context, c pb.ConnectorClient) (*pb.CloseResponse, error) {
		return c.Close(ctx, &pb.CloseRequest{})
	})
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("plugin %s: close: %w", in.plugin.Name, ctx.Err())
		}
		return pr.callError("close", err)
	}
	if rerr := errFrom(resp.Error); rerr != nil {
		return fmt.Errorf("plugin %s: close: %w", in.plugin.Name, rerr)
	}
	return nil
}

// errFrom converts a connector error carried in a response.
func errFrom(e *pb.Error) error { return protocol.FromError(e) }

// openedProc returns the process on which the connector's Open succeeded, or nil.
func (in *instance) openedProc() *proc {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.openedOn
}

// openCall runs the connector's Open call f on pr and records pr as the process the connector
// is open on. The connector's own error comes back as *openErr.
func (in *instance) openCall(ctx context.Context, pr *proc, f func(context.Context, pb.ConnectorClient) (*pb.OpenResponse, error)) error {
	resp, err := call(ctx, in, pr, "open", 0, f)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return pr.callError("open", err)
	}
	if e := errFrom(resp.Error); e != nil {
		return &openErr{fmt.Errorf("plugin %s: open %s: %w", in.plugin.Name, in.conn, e)}
	}
	in.mu.Lock()
	in.openedOn = pr
	in.mu.Unlock()
	return nil
}

// ready returns a process the connector is open on, launching a process and opening the
// connector on it again with openOn after a crash. op and kind ("source", "sink") name the
// caller's operation in the error returned when the runtime has not opened the connector.
func (in *instance) ready(ctx context.Context, op, kind string, openOn func(context.Context, *proc) error) (*proc, error) {
	for {
		in.mu.Lock()
		opened, openedOn, pr := in.opened, in.openedOn, in.proc
		in.mu.Unlock()
		if !opened {
			return nil, fmt.Errorf("plugin %s: %s %s: the %s is not open", in.plugin.Name, op, in.conn, kind)
		}
		if pr != nil && pr == openedOn {
			return pr, nil
		}
		if pr == nil {
			var err error
			if pr, err = in.launch(ctx); err != nil {
				if ctx.Err() != nil || isStartFailure(err) {
					return nil, err
				}
				if ferr := in.fail(nil, err); ferr != nil {
					return nil, ferr
				}
				continue
			}
		}
		if err := openOn(ctx, pr); err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if ferr := in.fail(pr, err); ferr != nil {
				return nil, ferr
			}
		}
	}
}

// open starts a fresh process and opens the connector on it with openOn. A start failure or the
// connector's own Open error (*openErr) is returned; the process stays up after the latter so
// Close reaches the connector, and is failed otherwise.
func (in *instance) open(ctx context.Context, openOn func(context.Context, *proc) error) error {
	in.drop() // a retried Open starts afresh
	pr, err := in.launch(ctx)
	if err != nil {
		return err
	}
	if err := openOn(ctx, pr); err != nil {
		var oe *openErr
		if !errors.As(err, &oe) && ctx.Err() == nil {
			in.fail(pr, err)
		}
		return err
	}
	in.mu.Lock()
	in.opened = true
	in.mu.Unlock()
	return nil
}
