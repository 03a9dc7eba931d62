// Command sluice runs Sluice pipelines. See README.md.
package main

import (
	"os"

	"github.com/sluicehq/sluice/internal/cli"
)

func main() { os.Exit(cli.Main(os.Args[1:])) }
