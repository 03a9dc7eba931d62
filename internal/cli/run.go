package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/internal/admin"
	"github.com/sluicehq/sluice/internal/checkpoint"
	"github.com/sluicehq/sluice/internal/gctune"
	"github.com/sluicehq/sluice/internal/metrics"
	"github.com/sluicehq/sluice/internal/pluginhost"
	"github.com/sluicehq/sluice/manifests"
	"github.com/sluicehq/sluice/runtime/pipeline"
	"github.com/sluicehq/sluice/runtime/supervisor"
)

func init() {
	addCommand(func(g *Globals) *cobra.Command {
		var drain, stuckAfter, maxBackoff, watchInterval time.Duration
		var reset, watch bool
		var startAttempts int
		var progress string
		cmd := &cobra.Command{
			Use:   "run MANIFEST_OR_DIR...",
			Short: "Run pipelines until their bounded sources are done, or until SIGINT/SIGTERM",
			Long: "Run loads the manifests (files, or directories of *.yaml files), validates them, and runs every pipeline.\n" +
				"It exits 0 when every pipeline with a bounded source has delivered everything, or after a graceful stop\n" +
				"(SIGINT/SIGTERM: stop reading, drain what is in flight, checkpoint). A second signal stops at once;\n" +
				"nothing is lost either way: an undelivered record is read again on the next run with the same --data-dir.\n\n" +
				"Each pipeline lives on its own: one that fails with a transient error is restarted from its checkpoint\n" +
				"after a backoff (1s doubling up to --restart-backoff-max, reset after a minute of healthy running); one\n" +
				"that fails for good (a permanent error, or --start-attempts runs without ever opening its components)\n" +
				"stays failed while the others go on. Run exits once no pipeline can run any more, with status 1 if any\n" +
				"failed.\n\n" +
				"Run watches its manifests (every --watch-interval) and reloads them on SIGHUP: when a manifest changes,\n" +
				"appears or disappears, only its pipelines are validated (as `sluice validate` does) and those whose\n" +
				"configuration or WASM module changed are drained and restarted from their checkpoint, started, or\n" +
				"stopped; the others are not touched. A change with a problem is not applied: the pipelines of that file run\n" +
				"as they were, and the problem (FILE:LINE:COL) is logged, counted in sluice_reload_total{result=\"error\"}\n" +
				"and sluice_manifest_errors, and shown by GET /api/v1/reload until the file is fixed. Once every pipeline\n" +
				"was removed, run waits for manifests until signalled. --watch=false reads the manifests once.",
			Args: cobra.MinimumNArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				if startAttempts < 0 {
					return fmt.Errorf("--start-attempts %d: want 0 (no limit) or more", startAttempts)
				}
				if startAttempts == 0 {
					startAttempts = -1 // the supervisor's "no limit"
				}
				return runPipelines(cmd.Context(), g, args, runFlags{drain: drain, stuckAfter: stuckAfter, reset: reset,
					restart: supervisor.RestartPolicy{StartAttempts: startAttempts, MaxBackoff: maxBackoff}, watch: watch, watchInterval: watchInterval, progress: progress})
			},
		}
		cmd.Flags().DurationVar(&drain, "drain-timeout", pipeline.DefaultDrainTimeout, "how long a graceful stop may take to deliver what is in flight")
		cmd.Flags().DurationVar(&stuckAfter, "stuck-after", pipeline.DefaultStuckAfter,
			"how long a sink may keep failing, or a stage hold one batch, before /readyz reports the pipeline not ready")
		cmd.Flags().BoolVar(&reset, "reset", false, "forget the pipelines' checkpoints and start their sources from the beginning")
		cmd.Flags().IntVar(&startAttempts, "start-attempts", supervisor.DefaultStartAttempts,
			"runs a pipeline gets while it has never opened its source and sinks, before it is left failed; 0 retries without limit")
		cmd.Flags().DurationVar(&maxBackoff, "restart-backoff-max", supervisor.DefaultMaxBackoff, "longest wait before restarting a pipeline that failed")
		cmd.Flags().BoolVar(&watch, "watch", true, "reload the pipelines whose manifest changed, appeared or disappeared (and every manifest on SIGHUP)")
		cmd.Flags().DurationVar(&watchInterval, "watch-interval", defaultWatchInterval, "how often the manifests (and their WASM modules) are looked at for changes")
		cmd.Flags().StringVar(&progress, "progress", progressAuto,
			"a live status line on stderr (records, rate, ETA) while every source is bounded: auto (when stderr is a terminal), always or never")
		return cmd
	})
}

// runFlags are the flags of `sluice run`.
type runFlags struct {
	drain, stuckAfter time.Duration
	reset             bool
	restart           supervisor.RestartPolicy
	watch             bool          // reload on changes and SIGHUP (reload.go)
	watchInterval     time.Duration // how often the manifests are looked at
	progress          string        // --progress (progress.go)
}

func runPipelines(parent context.Context, g *Globals, args []string, f runFlags) error {
	if parent == nil {
		parent = context.Background()
	}
	gctune.Apply()
	// Signal handling comes first: a SIGINT/SIGTERM while plugins are discovered or the manifests
	// loaded is a graceful stop too (exit 0, nothing run), not the default death by the signal.
	ctx, stop := signal.NotifyContext(parent, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop() // a second signal now takes the default action and ends the process at once
	}()
	stopped := func() bool { return ctx.Err() != nil && parent.Err() == nil }
	hup, seen := watchSignals(args, f.watch) // reload.go; before the manifests are read
	defer signal.Stop(hup)
	pl, err := newRunProgress(f.progress) // progress.go: the status line; the logs go through it
	if err != nil {
		return err
	}
	log, err := g.Logger(pl)
	if err != nil {
		return err
	}
	log.Debug("signal handling installed: SIGINT and SIGTERM stop gracefully from here on")
	m := metrics.New()
	pm, err := pluginhost.NewPrometheusMetrics(m.Registry)
	if err != nil {
		return err
	}
	if err := g.discoverPluginsWith(ctx, log, pm, args...); err != nil && !stopped() {
		return err
	}
	if stopped() {
		log.Info("stopped by a signal before the pipelines started")
		return nil
	}
	l, err := g.loadPipelines(parent, log, m, supervisor.Options{DrainTimeout: f.drain, StuckAfter: f.stuckAfter, Restart: f.restart}, args)
	if l != nil {
		defer l.sup.Close(context.Background())
	}
	if stopped() {
		log.Info("stopped by a signal before the pipelines started")
		return nil
	}
	if err != nil {
		return err
	}
	if len(l.diags) > 0 {
		for _, d := range l.diags {
			fmt.Fprintln(os.Stderr, d.String())
		}
		return &exitError{code: 1, msg: fmt.Sprintf("%d problem(s) in the manifests; nothing was run", len(l.diags))}
	}
	if len(l.specs) == 0 {
		return &exitError{code: 1, msg: "no pipelines found in " + strings.Join(args, ", ")}
	}
	rl, err := startReloader(ctx, g, log, m, l, args, seen, hup, f) // reload.go; nil when not watching
	if err != nil {
		return err
	}
	defer rl.stopWatch()
	if g.AdminAddr != "" {
		token, err := g.adminToken()
		if err != nil {
			return err
		}
		var validating sync.Mutex // one check at a time: each builds a WASM host of its own
		srv, err := admin.Start(g.AdminAddr, admin.Options{Metrics: m.Handler(), Runtime: l.sup, Token: token, Logger: log,
			Validate: func(ctx context.Context, file string, manifest []byte) ([]string, []admin.Diagnostic, error) {
				validating.Lock()
				defer validating.Unlock()
				return g.validateManifestBytes(ctx, log, file, manifest)
			}, Reload: rl.adminState()})
		if err != nil {
			return adminListenError(err)
		}
		log.Info("admin server listening", "addr", srv.Addr(), "token", token != "")
		if token == "" && !admin.IsLoopback(srv.Addr()) {
			log.Warn("the admin API listens beyond loopback without a token: anyone who reaches it can pause and restart pipelines; set --admin-token-file or " + adminTokenEnv)
		}
		defer srv.Close(context.Background())
	}

	pl.start(l.sup)
	go releaseStartupMemory(ctx, l.sup)
	err = l.sup.Run(ctx, supervisor.RunOptions{Reset: f.reset, Reload: f.watch})
	pl.stop()
	if errors.Is(err, checkpoint.ErrCorrupt) {
		return fmt.Errorf("%w; the file holds every pipeline's source positions: run again with --reset to set it aside (as %s.corrupt) and start the sources from the beginning, or move it away", err, checkpoint.FileName)
	}
	return err
}

// discoverPlugins registers the plugin binaries of --plugins-dir as plugin:NAME components. The
// sha256 pins of the manifests at manifestPaths let their binaries run.
func (g *Globals) discoverPlugins(ctx context.Context, log *slog.Logger, manifestPaths ...string) error {
	return g.discoverPluginsWith(ctx, log, nil, manifestPaths...)
}

// discoverPluginsWith is discoverPlugins reporting plugin restarts and call latency to pm (nil:
// nowhere).
func (g *Globals) discoverPluginsWith(ctx context.Context, log *slog.Logger, pm pluginhost.Metrics, manifestPaths ...string) error {
	if g.PluginsDir == "" {
		return nil
	}
	return registerPlugins(ctx, g, log, pm, manifestPaths) // internal/cli/plugins.go
}

// adminTokenEnv names the environment variable that gives the admin API's token.
const adminTokenEnv = "SLUICE_ADMIN_TOKEN"

// adminToken returns the admin API's bearer token: --admin-token, else the content of
// --admin-token-file, else $SLUICE_ADMIN_TOKEN; "" when none is set (no guard).
func (g *Globals) adminToken() (string, error) {
	switch {
	case g.AdminToken != "" && g.AdminTokenFile != "":
		return "", errors.New("--admin-token and --admin-token-file are both set: give the token one way")
	case g.AdminToken != "":
		return g.AdminToken, nil
	case g.AdminTokenFile != "":
		b, err := os.ReadFile(g.AdminTokenFile)
		if err != nil {
			return "", fmt.Errorf("--admin-token-file: %w", err)
		}
		tok := strings.TrimSpace(string(b))
		if tok == "" {
			return "", fmt.Errorf("--admin-token-file %s is empty", g.AdminTokenFile)
		}
		return tok, nil
	}
	return os.Getenv(adminTokenEnv), nil
}

// validateManifestBytes checks one manifest held in memory as `sluice validate` checks files,
// for the admin API.
func (g *Globals) validateManifestBytes(ctx context.Context, log *slog.Logger, file string, data []byte) ([]string, []admin.Diagnostic, error) {
	l, err := g.buildPipelines(ctx, log, metrics.New(), supervisor.Options{}, func(o manifests.LoadOptions) ([]*manifests.Pipeline, manifests.Diagnostics) {
		return manifests.LoadBytes(file, data, o)
	})
	if err != nil {
		return nil, nil, err
	}
	defer l.sup.Close(context.Background())
	var names []string
	if len(l.diags) == 0 {
		for _, s := range l.specs {
			names = append(names, s.Name)
		}
	}
	diags := make([]admin.Diagnostic, len(l.diags))
	for i, d := range l.diags {
		diags[i] = admin.Diagnostic{File: d.Pos.File, Line: d.Pos.Line, Col: d.Pos.Col, Message: d.Message, Hint: d.Hint}
	}
	return names, diags, nil
}

// adminListenError adds the way out to an admin server that cannot listen because the address is
// taken.
func adminListenError(err error) error {
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("%w; another process uses this address: choose another with --admin-addr HOST:PORT, or disable the admin server with --admin-addr \"\"", err)
	}
	return err
}

// releaseStartupMemory returns the memory start-up used and no longer needs (the connectors'
// package initialisation, the WASM compilation, the manifests) to the operating system once
// every pipeline has started, or after half a minute. At GOGC=200 the heap may otherwise keep it
// for good: measured with 100 idle pipelines (make bench-operate), the process keeps 8 MiB less.
func releaseStartupMemory(ctx context.Context, sup *supervisor.Supervisor) {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		starting := false
		for _, st := range sup.Status() {
			starting = starting || st.State == pipeline.StateStarting
		}
		if !starting {
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
	debug.FreeOSMemory()
}
