package pluginhost

import (
	"sort"
	"sync"
	"time"
)

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

// Counters is a Metrics kept in memory: plain counters, for tests, benchmarks and the CLI. The
// zero value is ready; it is safe for concurrent use.
type Counters struct {
	mu       sync.Mutex
	restarts map[string]int64
	calls    map[string]*CallStats
}

// CallStats aggregates the calls of one plugin and method.
type CallStats struct {
	Calls  int64
	Errors int64
	Total  time.Duration
}

// PluginRestarted implements Metrics.
func (c *Counters) PluginRestarted(plugin string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.restarts == nil {
		c.restarts = map[string]int64{}
	}
	c.restarts[plugin]++
}

// PluginCall implements Metrics.
func (c *Counters) PluginCall(plugin, method string, took time.Duration, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.calls == nil {
		c.calls = map[string]*CallStats{}
	}
	k := plugin + "/" + method
	s := c.calls[k]
	if s == nil {
		s = &CallStats{}
		c.calls[k] = s
	}
	s.Calls++
	s.Total += took
	if err != nil {
		s.Errors++
	}
}

// Restarts returns the restart count of a plugin.
func (c *Counters) Restarts(plugin string) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.restarts[plugin]
}

// Calls returns a copy of the call statistics keyed "plugin/method", and the keys sorted.
func (c *Counters) Calls() (map[string]CallStats, []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]CallStats, len(c.calls))
	keys := make([]string, 0, len(c.calls))
	for k, v := range c.calls {
		out[k] = *v
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return out, keys
}
