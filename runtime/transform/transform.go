// Package transform defines what the engine expects of a transform stage: one call per batch, one
// disposition per input record. The WASM host implements it for modules; tests and built-in
// stages may implement it directly.
package transform

import (
	"context"
	"errors"
	"iter"

	"github.com/sluicehq/sluice/sdk/go/abi"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// ErrBroken is wrapped by the error of a Process call when the stage, not the records, is at
// fault: for a WASM stage, when its guest calls keep failing whatever records they get. Retrying
// the batch will not help; the engine stops (or degrades) the pipeline and says so.
var ErrBroken = errors.New("stage is broken")

// Action is what a stage decided for one input record: the ABI's action type (sdk/go/abi), so
// that a WASM stage's dispositions need no translation.
type Action = abi.Action

// Actions.
const (
	// Pass forwards the input record unchanged on the default port. Nothing is copied.
	Pass = abi.Pass
	// Drop removes the record. It counts as delivered.
	Drop = abi.Drop
	// Emit replaces the record by zero or more new records (Result.Emitted entries naming it).
	Emit = abi.Emit
	// Reject sends the record to the dead-letter sink (or drops it or stops the pipeline, as the
	// manifest's on_reject says) with a code and a reason.
	Reject = abi.Reject
)

// Emitted is a record produced by a stage.
type Emitted struct {
	// Input is the index of the input record it derives from; its position is acked only when
	// every record emitted from it is delivered.
	Input int
	// Port routes the record to the sinks that read from that port. Empty means the default port
	// (abi.DefaultPort, "main").
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

// Outcome is what a stage decided for one input record, gathered from a Result by Outcomes.
type Outcome struct {
	Input  int
	Action Action
	// Emitted holds the records emitted for the input, in order (Emit; may be empty).
	Emitted []Emitted
	// Rejected is the input's rejection (Reject). Code 0 and an empty Reason when the stage gave
	// none.
	Rejected Rejected
}

// Outcomes yields the outcome of each input record, in input order: one per Actions entry, with
// the Emitted and Rejected entries that name it. It relies on those being in input order, as
// Result requires; entries that name no input of the right action are skipped.
func (r *Result) Outcomes() iter.Seq[Outcome] {
	return func(yield func(Outcome) bool) {
		ei, ri := 0, 0
		for i, a := range r.Actions {
			o := Outcome{Input: i, Action: a, Rejected: Rejected{Input: i}}
			for ei < len(r.Emitted) && r.Emitted[ei].Input < i {
				ei++
			}
			start := ei
			for ei < len(r.Emitted) && r.Emitted[ei].Input == i {
				ei++
			}
			if a == Emit {
				o.Emitted = r.Emitted[start:ei:ei]
			}
			for ri < len(r.Rejected) && r.Rejected[ri].Input < i {
				ri++
			}
			if ri < len(r.Rejected) && r.Rejected[ri].Input == i {
				if a == Reject {
					o.Rejected = r.Rejected[ri]
				}
				ri++
			}
			if !yield(o) {
				return
			}
		}
	}
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

// Aggregator is implemented by the stages of aggregate modules (ABI.md section 13): the engine's
// aggregate operator owns keys, windows and state, and calls the guest to fold records into
// state blobs, merge two blobs and turn blobs into records. Its methods may be called from one
// goroutine at a time.
type Aggregator interface {
	Name() string
	// Step folds recs into slots. Each AggRecord's Seq is the index of its input in inputs (copies
	// of one input, for several windows, are adjacent). The result has one outcome per input
	// named by recs, and the new states of the slots that changed.
	Step(ctx context.Context, inputs []connector.Record, recs []abi.AggRecord, slots []abi.Slot) (StepResult, error)
	// Emit turns slots into records (Final slots close).
	Emit(ctx context.Context, slots []abi.Slot) (EmitResult, error)
	// Merge folds each slot's Other state into its State.
	Merge(ctx context.Context, slots []abi.Slot) ([]StateChange, error)
	// Module names the module and its state layout, which state written by it must match.
	Module() (name string, stateVersion int)
	// CanMerge reports whether the module exports tf_agg_merge (needed by session windows).
	CanMerge() bool
	Close(ctx context.Context) error
}

// StepResult is the outcome of a Step call. Result.Actions holds one action per input record in
// inputs (Pass for an input no AggRecord names), combined over its copies as ABI.md 13.3 says.
type StepResult struct {
	Result
	States []StateChange
}

// StateChange is the new state of one slot of a call.
type StateChange struct {
	Slot   int
	Delete bool
	State  []byte // owned by the caller
}

// SlotRecord is a record emitted from a slot.
type SlotRecord struct {
	Slot   int
	Port   string
	Record connector.Record
}

// SlotFailure is a slot whose emit failed alone: its records are lost, and the engine sends a
// description of the slot to the dead letters.
type SlotFailure struct {
	Slot   int
	Code   uint16
	Reason string
}

// EmitResult is the outcome of an Emit call.
type EmitResult struct {
	Records []SlotRecord
	States  []StateChange // early updates only
	Failed  []SlotFailure
}
