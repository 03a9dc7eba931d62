package pluginhost

import (
	"sync"
	"time"
)

// counters is a Metrics that counts restarts per plugin, for tests.
type counters struct {
	mu       sync.Mutex
	restarts map[string]int64
}

func (c *counters) PluginRestarted(plugin string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.restarts == nil {
		c.restarts = map[string]int64{}
	}
	c.restarts[plugin]++
}

func (c *counters) PluginCall(string, string, time.Duration, error) {}

// Restarts returns the restart count of a plugin.
func (c *counters) Restarts(plugin string) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.restarts[plugin]
}
