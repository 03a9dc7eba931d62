package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/manifests"
	"github.com/sluicehq/sluice/runtime/catalog"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

func init() {
	addCommand(func(g *Globals) *cobra.Command {
		var asJSON bool
		cmd := &cobra.Command{
			Use:   "validate MANIFEST_OR_DIR...",
			Short: "Check manifests without running anything",
			Long: "Validate loads the manifests (files, or directories of *.yaml/*.yml files) exactly as run would:\n" +
				"strict keys and types, component configs against their specs, ${env:NAME} and ${file:PATH}\n" +
				"references, WASM modules (they load, export the ABI, match their sha256), and the components'\n" +
				"own checks. It prints every problem as FILE:LINE:COL: message and exits 1, or prints a summary\n" +
				"and exits 0. Secret values never appear in its output.",
			Args: cobra.MinimumNArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				return validateManifests(cmd.Context(), g, args, asJSON, cmd.OutOrStdout())
			},
		}
		cmd.Flags().BoolVar(&asJSON, "json", false, "print the problems as a JSON array of {file, line, col, message, hint}")
		return cmd
	})
}

func validateManifests(ctx context.Context, g *Globals, args []string, asJSON bool, out io.Writer) error {
	if ctx == nil {
		ctx = context.Background()
	}
	log, err := g.Logger(os.Stderr)
	if err != nil {
		return err
	}
	if err := g.discoverPlugins(ctx, log, args...); err != nil {
		return err
	}
	stages := newStageFactory(g, log)
	defer stages.Close(context.Background())
	pipelines, diags := manifests.Load(args, manifests.LoadOptions{Catalog: g.Catalog, CheckModule: stages.Check})
	if len(diags) == 0 {
		diags = append(constructComponents(ctx, g.Catalog, pipelines), stages.CheckPorts(pipelines)...)
		diags.Sort()
	}
	if asJSON {
		type jsonDiag struct {
			File    string `json:"file"`
			Line    int    `json:"line"`
			Col     int    `json:"col"`
			Message string `json:"message"`
			Hint    string `json:"hint,omitempty"`
		}
		list := make([]jsonDiag, 0, len(diags))
		for _, d := range diags {
			list = append(list, jsonDiag{d.Pos.File, d.Pos.Line, d.Pos.Col, d.Message, d.Hint})
		}
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(list); err != nil {
			return fmt.Errorf("validate: %w", err)
		}
	} else {
		for _, d := range diags {
			fmt.Fprintln(out, d.String())
		}
	}
	if len(diags) > 0 {
		return &exitError{code: 1, msg: plural(len(diags), "problem", "problems") + " found"}
	}
	if len(pipelines) == 0 {
		return &exitError{code: 1, msg: "no pipelines found in " + strings.Join(args, ", ")}
	}
	if !asJSON {
		names := make([]string, len(pipelines))
		for i, p := range pipelines {
			names[i] = p.Name
		}
		fmt.Fprintf(out, "ok: %s (%s)\n", plural(len(pipelines), "pipeline", "pipelines"), strings.Join(names, ", "))
	}
	return nil
}

// constructComponents builds every source and sink of the pipelines, without opening them, so
// that the components' own configuration checks (connector.ConfigError) are reported too.
func constructComponents(ctx context.Context, cat *catalog.Catalog, pipelines []*manifests.Pipeline) manifests.Diagnostics {
	var diags manifests.Diagnostics
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	try := func(p *manifests.Pipeline, c *manifests.Component, kind connector.Kind, label, name string) {
		reg, ok := cat.Lookup(kind, c.Type)
		if !ok {
			return // Load reported it
		}
		env := connector.Env{Logger: quiet, Pipeline: p.Name, Component: name}
		var closer interface{ Close(context.Context) error }
		var err error
		if kind == connector.KindSource {
			var s connector.Source
			s, err = reg.NewSource(c.Config, env)
			closer = s
		} else {
			var s connector.Sink
			s, err = reg.NewSink(c.Config, env)
			closer = s
		}
		if err != nil {
			diags = append(diags, c.ErrorDiagnostic(label, err))
			return
		}
		if closer != nil {
			_ = closer.Close(ctx)
		}
	}
	for _, p := range pipelines {
		try(p, &p.Source, connector.KindSource, "source", "source")
		for i := range p.Sinks {
			s := &p.Sinks[i]
			try(p, &s.Component, connector.KindSink, fmt.Sprintf("sink %q", s.Name), s.Name)
		}
		if p.DeadLetter != nil {
			try(p, p.DeadLetter, connector.KindSink, "dead_letter", "dead_letter")
		}
	}
	return diags
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
