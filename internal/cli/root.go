// Package cli implements the sluice command line. Each area of the runtime adds its commands in a
// file of its own through addCommand, so cmd/sluice stays a thin main.
package cli

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/connectors/all"
	"github.com/sluicehq/sluice/internal/pluginhost"
	"github.com/sluicehq/sluice/runtime/catalog"
)

// Globals are the flags every command shares.
type Globals struct {
	DataDir   string
	AdminAddr string
	// AdminToken and AdminTokenFile give the admin API's bearer token (see adminToken).
	AdminToken     string
	AdminTokenFile string
	LogLevel       string
	LogFormat      string
	PluginsDir     string
	// Catalog holds the built-in connectors and, once discovered, the plugins of PluginsDir.
	Catalog *catalog.Catalog
	// AllowUnpinnedPlugins lets plugin discovery run binaries that nothing pins.
	AllowUnpinnedPlugins bool

	// pluginHost runs the plugins of PluginsDir once they are discovered; nil before.
	pluginHost *pluginhost.Host
}

// Logger builds the process logger from the flags, writing to w.
func (g *Globals) Logger(w io.Writer) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(g.LogLevel)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", g.LogLevel)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch strings.ToLower(g.LogFormat) {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", g.LogFormat)
}

type commandFactory func(g *Globals) *cobra.Command

var factories []commandFactory

// addCommand registers a subcommand; called from init functions in this package only.
func addCommand(f commandFactory) { factories = append(factories, f) }

// NewRoot builds the root command with every subcommand, on the catalog of the built-in connectors.
func NewRoot() *cobra.Command { return newRoot(all.Catalog()) }

// newRoot builds the root command on the given catalog.
func newRoot(cat *catalog.Catalog) *cobra.Command {
	g := &Globals{Catalog: cat}
	root := &cobra.Command{
		Use:           "sluice",
		Short:         "Sluice moves data from sources through WASM transforms to sinks",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	pf := root.PersistentFlags()
	pf.StringVar(&g.DataDir, "data-dir", defaultDataDir(), "directory for checkpoints, state and caches")
	pf.StringVar(&g.AdminAddr, "admin-addr", "127.0.0.1:9464", "address of the admin HTTP server (the status page at /, /healthz, /readyz, /metrics, /pipelines, the API under /api/v1/pipelines described by /api/v1/openapi.json); loopback by default, empty disables it")
	pf.StringVar(&g.AdminToken, "admin-token", "", "bearer token the admin API requires (all but /healthz, /readyz, /metrics); default $"+adminTokenEnv+"; prefer --admin-token-file: a flag shows in the process list")
	pf.StringVar(&g.AdminTokenFile, "admin-token-file", "", "file holding the admin API's bearer token (surrounding whitespace is ignored)")
	pf.StringVar(&g.LogLevel, "log-level", "info", "debug, info, warn or error")
	pf.StringVar(&g.LogFormat, "log-format", "text", "text or json")
	pf.StringVar(&g.PluginsDir, "plugins-dir", "", "directory holding connector plugin binaries")
	pf.BoolVar(&g.AllowUnpinnedPlugins, "allow-unpinned-plugins", false, "run plugin binaries of --plugins-dir that no BINARY.sha256 file or manifest sha256 pins")
	for _, f := range factories {
		root.AddCommand(f(g))
	}
	return root
}

func defaultDataDir() string {
	if d := os.Getenv("SLUICE_DATA_DIR"); d != "" {
		return d
	}
	return ".sluice"
}

// Main runs the command line and returns the process exit code.
func Main(args []string) int {
	root := NewRoot()
	root.SetArgs(args)
	if err := root.Execute(); err != nil {
		var ec exitCoder
		if ok := asExitCoder(err, &ec); ok {
			if msg := err.Error(); msg != "" {
				fmt.Fprintln(os.Stderr, "sluice:", msg)
			}
			return ec.ExitCode()
		}
		fmt.Fprintln(os.Stderr, "sluice:", err)
		return 1
	}
	return 0
}

type exitCoder interface {
	error
	ExitCode() int
}

// exitError carries an exit code; an empty message prints nothing (the command already printed).
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }
func (e *exitError) ExitCode() int { return e.code }

func asExitCoder(err error, target *exitCoder) bool {
	for err != nil {
		if ec, ok := err.(exitCoder); ok {
			*target = ec
			return true
		}
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		err = u.Unwrap()
	}
	return false
}
