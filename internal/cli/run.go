package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/manifests"
	"github.com/sluicehq/sluice/runtime/admin"
	"github.com/sluicehq/sluice/runtime/checkpoint"
	"github.com/sluicehq/sluice/runtime/engine"
	"github.com/sluicehq/sluice/runtime/metrics"
	"github.com/sluicehq/sluice/runtime/pipeline"
	"github.com/sluicehq/sluice/runtime/pluginhost"
)

func init() {
	addCommand(func(g *Globals) *cobra.Command {
		var drain, stuckAfter time.Duration
		var reset bool
		cmd := &cobra.Command{
			Use:   "run MANIFEST_OR_DIR...",
			Short: "Run pipelines until their bounded sources are done, or until SIGINT/SIGTERM",
			Long: "Run loads the manifests (files, or directories of *.yaml files), validates them, and runs every pipeline.\n" +
				"It exits 0 when every pipeline with a bounded source has delivered everything, or after a graceful stop\n" +
				"(SIGINT/SIGTERM: stop reading, drain what is in flight, checkpoint). A second signal stops at once;\n" +
				"nothing is lost either way: an undelivered record is read again on the next run with the same --data-dir.",
			Args: cobra.MinimumNArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				return runPipelines(cmd.Context(), g, args, runFlags{drain: drain, stuckAfter: stuckAfter, reset: reset})
			},
		}
		cmd.Flags().DurationVar(&drain, "drain-timeout", pipeline.DefaultDrainTimeout, "how long a graceful stop may take to deliver what is in flight")
		cmd.Flags().DurationVar(&stuckAfter, "stuck-after", pipeline.DefaultStuckAfter,
			"how long a sink may keep failing, or a stage hold one batch, before /readyz reports the pipeline not ready")
		cmd.Flags().BoolVar(&reset, "reset", false, "forget the pipelines' checkpoints and start their sources from the beginning")
		return cmd
	})
}

// runFlags are the flags of `sluice run`.
type runFlags struct {
	drain, stuckAfter time.Duration
	reset             bool
}

func runPipelines(parent context.Context, g *Globals, args []string, f runFlags) error {
	if parent == nil {
		parent = context.Background()
	}
	log, err := g.Logger(os.Stderr)
	if err != nil {
		return err
	}
	m := metrics.New()
	pm, err := pluginhost.NewPrometheusMetrics(m.Registry)
	if err != nil {
		return err
	}
	if err := g.discoverPluginsWith(parent, log, pm, args...); err != nil {
		return err
	}
	stages := newStageFactory(g, log)
	defer stages.Close(context.Background())
	specs, diags := manifests.Load(args, manifests.LoadOptions{Catalog: g.Catalog, CheckModule: stages.Check})
	if len(diags) == 0 {
		diags = append(constructComponents(parent, g.Catalog, specs), stages.CheckPorts(specs)...) // the components' own checks, with positions
	}
	if len(diags) > 0 {
		for _, d := range diags {
			fmt.Fprintln(os.Stderr, d.String())
		}
		return &exitError{code: 1, msg: fmt.Sprintf("%d problem(s) in the manifests; nothing was run", len(diags))}
	}
	if len(specs) == 0 {
		return &exitError{code: 1, msg: "no pipelines found in " + strings.Join(args, ", ")}
	}
	store, err := checkpoint.Open(g.DataDir)
	if err != nil {
		return err
	}
	defer store.Close()
	var pipes []*engine.Pipeline
	for _, s := range specs {
		if f.reset {
			if err := store.Reset(s.Name); err != nil {
				return err
			}
		}
		cfg := s.Config()
		if cfg.StuckAfter == 0 {
			cfg.StuckAfter = f.stuckAfter
		}
		p, err := engine.New(cfg, engine.Options{Catalog: g.Catalog, Logger: log, Metrics: m, Checkpoints: store, DataDir: g.DataDir,
			NewStage: stages.New, DrainTimeout: f.drain})
		if err != nil {
			return err
		}
		pipes = append(pipes, p)
	}
	m.Registry.MustRegister(stages)
	if g.AdminAddr != "" {
		srv, err := admin.Start(g.AdminAddr, m.Handler(), func() []admin.Pipeline {
			out := make([]admin.Pipeline, len(pipes))
			for i, p := range pipes {
				st := p.Status()
				out[i] = admin.Pipeline{Name: p.Name(), State: string(st.State), Ready: st.Ready, Reason: st.Reason}
			}
			return out
		}, log)
		if err != nil {
			return adminListenError(err)
		}
		log.Info("admin server listening", "addr", srv.Addr())
		defer srv.Close(context.Background())
	}

	ctx, stop := signal.NotifyContext(parent, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop() // a second signal now takes the default action and ends the process at once
	}()

	errs := make([]error, len(pipes))
	var wg sync.WaitGroup
	for i, p := range pipes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = p.Run(ctx)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return nil
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

// adminListenError adds the way out to an admin server that cannot listen because the address is
// taken.
func adminListenError(err error) error {
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("%w; another process uses this address: choose another with --admin-addr HOST:PORT, or disable the admin server with --admin-addr \"\"", err)
	}
	return err
}
