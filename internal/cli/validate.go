package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/internal/metrics"
	"github.com/sluicehq/sluice/runtime/supervisor"
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
	l, err := g.loadPipelines(ctx, log, metrics.New(), supervisor.Options{}, args)
	if err != nil {
		return err
	}
	defer l.sup.Close(context.Background())
	pipelines, diags := l.specs, l.diags
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

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
