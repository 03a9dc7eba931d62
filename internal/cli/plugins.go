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
	"gopkg.in/yaml.v3"

	"github.com/sluicehq/sluice/internal/pluginhost"
	"github.com/sluicehq/sluice/manifests"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

func init() {
	addCommand(func(g *Globals) *cobra.Command {
		cmd := &cobra.Command{
			Use:   "plugins",
			Short: "List and inspect the connector plugins of --plugins-dir",
			Long: "Connector plugins are executables in --plugins-dir (see examples/plugin-csv). Sluice runs each\n" +
				"pinned one to ask for its connectors, which manifests then name as `type: plugin:NAME`. A binary\n" +
				"is pinned by a file BINARY.sha256 beside it (`sha256sum BINARY > BINARY.sha256`; a binary whose\n" +
				"sha256 differs is refused) or, for `run` and `validate`, by a `sha256:` in a manifest's config of\n" +
				"one of its connectors. Binaries nothing pins are not run and are listed as UNVERIFIED, unless\n" +
				"--allow-unpinned-plugins is given.",
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
			if len(plugins) > 0 {
				fmt.Fprintln(w, "BINARY\tVERSION\tPROTOCOL\tCONNECTORS\tSHA256")
			}
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
			broken := 0
			for _, e := range derr {
				var ue *pluginhost.UnpinnedError
				if errors.As(e, &ue) {
					fmt.Fprintf(out, "UNVERIFIED %s (sha256 %s): not run; %s\n", filepath.Base(ue.Path), ue.SHA256, pinHint(ue))
					continue
				}
				fmt.Fprintf(out, "BROKEN %s\n", e)
				broken++
			}
			if broken > 0 {
				return &exitError{code: 1, msg: fmt.Sprintf("%d plugin binary(ies) failed", broken)}
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
				var unpinned []*pluginhost.UnpinnedError
				for _, e := range derr {
					var ue *pluginhost.UnpinnedError
					isUnpinned := errors.As(e, &ue)
					if base := filepath.Base(e.Path); base == args[0] || base == name {
						if isUnpinned {
							return fmt.Errorf("plugins inspect: %w; %s", e, pinHint(ue))
						}
						return e
					}
					if isUnpinned {
						unpinned = append(unpinned, ue)
					}
				}
				switch len(unpinned) {
				case 0:
					return fmt.Errorf("plugins inspect: no plugin binary or connector named %q in %s", args[0], g.PluginsDir)
				case 1:
					// Its connectors are unknown until it runs: it may be the one asked for.
					return fmt.Errorf("plugins inspect: no pinned plugin binary or connector named %q in %s; %s was not run because nothing pins its sha256 %s, so its connectors are unknown; %s",
						args[0], g.PluginsDir, filepath.Base(unpinned[0].Path), unpinned[0].SHA256, pinHint(unpinned[0]))
				}
				names := make([]string, len(unpinned))
				for i, ue := range unpinned {
					names[i] = filepath.Base(ue.Path)
				}
				return fmt.Errorf("plugins inspect: no pinned plugin binary or connector named %q in %s; %d binaries were not run because nothing pins them, so their connectors are unknown: %s; to run one, pin it with `sha256sum NAME > NAME.sha256` in %s, pin it in a manifest, or pass --allow-unpinned-plugins (`plugins list` prints each one's sha256)",
					args[0], g.PluginsDir, len(unpinned), strings.Join(names, ", "), g.PluginsDir)
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

// pinHint says how to let an unpinned binary run.
func pinHint(e *pluginhost.UnpinnedError) string {
	return fmt.Sprintf("to run it, pin it with `sha256sum %s > %s.sha256` in %s, pin it in a manifest (`sha256: %s` in a config of one of its connectors), or pass --allow-unpinned-plugins",
		filepath.Base(e.Path), filepath.Base(e.Path), filepath.Dir(e.Path), e.SHA256)
}

// inspectPlugins runs every pinned binary of --plugins-dir for its specs.
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
	h := pluginhost.New(pluginhost.Options{Logger: log, AllowUnpinned: g.AllowUnpinnedPlugins})
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

// unjoin flattens errors.Join trees (DiscoverAndRegister joins discovery's joined failures with
// registration's) into their leaves.
func unjoin(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, unjoin(e)...)
		}
		return out
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
	SHA256     string           `json:"sha256,omitempty"`
	Connectors []connector.Spec `json:"connectors,omitempty"`
	// Unverified: nothing pins the binary, so it was not run.
	Unverified bool   `json:"unverified,omitempty"`
	Error      string `json:"error,omitempty"`
}

func pluginsJSON(ps []*pluginhost.Plugin, derrs []*pluginhost.DiscoverError) []pluginJSON {
	out := []pluginJSON{}
	for _, p := range ps {
		out = append(out, pluginJSON{Binary: p.Name, Path: p.Path, Version: p.Version, SDKVersion: p.SDKVersion,
			Protocol: p.Protocol, SHA256: p.SHA256, Connectors: p.Specs})
	}
	for _, e := range derrs {
		j := pluginJSON{Binary: filepath.Base(e.Path), Path: e.Path, Error: e.Err.Error()}
		var ue *pluginhost.UnpinnedError
		if errors.As(e, &ue) {
			j.SHA256, j.Unverified = ue.SHA256, true
		}
		out = append(out, j)
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

// registerPlugins discovers the plugin binaries of --plugins-dir and adds their connectors to
// the catalog (g.Catalog) as plugin:NAME, before manifests are loaded. It runs the binaries
// pinned by a BINARY.sha256 file or by a sha256 pin in the manifests at manifestPaths (all of
// them with --allow-unpinned-plugins). A binary that is not pinned or fails (not a plugin, a
// checksum mismatch, an unsupported protocol) is logged and skipped; the others are registered.
// Plugin processes started later by the registered factories are stopped by the connectors'
// Close, and die with the sluice process.
func registerPlugins(ctx context.Context, g *Globals, log *slog.Logger, pm pluginhost.Metrics, manifestPaths []string) error {
	opts := pluginhost.Options{Logger: log, Metrics: pm, Pins: manifestPins(manifestPaths), AllowUnpinned: g.AllowUnpinnedPlugins}
	h, plugins, err := pluginhost.DiscoverAndRegister(ctx, g.Catalog, g.PluginsDir, opts)
	g.pluginHost = h
	for _, e := range unjoin(err) {
		var ue *pluginhost.UnpinnedError
		if errors.As(e, &ue) {
			log.Warn("plugin not run: not pinned", "binary", filepath.Base(ue.Path), "sha256", ue.SHA256, "hint", pinHint(ue))
			continue
		}
		log.Error("plugin skipped", "error", e)
	}
	for _, p := range plugins {
		log.Debug("plugin registered", "binary", p.Name, "version", p.Version, "connectors", len(p.Specs))
	}
	return nil
}

// manifestPins returns the sha256 pins of plugin connectors (`type: plugin:...` with a
// `config.sha256`, its ${env:NAME} and ${file:PATH} references resolved) in the manifests at paths:
// files, or directories of *.yaml and *.yml files.
// It reads what it can and ignores the rest; loading the manifests reports their problems.
func manifestPins(paths []string) []string {
	var pins []string
	var dir string // of the manifest being read
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if n.Kind == yaml.MappingNode {
			var typ, cfg *yaml.Node
			for i := 0; i+1 < len(n.Content); i += 2 {
				switch n.Content[i].Value {
				case "type":
					typ = n.Content[i+1]
				case "config":
					cfg = n.Content[i+1]
				}
			}
			if typ != nil && cfg != nil && strings.HasPrefix(typ.Value, pluginhost.Prefix) && cfg.Kind == yaml.MappingNode {
				for i := 0; i+1 < len(cfg.Content); i += 2 {
					if cfg.Content[i].Value == pluginhost.FieldSHA256 && cfg.Content[i+1].Kind == yaml.ScalarNode {
						if pin, ok := resolvePin(cfg.Content[i+1].Value, dir); ok {
							pins = append(pins, pin)
						}
					}
				}
			}
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	for _, path := range manifestFiles(paths) {
		dir = filepath.Dir(path)
		f, err := os.Open(path)
		if err != nil {
			continue
		}
		dec := yaml.NewDecoder(f)
		for {
			var doc yaml.Node
			if err := dec.Decode(&doc); err != nil {
				break
			}
			walk(&doc)
		}
		f.Close()
	}
	return pins
}

// resolvePin resolves the ${env:NAME} and ${file:PATH} references (PATH relative to the
// manifest's directory dir) and $${ escapes in a pin the way loading the manifest does. ok is
// false when a reference cannot be resolved; loading the manifest reports it.
func resolvePin(s, dir string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(s); {
		switch {
		case strings.HasPrefix(s[i:], "$${"):
			b.WriteString("${")
			i += 3
		case strings.HasPrefix(s[i:], "${"):
			end := strings.IndexByte(s[i:], '}')
			if end < 0 {
				return "", false
			}
			body := s[i+2 : i+end]
			i += end + 1
			switch {
			case strings.HasPrefix(body, "env:"):
				v, ok := os.LookupEnv(body[len("env:"):])
				if !ok {
					return "", false
				}
				b.WriteString(v)
			case strings.HasPrefix(body, "file:") && len(body) > len("file:"):
				path := body[len("file:"):]
				if !filepath.IsAbs(path) {
					path = filepath.Join(dir, path)
				}
				data, err := os.ReadFile(path)
				if err != nil || len(data) > 4<<10 {
					return "", false
				}
				v := strings.TrimSuffix(string(data), "\n")
				b.WriteString(strings.TrimSuffix(v, "\r"))
			default:
				return "", false
			}
		default:
			b.WriteByte(s[i])
			i++
		}
	}
	return b.String(), true
}

// manifestFiles expands directories to their manifests (manifests.DirFiles).
func manifestFiles(paths []string) []string {
	var files []string
	for _, p := range paths {
		fs, err := manifests.DirFiles(p)
		if err != nil { // not a directory: a manifest itself
			files = append(files, p)
			continue
		}
		files = append(files, fs...)
	}
	return files
}
