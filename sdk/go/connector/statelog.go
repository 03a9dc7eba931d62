package connector

import "context"

// StateLogSource is implemented by sources whose partitions move between processes, such as a
// Kafka consumer group: stateful stages (aggregations) keep the state of each partition in a log
// the source provides, so that when a partition moves to another process its state follows.
type StateLogSource interface {
	// StateLog opens the log named name (created when missing), or returns ok false when the
	// source, as configured, has no partitions that move (a Kafka source without a group).
	StateLog(ctx context.Context, name string) (log StateLog, ok bool, err error)
	// OnAssigned registers f, called with the names of the partitions (Position.Partition) each
	// time the process is given partitions, before any of their records is read.
	OnAssigned(f func(partitions []string))
	// Committed returns the position (Offset) of the last record of a partition whose
	// commit upstream this process knows of, so that state versions are cleaned up only up to
	// what is committed (an Ack may skip partitions the process no longer owns).
	Committed(partition string) (offset int64, ok bool)
}

// StateLog is a durable, compacted log of state entries by key, per source partition.
type StateLog interface {
	// Append writes entries and returns once they are durable. A nil Value deletes the key.
	Append(ctx context.Context, entries []StateEntry) error
	// Read returns the entries of one source partition, oldest first, up to the end of the log
	// when called.
	Read(ctx context.Context, partition string) ([]StateEntry, error)
	Close() error
}

// StateEntry is one entry of a StateLog.
type StateEntry struct {
	Partition string // the source partition it belongs to
	Key       []byte
	Value     []byte // nil: a deletion
}

// PartitionReleaser is implemented by a StateLogSource that says when partitions stop being this
// process's: revoked once their records were delivered, or lost (the group expelled the
// process), possibly with records still in flight. Stateful stages then drop the partitions'
// state and their records still in flight, and write nothing of them to the state log, so that
// the next owner's state is the one it restored.
type PartitionReleaser interface {
	// OnReleased registers f, called with the names of the partitions each time the process
	// loses or gives up partitions.
	OnReleased(f func(partitions []string))
}
