package cli

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// Version is set at build time with -ldflags "-X github.com/sluicehq/sluice/internal/cli.Version=v1.2.3".
var Version = "dev"

func init() {
	addCommand(func(g *Globals) *cobra.Command {
		return &cobra.Command{
			Use:   "version",
			Short: "Print the version of sluice",
			Args:  cobra.NoArgs,
			Run: func(cmd *cobra.Command, _ []string) {
				v := Version
				if bi, ok := debug.ReadBuildInfo(); ok && v == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
					v = bi.Main.Version
				}
				fmt.Fprintf(cmd.OutOrStdout(), "sluice %s %s %s/%s\n", v, runtime.Version(), runtime.GOOS, runtime.GOARCH)
			},
		}
	})
}
