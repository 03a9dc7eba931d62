// Package connector defines the contract between the Sluice runtime and its sources and sinks.
//
// The same interfaces serve connectors compiled into the sluice binary and connectors shipped as
// plugin binaries: a connector written against this package runs either way without changes.
//
// Work moves in batches. A Source returns a batch of records from Read; a Sink makes a whole batch
// durable in Write. Every record carries the Position it came from, so the runtime can checkpoint
// per partition and tell the source, through Ack, which positions are durable everywhere.
package connector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// HeaderMalformed is the key of the header with which a source marks a record it could not read
// as data (a line over its length limit, say); the header's value is the reason. The runtime sends
// such a record, without that header, to the pipeline's dead-letter sink (stage "source", kind
// "malformed") instead of the transforms and sinks, and commits its position like any other.
//
// Header keys starting with ReservedHeaderPrefix belong to the runtime. A source that forwards
// headers from an upstream system (Kafka or Pulsar message headers, HTTP response headers) must
// drop or rename the upstream ones that start with it (IsReservedHeader tells), or a producer
// could send its own records to the dead letters.
const HeaderMalformed = ReservedHeaderPrefix + "malformed"

// ReservedHeaderPrefix starts every header key the runtime gives a meaning to.
const ReservedHeaderPrefix = "sluice-"

// IsReservedHeader reports whether a header key is the runtime's (starts with
// ReservedHeaderPrefix, in any letter case), so a source forwarding upstream headers can drop it.
func IsReservedHeader(key string) bool {
	return len(key) >= len(ReservedHeaderPrefix) && strings.EqualFold(key[:len(ReservedHeaderPrefix)], ReservedHeaderPrefix)
}

// Header is one record header. Keys may repeat.
type Header struct {
	Key   string
	Value []byte
}

// Position says where a record sits in its source. Positions are per partition: a source with
// several partitions (Kafka topic partitions, files, HTTP endpoints) reports a Partition name that
// is stable across restarts, so the runtime can checkpoint and resume each partition on its own.
//
// Within one partition the runtime orders positions by the order the source returned them, not by
// their values; Offset and Cursor are the source's own business and are handed back unchanged on
// Open (resume) and Ack.
type Position struct {
	// Partition names the partition ("orders/3", a file path). Empty for single-partition sources.
	Partition string
	// Offset is a numeric position (a byte offset, a Kafka offset), when the source has one.
	Offset int64
	// Cursor is an opaque resume token (a Pulsar message id, an HTTP cursor), when Offset is not enough.
	Cursor []byte
}

// String renders the position for logs and errors.
func (p Position) String() string {
	if len(p.Cursor) > 0 {
		return fmt.Sprintf("%s@%d+%q", p.Partition, p.Offset, p.Cursor)
	}
	return fmt.Sprintf("%s@%d", p.Partition, p.Offset)
}

// Record is the unit of data. Sources fill Position; everything else is optional.
//
// Records are passed by value inside batches. Byte slices are owned by whoever created the batch:
// a stage that keeps a record beyond the call that handed it over must not assume the slices stay
// unchanged unless it created them, and a sink must not modify them.
type Record struct {
	Key      []byte
	Value    []byte
	Headers  []Header
	Time     time.Time
	Position Position
}

// HeaderOverhead is what Record.Size charges for each header on top of its key and value: the
// Header in its slice and the string and slice headers it holds, so that many empty headers do
// not pass for a small record.
const HeaderOverhead = 48

// Size is the approximate memory footprint of the record's payload in bytes, used by the runtime
// to bound its queues.
func (r *Record) Size() int {
	n := len(r.Key) + len(r.Value) + len(r.Position.Cursor) + 64
	for _, h := range r.Headers {
		n += HeaderOverhead + len(h.Key) + len(h.Value)
	}
	return n
}

// Env is what the runtime hands every connector at construction: a scoped logger and where it may
// keep local files. Constructors must not do I/O; that belongs in Open.
type Env struct {
	// Logger is scoped to the pipeline and component. Never nil.
	Logger *slog.Logger
	// Pipeline is the name of the pipeline the connector runs in.
	Pipeline string
	// Component is the component's name in the manifest (the sink name, or "source").
	Component string
	// DataDir is a directory private to this component for local state. It may be empty when the
	// runtime has no data directory (validation, docs).
	DataDir string
}

// Source reads batches of records from an external system.
//
// The runtime calls Open once, then Read repeatedly from one goroutine, and Ack from another
// goroutine, concurrently with Read. Close is called once at the end, also after a failed Open.
type Source interface {
	// Open connects and positions the source strictly after the given positions, one per
	// partition, which are the last positions the runtime made durable. An empty slice means start
	// from the configured beginning.
	Open(ctx context.Context, resume []Position) error
	// Read returns the next batch. It blocks until at least one record is available or ctx is
	// done, and returns io.EOF (with no records) when a bounded source is exhausted. It must return
	// promptly when ctx is cancelled.
	Read(ctx context.Context) ([]Record, error)
	// Ack tells the source that every record up to and including each given position, one per
	// partition, is durable in every sink. Sources with an upstream commit (Kafka offsets, Pulsar
	// acks) commit here; the runtime has already stored the positions in its checkpoint store.
	Ack(ctx context.Context, positions []Position) error
	// Close releases resources. It is idempotent and safe after a failed Open.
	Close(ctx context.Context) error
}

// Sink writes batches of records to an external system.
//
// The runtime calls Open once, then Write from one goroutine at a time, then Close, which is also
// called after a failed Open.
type Sink interface {
	// Open connects to the system.
	Open(ctx context.Context) error
	// Write makes every record of the batch durable before it returns nil. When some records fail
	// for reasons of their own (a constraint violation, a value the system refuses) and the rest
	// were written, it returns a *BatchError naming them; any other error means the write as a whole
	// failed and may be retried.
	Write(ctx context.Context, records []Record) error
	// Close flushes and releases resources. It is idempotent and safe after a failed Open.
	Close(ctx context.Context) error
}

// RecordError is the failure of one record of a batch.
type RecordError struct {
	// Index is the record's index in the batch passed to Write.
	Index int
	// Err says why; it becomes the dead-letter reason.
	Err error
}

// BatchError reports that some records of a batch failed permanently while the others were made
// durable. The runtime sends the failed records to the dead-letter sink.
type BatchError struct {
	Failed []RecordError
}

func (e *BatchError) Error() string {
	if len(e.Failed) == 0 {
		return "batch error with no failed records"
	}
	return fmt.Sprintf("%d record(s) failed; first (index %d): %v", len(e.Failed), e.Failed[0].Index, e.Failed[0].Err)
}

// ErrPermanent marks an error that retrying cannot fix (bad credentials, a missing table). Wrap
// it with fmt.Errorf("...: %w", connector.ErrPermanent) to stop the runtime from retrying.
var ErrPermanent = errors.New("permanent error")

// Backlog is how much of one source partition lies after a position, up to the source's current
// end.
type Backlog struct {
	Partition string
	// Records after the position; -1 when the source cannot tell.
	Records int64
	// Bytes after the position; -1 when the source cannot tell.
	Bytes int64
}

// BacklogSource is implemented by sources that can tell how far a position is from their end,
// so the runtime can export lag per partition (sluice_source_backlog_records and _bytes).
//
// The runtime calls Backlog every few seconds, concurrently with Read and Ack, with the last
// checkpointed position of each partition it knows (none for a partition not yet checkpointed,
// which counts from the beginning the source would start at). It must be cheap (a stat, a
// metadata request; never reading the data), bounded by ctx, and must not change what Read
// returns. Partitions the source has but the runtime has not named are reported too.
type BacklogSource interface {
	Backlog(ctx context.Context, after []Position) ([]Backlog, error)
}
