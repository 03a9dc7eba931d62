// Package transform defines what the engine expects of a transform stage: one call per batch, one
// disposition per input record. The WASM host implements it for modules; tests and built-in
// stages may implement it directly.
package transform

import (
	"context"
	"errors"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

// ErrBroken is wrapped by the error of a Process call when the stage, not the records, is at
// fault: for a WASM stage, when its guest calls keep failing whatever records they get. Retrying
// the batch will not help; the engine stops (or degrades) the pipeline and says so.
var ErrBroken = errors.New("stage is broken")

// Action is what a stage decided for one input record.
type Action uint8

// Actions.
const (
	// Pass forwards the input record unchanged on the default port. Nothing is copied.
	Pass Action = iota
	// Drop removes the record. It counts as delivered.
	Drop
	// Emit replaces the record by zero or more new records (Result.Emitted entries naming it).
	Emit
	// Reject sends the record to the dead-letter sink (or drops it or stops the pipeline, as the
	// manifest's on_reject says) with a code and a reason.
	Reject
)

// DefaultPort is the output port of passed records and of emitted records that name no port.
const DefaultPort = "main"

// Emitted is a record produced by a stage.
type Emitted struct {
	// Input is the index of the input record it derives from; its position is acked only when
	// every record emitted from it is delivered.
	Input int
	// Port routes the record to the sinks that read from that port. Empty means DefaultPort.
	Port   string
	Record connector.Record
}

// Rejected is an input record the stage refused.
type Rejected struct {
	Input  int
	Code   uint16
	Reason string
}

// Result is the outcome of one Process call.
type Result struct {
	// Actions holds one action per input record, in input order.
	Actions []Action
	// Emitted holds the records of inputs whose action is Emit, in input order.
	Emitted []Emitted
	// Rejected holds the inputs whose action is Reject, in input order.
	Rejected []Rejected
}

// Stage processes batches. Process is called from one goroutine at a time per Stage value unless
// the implementation documents otherwise; a stage that wants parallelism pools internally.
//
// An error from Process means the batch as a whole could not be processed (after the stage's own
// retries and bisection); the engine then stops the pipeline. An error wrapping ErrBroken says the
// stage itself is unusable. Records a stage could isolate as poison are returned as Rejected
// instead.
type Stage interface {
	Name() string
	Process(ctx context.Context, in []connector.Record) (Result, error)
	Close(ctx context.Context) error
}
