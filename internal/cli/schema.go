package cli

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/manifests"
)

func init() {
	addCommand(func(g *Globals) *cobra.Command {
		var output string
		cmd := &cobra.Command{
			Use:   "schema",
			Short: "Print the JSON Schema of pipeline manifests, for editors",
			Long: "Schema prints a JSON Schema (draft-07) of one pipeline document, generated from every registered\n" +
				"source and sink, so editors complete and check manifests. With yaml-language-server, save it and\n" +
				"start a manifest with:\n\n    # yaml-language-server: $schema=path/to/sluice.schema.json",
			Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, args []string) error {
				log, err := g.Logger(os.Stderr)
				if err != nil {
					return err
				}
				if err := g.discoverPlugins(cmd.Context(), log); err != nil {
					return err
				}
				data, err := manifests.JSONSchema(g.Catalog)
				if err != nil {
					return err
				}
				if output != "" {
					if err := os.WriteFile(output, data, 0o644); err != nil {
						return fmt.Errorf("schema: %w", err)
					}
					return nil
				}
				_, err = cmd.OutOrStdout().Write(data)
				return err
			},
		}
		cmd.Flags().StringVarP(&output, "output", "o", "", "write the schema to this file instead of standard output")
		return cmd
	})
}
