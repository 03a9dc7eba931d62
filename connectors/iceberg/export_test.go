package iceberg

// CommitCounts returns what the sink's WriteTx calls did so far: commits tried, commits refused
// because another writer committed first, data files written again without records another
// instance committed, and table reads before a commit.
func CommitCounts(s *Sink) (attempts, conflicts, rewrites, preloads int) {
	return s.stats.attempts, s.stats.conflicts, s.stats.rewrites, s.stats.preloads
}

// NoPreload makes the sink commit against the table it last read even after conflicts, as it did
// before it read the table ahead of its commits, to measure what reading ahead saves.
func NoPreload(s *Sink) { s.noPreload = true }
