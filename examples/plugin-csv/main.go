// Command sluice-plugin-csv is a Sluice connector plugin: a CSV file source and sink. Put the
// built binary in the directory given to `sluice --plugins-dir` and name it in a manifest as
// `type: plugin:csv`.
package main

import (
	"github.com/sluicehq/sluice/examples/plugin-csv/csvconn"
	"github.com/sluicehq/sluice/sdk/go/plugin"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0"

func main() {
	plugin.Serve(plugin.Plugin{
		Version:    version,
		Components: csvconn.Components(),
	})
}
