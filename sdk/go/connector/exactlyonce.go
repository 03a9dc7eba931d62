package connector

import "context"

// TransactionalSink is implemented by sinks that store source positions in the same transaction
// as their data (a positions table beside the rows, a snapshot summary, a MULTI/EXEC, a Kafka
// transaction). With `delivery: exactly_once` the runtime writes to such a sink only through
// WriteTx, resumes the source from the positions the sinks stored, and gives each sink only the
// records after what it stored, so every sink holds every record once even when several sinks
// stopped at different points.
//
// The positions belong to one (pipeline, sink) pair: a sink keys what it stores by Env.Pipeline
// and Env.Component, so two pipelines (or two sinks of one pipeline) writing to the same table
// never read each other's positions.
//
// A sink whose Spec has ExactlyOnce set must implement this interface.
type TransactionalSink interface {
	Sink
	// CheckExactlyOnce reports, without I/O, whether this sink as configured can be written
	// exactly once (a Redis sink in publish mode cannot). A non-nil error is shown at validate
	// time; a *ConfigError names the field that prevents it.
	CheckExactlyOnce() error
	// StoredPositions returns the positions this sink stored with its data, the last one per
	// source partition, as of the last committed transaction. Called after Open, before any
	// WriteTx. None means the sink holds nothing from this pipeline yet.
	StoredPositions(ctx context.Context) ([]Position, error)
	// WriteTx makes the records durable together with the positions, atomically: after a crash
	// either both are stored or neither. positions holds, per source partition, the last position
	// the write covers; it may name partitions none of the records come from (their records were
	// filtered out or dead-lettered), and records may be empty when only positions move. A
	// *BatchError names records refused for reasons of their own; the others and the positions are
	// then stored. Any other error means nothing was stored and the call may be retried.
	WriteTx(ctx context.Context, records []Record, positions []Position) error
}

// ComparablePositions is implemented by sources whose positions can be ordered after a restart:
// within one partition, a later record has a larger Offset. Exactly-once delivery needs it, to
// skip for each sink the records it already stored. The runtime checks it on a constructed
// source (without I/O), so a source may answer per configuration.
type ComparablePositions interface {
	PositionsComparable() bool
}

// SharedPositions is implemented by transactional sinks whose positions several processes of one
// pipeline may store at once: a consumer group splits the partitions between the processes and
// moves them on rebalances, and a process that lost a partition may still finish a write of it.
// Such a sink's WriteTx must, atomically with the write:
//   - skip every record at or before the offset stored for its partition when the write commits,
//     whichever process stored it (not only when this sink last read the positions);
//   - store, per partition, the greater of the stored offset and the one given: a position never
//     moves back;
//   - leave the positions of partitions it was not given as they are;
//
// and concurrent WriteTx calls of several instances (same pipeline and component) must each
// succeed, retrying a lost race itself, never store a record twice and never lose one. Records at
// one position are the same whichever process derived them, so skipping by offset is enough.
// StoredPositions then takes no exclusive hold of the positions.
//
// With delivery: exactly_once and a source whose partitions are shared by a group of processes
// (connector.GroupedSource), the runtime warns of every sink that does not report
// SharesPositions true: such a pipeline must run as one process.
type SharedPositions interface {
	SharesPositions() bool
}

// GroupedSource is implemented by sources whose partitions several processes of one pipeline
// may share, as members of a consumer group. Grouped reports, without I/O, whether this source
// as configured does.
type GroupedSource interface {
	Grouped() bool
}
