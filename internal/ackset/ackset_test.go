package ackset_test

import (
	"math/rand"
	"sync"
	"testing"

	"github.com/sluicehq/sluice/internal/ackset"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

func pos(part string, off int64) connector.Position {
	return connector.Position{Partition: part, Offset: off}
}

func TestOutOfOrderCompletionHoldsWatermark(t *testing.T) {
	s := ackset.New()
	b1 := s.Add([]connector.Position{pos("a", 10), pos("b", 5)})
	b2 := s.Add([]connector.Position{pos("a", 20)})
	b3 := s.Add([]connector.Position{pos("b", 9)})
	if err := s.Done(b2); err != nil {
		t.Fatal(err)
	}
	if got := s.Take(); len(got) != 0 {
		t.Fatalf("released %v before batch 1 completed", got)
	}
	if err := s.Done(b3); err != nil {
		t.Fatal(err)
	}
	if got := s.Take(); len(got) != 0 {
		t.Fatalf("released %v before batch 1 completed", got)
	}
	if err := s.Done(b1); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, p := range s.Take() {
		got[p.Partition] = p.Offset
	}
	if got["a"] != 20 || got["b"] != 9 || len(got) != 2 {
		t.Fatalf("released %v, want a=20 b=9", got)
	}
	if err := s.Done(b1); err == nil {
		t.Fatal("second Done of the same batch succeeded")
	}
	if s.Pending() != 0 {
		t.Fatalf("pending = %d", s.Pending())
	}
}

func TestPartitionsAreIndependent(t *testing.T) {
	s := ackset.New()
	slow := s.Add([]connector.Position{pos("a", 1)})
	fast := s.Add([]connector.Position{pos("b", 1)})
	_ = s.Done(fast)
	got := s.Take()
	if len(got) != 1 || got[0].Partition != "b" {
		t.Fatalf("partition b held back by a: %v", got)
	}
	_ = s.Done(slow)
	if got := s.Take(); len(got) != 1 || got[0].Partition != "a" {
		t.Fatalf("got %v", got)
	}
}

// TestHammer completes batches from many goroutines in random order and checks that a released
// watermark never passes a batch that is not done, and that the final watermark is the last one.
func TestHammer(t *testing.T) {
	const batches = 3000
	parts := []string{"p0", "p1", "p2"}
	s := ackset.New()
	type rec struct {
		id   uint64
		last []connector.Position
	}
	all := make([]rec, batches)
	offsets := map[string]int64{}
	rng := rand.New(rand.NewSource(1))
	for i := range all {
		var last []connector.Position
		for _, p := range parts {
			if rng.Intn(2) == 0 {
				offsets[p] += int64(1 + rng.Intn(5))
				last = append(last, pos(p, offsets[p]))
			}
		}
		all[i] = rec{id: s.Add(last), last: last}
	}
	var mu sync.Mutex
	done := map[uint64]bool{}
	released := map[string]int64{}
	order := rng.Perm(batches)
	var wg sync.WaitGroup
	work := make(chan int)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				mu.Lock()
				done[all[i].id] = true
				mu.Unlock()
				if err := s.Done(all[i].id); err != nil {
					t.Error(err)
				}
				for _, p := range s.Take() {
					// Every batch holding an offset <= p.Offset in this partition must be done.
					mu.Lock()
					if p.Offset > released[p.Partition] {
						released[p.Partition] = p.Offset
					}
					for _, r := range all {
						for _, q := range r.last {
							if q.Partition == p.Partition && q.Offset <= p.Offset && !done[r.id] {
								t.Errorf("released %v while batch %d (%v) is not done", p, r.id, q)
							}
						}
					}
					mu.Unlock()
				}
			}
		}()
	}
	for _, i := range order {
		work <- i
	}
	close(work)
	wg.Wait()
	if s.Pending() != 0 {
		t.Fatalf("pending = %d", s.Pending())
	}
	for p, off := range offsets {
		if released[p] != off {
			t.Errorf("partition %s: final watermark %d, want %d", p, released[p], off)
		}
	}
}

func TestLastPositions(t *testing.T) {
	recs := []connector.Record{{Position: pos("a", 1)}, {Position: pos("b", 2)}, {Position: pos("a", 3)}}
	got := ackset.LastPositions(recs)
	if len(got) != 2 || got[0].String() != "a@3" || got[1].String() != "b@2" {
		t.Fatalf("got %v", got)
	}
	single := ackset.LastPositions(recs[:1])
	if len(single) != 1 || single[0].String() != "a@1" {
		t.Fatalf("got %v", single)
	}
}
