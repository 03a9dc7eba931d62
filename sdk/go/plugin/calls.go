package plugin

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// gate counts the calls running in the open connector so that Close reaches the connector only
// after they returned: the connector contract never has Close overlap Read, Ack or Write.
type gate struct {
	mu     sync.Mutex
	n      int
	closed bool
	idle   chan struct{} // made by shut, closed once no call runs
}

// enter admits a call, or reports false once the gate is shut.
func (g *gate) enter() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.n++
	return true
}

func (g *gate) leave() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.n--
	if g.n == 0 && g.idle != nil {
		close(g.idle)
	}
}

// shut admits no more calls and returns a channel closed once the running ones have returned.
func (g *gate) shut() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed = true
	if g.idle == nil {
		g.idle = make(chan struct{})
		if g.n == 0 {
			close(g.idle)
		}
	}
	return g.idle
}

// writeOrder lets writes into the connector one at a time, in write_id order.
type writeOrder struct {
	mu      sync.Mutex
	last    uint64 // the last write_id taken (written, failed or refused)
	failed  bool   // that write was not written
	busy    bool   // a write runs in the connector
	changed chan struct{}
}

// errChainBroken answers a chained write whose predecessor was not written.
var errChainBroken = errors.New("write: not written, the write before it was not written")

// take waits for the turn of write id (every smaller id was taken) and reserves the connector
// for it; done ends it. A chained write whose predecessor was not written is refused, unwritten.
// id 0 is not ordered: it waits only for the connector to be free.
func (w *writeOrder) take(ctx context.Context, id uint64, chain bool) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for {
		switch {
		case id != 0 && id <= w.last:
			return fmt.Errorf("write: write %d arrived after write %d", id, w.last)
		case !w.busy && (id == 0 || id == w.last+1):
			if id != 0 && chain && w.failed {
				w.last = id // failed stays set: the next chained write is refused too
				w.signal()
				return errChainBroken
			}
			w.busy = true
			return nil
		}
		if w.changed == nil {
			w.changed = make(chan struct{})
		}
		ch := w.changed
		w.mu.Unlock()
		select {
		case <-ch:
			w.mu.Lock()
		case <-ctx.Done():
			w.mu.Lock()
			return ctx.Err()
		}
	}
}

// done ends the write that take admitted; written says the batch was written (fully, or with
// per-record failures).
func (w *writeOrder) done(id uint64, written bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.busy = false
	if id != 0 {
		w.last, w.failed = id, !written
	}
	w.signal()
}

// signal wakes the writes waiting for their turn; called with mu held.
func (w *writeOrder) signal() {
	if w.changed != nil {
		close(w.changed)
		w.changed = nil
	}
}
