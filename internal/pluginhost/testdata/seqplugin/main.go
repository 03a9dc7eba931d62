// Command seqplugin is the plugin binary of the plugin host's tests.
package main

import (
	"github.com/sluicehq/sluice/internal/pluginhost/internal/testconn"
	"github.com/sluicehq/sluice/sdk/go/plugin"
)

func main() { plugin.Serve(testconn.Plugin()) }
