//go:build !wasip1

package aggregate

// Outside WebAssembly (native tests) there is no host: logs and counters go nowhere.

func hostLog(Level, string) {}

func hostMetricAdd(string, int64) {}
