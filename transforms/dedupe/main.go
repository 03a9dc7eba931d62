// Command dedupe is an aggregate module that forwards the first record of each slot and drops the
// rest: in a stage without windows the host keeps one slot per key (or per record content, with
// key "$") until it has been idle for the stage's ttl, so a key passes once per ttl of quiet.
// See README.md.
package main

import (
	"bytes"
	"errors"

	"github.com/sluicehq/sluice/sdk/go/aggregate"
)

func main() {}

// seen is the state of a slot that has passed a record (state_version 1: one byte, 1).
var seen = []byte{1}

func init() {
	aggregate.Register(aggregate.Meta{
		Name:         "dedupe",
		Version:      "1.0.0",
		ConfigSchema: `{"type":"object","additionalProperties":false}`,
		StateVersion: 1,
	}, aggregate.Funcs{Accumulate: accumulate, Emit: emit, Merge: merge}, aggregate.OnInit(setup))
}

// setup refuses any config: the host sends "{}" when the manifest gives none (ABI.md 3.4).
func setup() error {
	if c := bytes.TrimSpace(aggregate.ConfigBytes()); len(c) > 0 && string(c) != "{}" {
		return errors.New("config: dedupe takes no config (how long a key is remembered is the stage's ttl)")
	}
	return nil
}

// accumulate passes the record of a new slot and records that the slot has been seen; a slot
// with state drops its records (DROP, the default) and keeps its state unchanged.
func accumulate(s *aggregate.Step, state []byte) ([]byte, error) {
	if len(state) > 0 {
		return state, nil
	}
	s.Pass()
	return seen, nil
}

// emit emits nothing: records leave in the step.
func emit(*aggregate.Emitter, []byte) error { return nil }

// merge keeps a seen slot seen (both states are non-empty in a merge).
func merge(_ *aggregate.Slot, state, _ []byte) ([]byte, error) {
	if len(state) == 0 {
		return seen, nil
	}
	return state, nil
}
