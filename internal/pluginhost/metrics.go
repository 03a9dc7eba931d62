package pluginhost

import "time"

// Metrics receives the host's telemetry. Implementations must be safe for concurrent use and
// must not block; the engine adapts it to Prometheus.
type Metrics interface {
	// PluginRestarted counts one restart of a plugin process after a crash or a missed deadline.
	PluginRestarted(plugin string)
	// PluginCall observes one call into a plugin: its method ("read", "write", ...), how long it
	// took and whether it failed.
	PluginCall(plugin, method string, took time.Duration, err error)
}

type nopMetrics struct{}

func (nopMetrics) PluginRestarted(string)                          {}
func (nopMetrics) PluginCall(string, string, time.Duration, error) {}
