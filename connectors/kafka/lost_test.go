package kafka

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

// memberSource is a source of group "g" whose group callbacks the tests call directly, with no
// broker: onAssigned, onLost, the poll's queue, take and Ack.
func memberSource(t *testing.T) *Source {
	t.Helper()
	s, err := NewSource(sourceConfig(t, map[string]any{"brokers": []any{"127.0.0.1:1"}, "topics": []any{"t"}, "group": "g"}), connector.Env{})
	if err != nil {
		t.Fatal(err)
	}
	s.parts = map[topicPartition]*partState{}
	s.byName = map[string]*partState{}
	s.noCommit = map[topicPartition]bool{}
	s.resume = map[string]int64{}
	s.ackSig = make(chan struct{})
	cl, err := kgo.NewClient(kgo.SeedBrokers("127.0.0.1:1")) // not in a group: every commit fails at once
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	s.cl = cl
	return s
}

// queue adds polled records of t/0 with offsets lo to hi-1, as poll does.
func (s *Source) queueRange(lo, hi int64) {
	var recs []*kgo.Record
	for o := lo; o < hi; o++ {
		recs = append(recs, &kgo.Record{Topic: "t", Partition: 0, Offset: o, Value: []byte("v")})
	}
	s.mu.Lock()
	s.queue = append(s.queue, chunk{tp: topicPartition{"t", 0}, recs: recs})
	s.mu.Unlock()
}

func offsets(recs []connector.Record) []int64 {
	var out []int64
	for _, r := range recs {
		out = append(out, r.Position.Offset)
	}
	return out
}

// TestLostPartitionWaitsForItsRecordsInFlight: a member expelled while records of a partition
// are in flight, and given the partition again, hands out none of the new assignment's records
// (read again from the group's committed offset) until every record of the earlier assignment
// is acknowledged, and tells the stateful stages of the new assignment only then, with its
// first record: so an aggregate stage restores the partition's state at the first record of
// the new assignment, never at a record in flight from the lost one (which would fold records
// twice, and drop those folded and not yet in the state log). The loss itself is announced at
// once.
func TestLostPartitionWaitsForItsRecordsInFlight(t *testing.T) {
	s := memberSource(t)
	var mu sync.Mutex
	var events []string
	s.OnAssigned(func(ps []string) { mu.Lock(); events = append(events, "assigned "+ps[0]); mu.Unlock() })
	s.OnReleased(func(ps []string) { mu.Lock(); events = append(events, "released "+ps[0]); mu.Unlock() })
	got := func() []string { mu.Lock(); defer mu.Unlock(); return slices.Clone(events) }
	ctx := context.Background()

	s.onAssigned(ctx, nil, map[string][]int32{"t": {0}})
	if e := got(); len(e) != 0 {
		t.Fatalf("the assignment was announced before its first record was handed out: %v", e)
	}
	s.queueRange(0, 10)
	if recs := s.take(); !slices.Equal(offsets(recs), []int64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}) {
		t.Fatalf("took %v", offsets(recs))
	}
	if e := got(); !slices.Equal(e, []string{"assigned t/0"}) {
		t.Fatalf("events %v", e)
	}
	// Records 0 to 4 are delivered; 5 to 9 are in flight when the group expels the member.
	if err := s.Ack(ctx, []connector.Position{{Partition: "t/0", Offset: 4}}); err == nil {
		t.Fatal("a commit without a group succeeded")
	}
	s.onLost(ctx, nil, map[string][]int32{"t": {0}})
	if e := got(); !slices.Equal(e, []string{"assigned t/0", "released t/0"}) {
		t.Fatalf("events %v", e)
	}
	// The member gets the partition back and reads it again from the committed offset.
	s.onAssigned(ctx, nil, map[string][]int32{"t": {0}})
	s.queueRange(5, 15)
	if recs := s.take(); len(recs) != 0 {
		t.Fatalf("handed out %v of the new assignment while records of the lost one were in flight", offsets(recs))
	}
	if !s.holding() {
		t.Fatal("holding is false with held records")
	}
	if err := s.Ack(ctx, []connector.Position{{Partition: "t/0", Offset: 7}}); err != nil {
		t.Fatal(err) // not owned in this assignment's terms: nothing to commit
	}
	if recs := s.take(); len(recs) != 0 {
		t.Fatalf("handed out %v before the last record in flight (9) was acknowledged", offsets(recs))
	}
	if e := got(); len(e) != 2 {
		t.Fatalf("events %v", e)
	}
	if err := s.Ack(ctx, []connector.Position{{Partition: "t/0", Offset: 9}}); err != nil {
		t.Fatal(err)
	}
	if recs := s.take(); !slices.Equal(offsets(recs), []int64{5, 6, 7, 8, 9, 10, 11, 12, 13, 14}) {
		t.Fatalf("took %v after the records in flight were delivered", offsets(recs))
	}
	if e := got(); !slices.Equal(e, []string{"assigned t/0", "released t/0", "assigned t/0"}) {
		t.Fatalf("events %v", e)
	}
}

// TestFailedCommitIsNotCommitted: a commit whose request fails as a whole (a broker down, a
// member out of its group) leaves nothing counted as committed. It counted all its offsets as
// committed, so Committed lied and the state log's committed versions were deleted on the
// next ack, leaving the partition's next owner without the state of the offset it resumes from.
func TestFailedCommitIsNotCommitted(t *testing.T) {
	s := memberSource(t)
	ctx := context.Background()
	s.onAssigned(ctx, nil, map[string][]int32{"t": {0}})
	s.queueRange(0, 10)
	s.take()
	if err := s.Ack(ctx, []connector.Position{{Partition: "t/0", Offset: 9}}); err == nil {
		t.Fatal("a commit without a group succeeded")
	}
	if off, ok := s.Committed("t/0"); ok {
		t.Fatalf("Committed reports offset %d after a failed commit", off)
	}
}
