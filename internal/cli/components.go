package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/manifests"
	"github.com/sluicehq/sluice/runtime/catalog"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

func init() {
	addCommand(func(g *Globals) *cobra.Command {
		return &cobra.Command{
			Use:   "components",
			Short: "List every registered source and sink",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, args []string) error {
				if err := g.loadPlugins(cmd.Context()); err != nil {
					return err
				}
				return listComponents(cmd.OutOrStdout(), g.Catalog)
			},
		}
	})
	addCommand(func(g *Globals) *cobra.Command {
		return &cobra.Command{
			Use:   "docs [NAME]",
			Short: "Print the reference of a source or sink (NAME, source/NAME or sink/NAME)",
			Long: "Docs prints the markdown reference of a component: what it does, every configuration field with\n" +
				"its type, default and allowed values, and an example. When NAME is both a source and a sink, both\n" +
				"are printed; source/NAME or sink/NAME picks one. Without NAME it lists the components. `sluice docs\n" +
				"pipeline` prints the reference of the manifest itself, with the runtime's defaults.",
			Args: cobra.MaximumNArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				if err := g.loadPlugins(cmd.Context()); err != nil {
					return err
				}
				if len(args) == 0 {
					return listComponents(cmd.OutOrStdout(), g.Catalog)
				}
				if _, notFound := findComponents(g.Catalog, args[0]); args[0] == "pipeline" && notFound != nil {
					_, err := fmt.Fprint(cmd.OutOrStdout(), manifests.RenderPipelineDocs())
					return err
				}
				specs, err := findComponents(g.Catalog, args[0])
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				for i, s := range specs {
					if i > 0 {
						fmt.Fprintln(out)
					}
					fmt.Fprint(out, manifests.RenderDocs(s))
				}
				return nil
			},
		}
	})
}

// listComponents prints a table of the catalog's components and how to read one's reference.
func listComponents(out io.Writer, cat *catalog.Catalog) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "KIND\tNAME\tSUMMARY")
	for _, c := range cat.Components() {
		fmt.Fprintf(w, "%s\t%s\t%s\n", c.Spec.Kind, c.Spec.Name, c.Spec.Summary)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintln(out, "\n`sluice docs NAME` prints the reference of one of them; `sluice docs pipeline` that of the manifest.")
	return err
}

// loadPlugins registers the plugin components of --plugins-dir, logging to stderr.
func (g *Globals) loadPlugins(ctx context.Context) error {
	if ctx == nil {
		ctx = context.Background()
	}
	log, err := g.Logger(os.Stderr)
	if err != nil {
		return err
	}
	return g.discoverPlugins(ctx, log)
}

// findComponents resolves NAME, source/NAME or sink/NAME to the specs it names.
func findComponents(cat *catalog.Catalog, arg string) ([]connector.Spec, error) {
	kinds := []connector.Kind{connector.KindSource, connector.KindSink}
	name := arg
	if k, n, ok := strings.Cut(arg, "/"); ok && (k == string(connector.KindSource) || k == string(connector.KindSink)) {
		kinds, name = []connector.Kind{connector.Kind(k)}, n
	}
	var specs []connector.Spec
	var all []string
	for _, k := range kinds {
		if c, ok := cat.Lookup(k, name); ok {
			specs = append(specs, c.Spec)
		}
		all = append(all, cat.Names(k)...)
	}
	if len(specs) > 0 {
		return specs, nil
	}
	msg := fmt.Sprintf("docs: no component named %q", arg)
	if s := manifests.Suggest(name, all); s != "" {
		msg += fmt.Sprintf("; did you mean %q?", s)
	}
	return nil, fmt.Errorf("%s (`sluice components` lists them)", msg)
}
