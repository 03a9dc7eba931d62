package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/runtime/catalog"
	"github.com/sluicehq/sluice/runtime/pluginhost"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

func init() {
	addCommand(func(g *Globals) *cobra.Command {
		cmd := &cobra.Command{
			Use:   "plugins",
			Short: "List and inspect the connector plugins of --plugins-dir",
			Long: "Connector plugins are executables in --plugins-dir (see examples/plugin-csv). Sluice runs each\n" +
				"one to ask for its connectors, which manifests then name as `type: plugin:NAME`. A file\n" +
				"BINARY.sha256 beside a binary pins it: the binary is not run unless its sha256 matches.",
		}
		cmd.AddCommand(pluginsListCommand(g), pluginsInspectCommand(g))
		return cmd
	})
}

func pluginsListCommand(g *Globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the plugin binaries, their versions and connectors",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			plugins, derr, err := g.inspectPlugins(cmd.Context())
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return writeJSON(out, pluginsJSON(plugins, derr))
			}
			w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "BINARY\tVERSION\tPROTOCOL\tCONNECTORS\tSHA256")
			for _, p := range plugins {
				var cs []string
				for _, s := range p.Specs {
					cs = append(cs, fmt.Sprintf("%s %s%s", s.Kind, pluginhost.Prefix, s.Name))
				}
				fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\n", p.Name, orDash(p.Version), p.Protocol, strings.Join(cs, ", "), p.SHA256[:12])
			}
			if err := w.Flush(); err != nil {
				return err
			}
			if len(plugins) == 0 && len(derr) == 0 {
				fmt.Fprintf(out, "no plugins in %s\n", g.PluginsDir)
			}
			for _, e := range derr {
				fmt.Fprintf(out, "BROKEN %s\n", e)
			}
			if len(derr) > 0 {
				return &exitError{code: 1, msg: fmt.Sprintf("%d plugin binary(ies) failed", len(derr))}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func pluginsInspectCommand(g *Globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "inspect NAME",
		Short: "Print a plugin's version, checksum and connector specs (NAME: binary or plugin:CONNECTOR)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			plugins, derr, err := g.inspectPlugins(cmd.Context())
			if err != nil {
				return err
			}
			name := strings.TrimPrefix(args[0], pluginhost.Prefix)
			var found []*pluginhost.Plugin
			for _, p := range plugins {
				match := p.Name == args[0]
				for _, s := range p.Specs {
					match = match || s.Name == name
				}
				if match {
					found = append(found, p)
				}
			}
			if len(found) == 0 {
				for _, e := range derr {
					if filepath.Base(e.Path) == args[0] {
						return e
					}
				}
				return fmt.Errorf("plugins inspect: no plugin binary or connector named %q in %s", args[0], g.PluginsDir)
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return writeJSON(out, pluginsJSON(found, nil))
			}
			for i, p := range found {
				if i > 0 {
					fmt.Fprintln(out)
				}
				printPlugin(out, p)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// inspectPlugins runs every binary of --plugins-dir for its specs.
func (g *Globals) inspectPlugins(ctx context.Context) ([]*pluginhost.Plugin, []*pluginhost.DiscoverError, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	if g.PluginsDir == "" {
		return nil, nil, errors.New("plugins: set --plugins-dir to the directory holding plugin binaries")
	}
	log, err := g.Logger(os.Stderr)
	if err != nil {
		return nil, nil, err
	}
	h := pluginhost.New(pluginhost.Options{Logger: log})
	defer h.Close()
	plugins, err := h.Discover(ctx, g.PluginsDir)
	var derrs []*pluginhost.DiscoverError
	for _, e := range unjoin(err) {
		var de *pluginhost.DiscoverError
		if !errors.As(e, &de) {
			return nil, nil, e
		}
		derrs = append(derrs, de)
	}
	return plugins, derrs, nil
}

func unjoin(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

func printPlugin(w io.Writer, p *pluginhost.Plugin) {
	fmt.Fprintf(w, "binary:   %s\npath:     %s\nversion:  %s\nsdk:      %s\nprotocol: %d\nsha256:   %s\n",
		p.Name, p.Path, orDash(p.Version), orDash(p.SDKVersion), p.Protocol, p.SHA256)
	for _, s := range p.Specs {
		fmt.Fprintf(w, "\n%s %s%s — %s\n", s.Kind, pluginhost.Prefix, s.Name, s.Summary)
		if s.Bounded {
			fmt.Fprintln(w, "  bounded: ends on its own")
		}
		if s.Description != "" {
			fmt.Fprintf(w, "  %s\n", strings.ReplaceAll(strings.TrimSpace(s.Description), "\n", "\n  "))
		}
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  FIELD\tTYPE\tREQUIRED\tDEFAULT\tDESCRIPTION")
		for _, f := range append(append([]connector.Field(nil), s.Fields...), pluginhost.ReservedFields()...) {
			def := "-"
			if f.Default != nil {
				def = fmt.Sprint(f.Default)
			}
			typ := string(f.Type)
			if len(f.Enum) > 0 {
				typ += " (" + strings.Join(f.Enum, "|") + ")"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%v\t%s\t%s\n", f.Name, typ, f.Required, def, f.Description)
		}
		tw.Flush()
	}
}

type pluginJSON struct {
	Binary     string           `json:"binary"`
	Path       string           `json:"path"`
	Version    string           `json:"version,omitempty"`
	SDKVersion string           `json:"sdk_version,omitempty"`
	Protocol   int              `json:"protocol"`
	SHA256     string           `json:"sha256"`
	Connectors []connector.Spec `json:"connectors,omitempty"`
	Error      string           `json:"error,omitempty"`
}

func pluginsJSON(ps []*pluginhost.Plugin, derrs []*pluginhost.DiscoverError) []pluginJSON {
	out := []pluginJSON{}
	for _, p := range ps {
		out = append(out, pluginJSON{Binary: p.Name, Path: p.Path, Version: p.Version, SDKVersion: p.SDKVersion,
			Protocol: p.Protocol, SHA256: p.SHA256, Connectors: p.Specs})
	}
	for _, e := range derrs {
		out = append(out, pluginJSON{Binary: filepath.Base(e.Path), Path: e.Path, Error: e.Err.Error()})
	}
	return out
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// registerPlugins discovers the plugin binaries of dir and adds their connectors to cat as
// plugin:NAME, before manifests are loaded. A binary that fails (not
// a plugin, a checksum mismatch, an unsupported protocol) is logged and skipped; the others are
// registered. Plugin processes started later by the registered factories are stopped by the
// connectors' Close, and die with the sluice process.
func registerPlugins(ctx context.Context, cat *catalog.Catalog, dir string, log *slog.Logger, pm pluginhost.Metrics) error {
	_, plugins, err := pluginhost.DiscoverAndRegister(ctx, cat, dir, pluginhost.Options{Logger: log, Metrics: pm})
	for _, e := range unjoin(err) {
		log.Error("plugin skipped", "error", e)
	}
	for _, p := range plugins {
		log.Debug("plugin registered", "binary", p.Name, "version", p.Version, "connectors", len(p.Specs))
	}
	return nil
}
