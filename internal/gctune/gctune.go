// Package gctune holds the garbage collector setting of a process that runs pipelines (`sluice
// run`, and the benchmark programs that stand for it).
package gctune

import (
	"os"
	"runtime/debug"
)

// Percent is the GOGC of a process running pipelines, unless its environment sets GOGC. A
// pipeline's live heap is the records in flight, which the engine's budget bounds
// (buffer.max_records, buffer.max_bytes: 64 MiB by default), while it allocates every record it
// reads anew; with Go's default of 100 the collector ran about half the time a Kafka source
// spent, and 200 took Kafka → drop from 0.72 to about 0.9 of a plain franz-go consumer's
// records/s for 30-60 MB more peak memory (runtime/RATIONALE.md, "Garbage collection").
const Percent = 200

// Apply sets GOGC to Percent unless the environment sets GOGC; it returns the percent in force
// (-1 for off).
func Apply() int {
	if _, set := os.LookupEnv("GOGC"); set {
		p := debug.SetGCPercent(100)
		debug.SetGCPercent(p)
		return p
	}
	debug.SetGCPercent(Percent)
	return Percent
}
