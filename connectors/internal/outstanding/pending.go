// Package outstanding counts what a write handed to a client and the client has not answered yet, and
// says when every answer came: the wait of a connector.PipelinedSink whose client answers each
// message in a callback.
package outstanding

import "sync/atomic"

// Count is the number of operations not answered yet, plus one until the hand-over ends, so that
// answers arriving while operations are still being handed over cannot close it early. The zero
// value is not usable: use New.
type Count struct {
	n    atomic.Int64
	done chan struct{}
}

// New returns a count of one: the hand-over under way.
func New() *Count {
	c := &Count{done: make(chan struct{})}
	c.n.Store(1)
	return c
}

// Add counts one more operation handed over.
func (c *Count) Add() { c.n.Add(1) }

// Done counts one answer, or the end of the hand-over; the last one closes Wait.
func (c *Count) Done() {
	if c.n.Add(-1) == 0 {
		close(c.done)
	}
}

// Wait is closed once every operation was answered and the hand-over ended.
func (c *Count) Wait() <-chan struct{} { return c.done }
