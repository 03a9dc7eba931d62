package engine

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

// deadLetter is a record on its way to the dead-letter sink, with why.
type deadLetter struct {
	rec    connector.Record
	stage  string // the transform, sink or "router" that refused it
	kind   string // rejected | sink_failed | unrouted | malformed
	code   int
	reason string
}

// Envelope is the JSON value written to the dead-letter sink for each record. The original
// value is kept as a string when it is valid UTF-8, else base64 in ValueBase64.
type Envelope struct {
	Pipeline    string    `json:"pipeline"`
	Stage       string    `json:"stage"`
	Kind        string    `json:"kind"`
	Code        int       `json:"code,omitempty"`
	Reason      string    `json:"reason"`
	Partition   string    `json:"partition,omitempty"`
	Offset      int64     `json:"offset"`
	Key         string    `json:"key,omitempty"`
	Value       *string   `json:"value,omitempty"`
	ValueBase64 string    `json:"value_base64,omitempty"`
	Time        time.Time `json:"time,omitzero"`
	FailedAt    time.Time `json:"failed_at"`
}

func (l deadLetter) envelope(pipeline string) connector.Record {
	e := Envelope{Pipeline: pipeline, Stage: l.stage, Kind: l.kind, Code: l.code, Reason: l.reason,
		Partition: l.rec.Position.Partition, Offset: l.rec.Position.Offset, Key: string(l.rec.Key),
		Time: l.rec.Time, FailedAt: time.Now().UTC()}
	if utf8.Valid(l.rec.Value) {
		v := string(l.rec.Value)
		e.Value = &v
	} else {
		e.ValueBase64 = base64.StdEncoding.EncodeToString(l.rec.Value)
	}
	b, _ := json.Marshal(e) // cannot fail: plain strings and numbers
	return connector.Record{Key: l.rec.Key, Value: b, Headers: l.rec.Headers, Time: l.rec.Time, Position: l.rec.Position}
}

// ErrFailureLimit is matched (errors.Is) by the error that stops a pipeline whose records went
// to the dead letters at a higher rate than its max_failure_ratio allows. Restarting does not
// help: the cause is in the data or a transform.
var ErrFailureLimit = errors.New("max_failure_ratio exceeded")

type failureLimitError string

func (e failureLimitError) Error() string        { return string(e) }
func (e failureLimitError) Is(target error) bool { return target == ErrFailureLimit }

// failureWindow tracks how many of the most recent records went to the dead letters, in steps of
// whole batches, and says when the share passes the pipeline's limit.
type failureWindow struct {
	mu            sync.Mutex
	ratio         float64
	window        int
	steps         []failureStep
	total, failed int
}

type failureStep struct{ records, failed int }

func newFailureWindow(ratio float64, window int) *failureWindow {
	return &failureWindow{ratio: ratio, window: window}
}

// add records that of a delivered batch's records, failed went to the dead letters. It returns an
// error once the window is full and the failed share is above the limit.
func (w *failureWindow) add(records, failed int) error {
	if w.ratio <= 0 || w.ratio >= 1 {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.steps = append(w.steps, failureStep{records, failed})
	w.total += records
	w.failed += failed
	for len(w.steps) > 1 && w.total-w.steps[0].records >= w.window {
		w.total -= w.steps[0].records
		w.failed -= w.steps[0].failed
		w.steps = w.steps[1:]
	}
	if w.total >= w.window && float64(w.failed) > w.ratio*float64(w.total) {
		return failureLimitError(fmt.Sprintf("%d of the last %d records went to the dead letters, more than max_failure_ratio %g allows; the dead letters hold them with their reasons: fix the cause and run again",
			w.failed, w.total, w.ratio))
	}
	return nil
}
