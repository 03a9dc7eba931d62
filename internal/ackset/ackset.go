// Package ackset tracks batches in flight and releases, per partition and in read order, the
// positions whose batches are completely delivered.
//
// A batch may complete before an earlier one (sinks finish in any order); its positions are held
// back until every earlier batch touching the same partition has completed too. So the released
// watermark of a partition never passes a record that is not yet durable everywhere.
package ackset

import (
	"fmt"
	"sync"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

// Set is the tracker. The zero value is not usable; call New. It is safe for concurrent use.
type Set struct {
	mu      sync.Mutex
	next    uint64
	batches map[uint64]*batch
	parts   map[string]*queue
	ready   map[string]connector.Position // released and not yet taken
	pending int                           // batches added and not done

	// ordered: positions are released in batch order across partitions (NewOrdered).
	ordered  bool
	order    []uint64          // batches added and not released, oldest first (ordered)
	doneIDs  map[uint64]*batch // done and not yet released (ordered)
	lastBat  map[uint64][]connector.Position
	released uint64 // the last batch released (ordered)
}

type batch struct {
	done  bool
	parts []string
}

type entry struct {
	b   *batch
	pos connector.Position
}

type queue struct {
	items []entry
	head  int
}

// New returns an empty tracker.
func New() *Set {
	return &Set{batches: map[uint64]*batch{}, parts: map[string]*queue{}, ready: map[string]connector.Position{}}
}

// NewOrdered returns a tracker that releases positions in batch order across all partitions: a
// batch's positions are released only when every batch added before it, of any partition, is
// done. Take's positions then reflect exactly the batches up to TakeThrough's id, which state
// derived from all partitions together (aggregate stages) needs.
func NewOrdered() *Set {
	s := New()
	s.ordered = true
	s.doneIDs = map[uint64]*batch{}
	s.lastBat = map[uint64][]connector.Position{}
	return s
}

// Add registers a batch by the last position it holds in each partition, in read order, and
// returns its id. Batches must be added in the order the source returned them.
func (s *Set) Add(last []connector.Position) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.next++
	id := s.next
	b := &batch{parts: make([]string, 0, len(last))}
	for _, p := range last {
		q := s.parts[p.Partition]
		if q == nil {
			q = &queue{}
			s.parts[p.Partition] = q
		}
		q.items = append(q.items, entry{b: b, pos: p})
		b.parts = append(b.parts, p.Partition)
	}
	s.batches[id] = b
	s.pending++
	if s.ordered {
		s.order = append(s.order, id)
		s.lastBat[id] = last
	}
	return id
}

// Done marks a batch delivered and releases every position that is now contiguous. It returns
// an error for an unknown or already completed id, which is an engine bug.
func (s *Set) Done(id uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.batches[id]
	if !ok {
		return fmt.Errorf("ackset: batch %d is unknown or already done", id)
	}
	delete(s.batches, id)
	b.done = true
	s.pending--
	if s.ordered {
		s.doneIDs[id] = b
		for len(s.order) > 0 {
			first := s.order[0]
			if _, ok := s.doneIDs[first]; !ok {
				break
			}
			delete(s.doneIDs, first)
			for _, p := range s.lastBat[first] {
				s.ready[p.Partition] = p
			}
			delete(s.lastBat, first)
			s.order = s.order[1:]
			s.released = first
		}
		return nil
	}
	for _, part := range b.parts {
		q := s.parts[part]
		for q.head < len(q.items) && q.items[q.head].b.done {
			s.ready[part] = q.items[q.head].pos
			q.items[q.head] = entry{}
			q.head++
		}
		if q.head == len(q.items) {
			q.items, q.head = q.items[:0], 0
		} else if q.head > 1024 && q.head*2 > len(q.items) {
			n := copy(q.items, q.items[q.head:])
			q.items, q.head = q.items[:n], 0
		}
	}
	return nil
}

// Take returns the positions released since the last Take, one per partition, and forgets them.
func (s *Set) Take() []connector.Position {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.ready) == 0 {
		return nil
	}
	out := make([]connector.Position, 0, len(s.ready))
	for k, p := range s.ready {
		out = append(out, p)
		delete(s.ready, k)
	}
	return out
}

// TakeThrough is Take for an ordered tracker, with the id of the last batch whose positions are
// released (0 when none was yet): every batch up to it is done.
func (s *Set) TakeThrough() ([]connector.Position, uint64) {
	ps := s.Take()
	s.mu.Lock()
	defer s.mu.Unlock()
	return ps, s.released
}

// Pending returns the number of batches added and not yet done.
func (s *Set) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pending
}

// LastPositions returns the last position of each partition in records, in order of first
// appearance: what Add expects for a batch.
func LastPositions(records []connector.Record) []connector.Position {
	if len(records) == 0 {
		return nil
	}
	// Most batches hold one partition: a fast path with no map.
	first := records[0].Position.Partition
	single := true
	for i := range records {
		if records[i].Position.Partition != first {
			single = false
			break
		}
	}
	if single {
		return []connector.Position{records[len(records)-1].Position}
	}
	idx := map[string]int{}
	var out []connector.Position
	for i := range records {
		p := records[i].Position
		if j, ok := idx[p.Partition]; ok {
			out[j] = p
			continue
		}
		idx[p.Partition] = len(out)
		out = append(out, p)
	}
	return out
}
