package aggregate

import (
	"context"
	"fmt"
	"testing"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

// deferredLog is a state log whose appends can be held back, like those of a process whose
// producer retries through a broker outage and whose entries land after another process read
// the log.
type deferredLog struct {
	*memLog
	hold    bool
	pending [][]connector.StateEntry
}

func (l *deferredLog) Append(ctx context.Context, es []connector.StateEntry) error {
	if l.hold {
		l.pending = append(l.pending, es)
		return nil
	}
	return l.memLog.Append(ctx, es)
}

func (l *deferredLog) land() {
	for _, es := range l.pending {
		_ = l.memLog.Append(context.Background(), es)
	}
	l.pending, l.hold = nil, false
}

// handover drives members of a group over one partition, committing like the engine: the log
// append, then the offsets, then Acked. Emitted windows go to an upsert keyed by (key, start),
// as the Postgres sink of the commodity pipeline: the last write of a window wins.
type handover struct {
	t         *testing.T
	recs      []connector.Record
	committed int64
	upsert    map[[2]string]window
	emitted   int
}

func (h *handover) member(log connector.StateLog) *Operator {
	h.t.Helper()
	o, err := New(tumblingConfig(), &sumGuest{name: "sum"}, Store{}, "p", "stats", testMetrics())
	if err != nil {
		h.t.Fatal(err)
	}
	if err := o.UseStateLog(log); err != nil {
		h.t.Fatal(err)
	}
	o.Assigned([]string{"t/0"})
	return o
}

// run folds recs[lo:hi] as one batch numbered id and commits it; ack false is a failed offset
// commit (the broker is down, or the member was expelled).
func (h *handover) run(o *Operator, id uint64, lo, hi int, ack bool) {
	h.t.Helper()
	ctx := context.Background()
	res, err := o.Process(ctx, id, h.recs[lo:hi])
	if err != nil {
		h.t.Fatal(err)
	}
	for _, w := range decodeOuts(h.t, res.Out) {
		h.upsert[[2]string{w.Key, fmt.Sprint(w.Start)}] = w
		h.emitted++
	}
	c := o.Committable(id)
	ps := []connector.Position{{Partition: "t/0", Offset: int64(hi - 1)}}
	if c != nil {
		if err := c.AppendLog(ctx, ps); err != nil {
			h.t.Fatal(err)
		}
		c.Done()
	}
	if ack {
		h.committed = int64(hi - 1)
		o.Acked(ps)
	}
}

func (h *handover) flush(o *Operator, id uint64) {
	h.t.Helper()
	res, err := o.Flush(context.Background(), id)
	if err != nil {
		h.t.Fatal(err)
	}
	for _, w := range decodeOuts(h.t, res.Out) {
		h.upsert[[2]string{w.Key, fmt.Sprint(w.Start)}] = w
	}
}

func (h *handover) check(want []window) {
	h.t.Helper()
	for _, w := range want {
		got, ok := h.upsert[[2]string{w.Key, fmt.Sprint(w.Start)}]
		if !ok {
			h.t.Errorf("window %s at %d missing", w.Key, w.Start)
		} else if got != w {
			h.t.Errorf("window %s at %d: count %d sum %v, want count %d sum %v", w.Key, w.Start, got.Count, got.Sum, w.Count, w.Sum)
		}
	}
	if len(h.upsert) != len(want) {
		h.t.Errorf("%d windows, want %d", len(h.upsert), len(want))
	}
}

// lossRecords are 900 records of one partition, four keys, 200 ms of event time apart from the
// start of a minute: window 0 holds records 0 to 299 and closes at record 310.
func lossRecords() []connector.Record {
	var recs []connector.Record
	const base = 1_700_000_040_000 // a minute's start
	for i := range 900 {
		r := rec(i, fmt.Sprintf("k%d", i%4), base+int64(i)*200, float64(i%7))
		r.Position.Partition = "t/0"
		recs = append(recs, r)
	}
	return recs
}

// TestLostPartitionStaleVersionsDoNotReopenAWindow is the commodity pipeline's lost records
// (examples/commodity-prices README, the unpaced run) made deterministic. Member A owns the
// partition; the broker goes down; A folds two more batches, whose state-log appends wait in its
// producer and whose offset commits fail; the group expels A (partitions lost). B restores from
// the committed offset, and A's held appends land after B read the log, so B never deletes them.
// B closes and emits window 0 in full, and, once that deletion is committed, compacts its
// versions away (deletion included). C, the partition's next owner, found A's stale version of
// window 0 the newest before its first offset and emitted the window again with the records
// up to that version only: the upsert kept the partial count, each key a few dozen records
// short. The restore now drops versions of windows its restored watermark had closed.
func TestLostPartitionStaleVersionsDoNotReopenAWindow(t *testing.T) {
	recs := lossRecords()
	want, _ := expectTumbling(recs, 60_000, 2000)
	h := &handover{t: t, recs: recs, committed: -1, upsert: map[[2]string]window{}}
	log := &deferredLog{memLog: &memLog{}}

	a := h.member(log)
	h.run(a, 1, 0, 50, true)
	h.run(a, 2, 50, 100, true)
	log.hold = true // the broker is down: appends wait, commits fail
	h.run(a, 3, 100, 160, false)
	h.run(a, 4, 160, 190, false)
	// A is expelled; without the Released call here (it could not stop appends already handed
	// to the producer anyway), A's held appends are the stale versions.

	b := h.member(log)
	id := uint64(1)
	lo := int(h.committed + 1)
	h.run(b, id, lo, lo+50, true) // B restores from the log here, at the committed offset
	log.land()                    // A's producer gets through: versions 159 and 189, after B read
	for lo += 50; lo < 500; lo += 50 {
		id++
		h.run(b, id, lo, lo+50, true)
	}
	// B stops (or loses the partition in turn); C restores at B's committed offset.
	c := h.member(log)
	for lo = int(h.committed + 1); lo < len(recs); lo += 50 {
		id++
		h.run(c, id, lo, min(lo+50, len(recs)), true)
	}
	h.flush(c, id+1)
	h.check(want)
}

// TestReleasedPartitionWritesNothing: a member that lost a partition folds none of its records
// still in flight, emits no window of it, and appends nothing of it to the state log (neither
// versions nor deletions), even of batches folded before the loss; given the partition again,
// it restores it from the log at the first record of the new assignment.
func TestReleasedPartitionWritesNothing(t *testing.T) {
	recs := lossRecords()
	want, _ := expectTumbling(recs, 60_000, 2000)
	h := &handover{t: t, recs: recs, committed: -1, upsert: map[[2]string]window{}}
	log := &memLog{}

	a := h.member(log)
	h.run(a, 1, 0, 100, true)
	// A batch folded before the loss, committed after it.
	if _, err := a.Process(context.Background(), 2, recs[100:200]); err != nil {
		t.Fatal(err)
	}
	a.Released([]string{"t/0"})
	n := len(log.entries)
	c := a.Committable(2)
	if err := c.AppendLog(context.Background(), []connector.Position{{Partition: "t/0", Offset: 199}}); err != nil {
		t.Fatal(err)
	}
	c.Done()
	// Records still in flight after the loss, past the end of window 0.
	emitted := h.emitted
	h.run(a, 3, 200, 400, false)
	if h.emitted != emitted {
		t.Errorf("a member emitted %d windows of a partition it lost", h.emitted-emitted)
	}
	if len(log.entries) != n {
		t.Errorf("a member appended %d state log entries of a partition it lost", len(log.entries)-n)
	}
	// Given the partition again, A reads from the committed offset and restores there.
	a.Assigned([]string{"t/0"})
	id := uint64(4)
	for lo := int(h.committed + 1); lo < len(recs); lo += 50 {
		h.run(a, id, lo, min(lo+50, len(recs)), true)
		id++
	}
	h.flush(a, id)
	h.check(want)
}
