package connector

import "context"

// PipelinedSink is an optional interface of a Sink that takes the next batch before the previous
// one is durable, so that handing a batch over (a network transfer, a plugin process boundary)
// overlaps writing the one before. The plugin host's sinks implement it.
//
// WriteAsync hands the batch over and returns; wait, called exactly once, blocks until the batch
// is durable (nil) or failed, with the meaning of Write's error (a *BatchError names failed
// records of an otherwise durable batch). Batches become durable in the order of the WriteAsync
// calls, and a batch handed over while an earlier one was not yet durable is made durable only if
// that one was: after a failure, the runtime writes the failed batch and the ones after it again.
// The runtime calls WriteAsync from one goroutine, never concurrently with Write, and calls the
// waits in order from one other goroutine, so a wait may run while a later WriteAsync does: state
// the two share must be guarded. The runtime hands a batch over as soon as it has one, while
// earlier writes are in flight (up to MaxWritesInFlight, so a sink keeping the buffers of
// completed writes for later ones needs no more than that many), and completes each write as soon
// as its wait returned. The records stay untouched until their wait returned.
type PipelinedSink interface {
	Sink
	WriteAsync(ctx context.Context, records []Record) (wait func() error)
}

// MaxWritesInFlight is how many writes the runtime has handed a PipelinedSink at most before the
// oldest of them completed.
const MaxWritesInFlight = 8
