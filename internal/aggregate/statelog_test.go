package aggregate

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

// memLog is a state log in memory, compacted on read like Kafka's (the last entry of a key wins,
// a nil value deletes it).
type memLog struct{ entries []connector.StateEntry }

func (l *memLog) Append(_ context.Context, es []connector.StateEntry) error {
	for _, e := range es {
		l.entries = append(l.entries, connector.StateEntry{Partition: e.Partition, Key: slices.Clone(e.Key), Value: slices.Clone(e.Value)})
	}
	return nil
}

func (l *memLog) Read(_ context.Context, partition string) ([]connector.StateEntry, error) {
	var out []connector.StateEntry
	for _, e := range l.entries {
		if e.Partition == partition {
			out = append(out, e)
		}
	}
	return out, nil
}

func (l *memLog) Close() error { return nil }

// live counts the keys whose last entry is not a deletion.
func (l *memLog) live() int {
	last := map[string]bool{}
	for _, e := range l.entries {
		last[e.Partition+"|"+string(e.Key)] = e.Value != nil
	}
	n := 0
	for _, ok := range last {
		if ok {
			n++
		}
	}
	return n
}

// partitionedRun is one process of a consumer group in the test: an operator in partitioned
// mode that commits like the engine (positions, then the log, then the ack) and may die between
// any two of these steps.
type partitionedRun struct {
	o         *Operator
	committed map[string]int64 // the group's committed offsets, shared by the processes
	outs      []Out
	batch     uint64
}

// TestStateFollowsPartitions runs a two-partition input through processes that each own the
// partitions for a while and die at random points of the commit, with the state passed on only
// through the state log and the committed offsets: the windows are those of one uninterrupted
// run per partition.
func TestStateFollowsPartitions(t *testing.T) {
	const perPart = 3000
	parts := []string{"t/0", "t/1"}
	input := map[string][]rec2{}
	var want []window
	for n, name := range parts {
		recs := dataset(perPart, 4, uint64(10+n))
		for i := range recs {
			// keys of a partition are its own, as when the producer keys by them
			recs[i].Value = []byte(fmt.Sprintf(`{"k":"%s-%s"%s`, name, stringField(recs[i].Value, "k"), tail(recs[i].Value)))
			recs[i].Position = connector.Position{Partition: name, Offset: int64(i)}
		}
		w, _ := expectTumbling(recs, 60_000, 2000)
		want = append(want, w...)
		for _, r := range recs {
			input[name] = append(input[name], rec2{r})
		}
	}
	sortWindows(want)
	for seed := uint64(1); seed <= 5; seed++ {
		rng := rand.New(rand.NewPCG(seed, 2))
		log := &memLog{}
		committed := map[string]int64{"t/0": -1, "t/1": -1}
		var outs []Out
		for proc := 0; ; proc++ {
			if proc > 200 {
				t.Fatal("the input never ended")
			}
			o, err := New(tumblingConfig(), &sumGuest{name: "sum"}, Store{}, "p", "stats", testMetrics())
			if err != nil {
				t.Fatal(err)
			}
			if err := o.UseStateLog(log); err != nil {
				t.Fatal(err)
			}
			o.Assigned(parts)
			// The process reads from the committed offsets, interleaving the partitions, and
			// dies after a random number of batches unless this is the last one.
			next := map[string]int64{"t/0": committed["t/0"] + 1, "t/1": committed["t/1"] + 1}
			life := rng.IntN(30) + 1
			last := proc >= 12
			var batch uint64
			done := false
			for b := 0; last || b < life; b++ {
				var recs []connector.Record
				for _, name := range parts {
					k := int(next[name])
					n := min(rng.IntN(40)+1, perPart-k)
					for _, r := range input[name][k : k+n] {
						recs = append(recs, r.Record)
					}
					next[name] += int64(n)
				}
				if len(recs) == 0 {
					done = true
					break
				}
				batch++
				res, err := o.Process(context.Background(), batch, recs)
				if err != nil {
					t.Fatal(err)
				}
				// Commit this batch like the engine: save (nothing local in this mode), append
				// to the log, then ack; a process may die between the log and the ack.
				c := o.Committable(batch)
				var ps []connector.Position
				for _, name := range parts {
					if next[name] > 0 {
						ps = append(ps, connector.Position{Partition: name, Offset: next[name] - 1})
					}
				}
				if err := c.AppendLog(context.Background(), ps); err != nil {
					t.Fatal(err)
				}
				c.Done()
				if !last && rng.IntN(8) == 0 {
					break // died after appending to the log, before the offsets were committed
				}
				outs = append(outs, res.Out...) // delivered: the ack follows delivery
				for _, p := range ps {
					committed[p.Partition] = p.Offset
				}
				o.Acked(ps)
			}
			if done || last {
				res, err := o.Flush(context.Background(), batch+1)
				if err != nil {
					t.Fatal(err)
				}
				outs = append(outs, res.Out...)
				break
			}
		}
		got := decodeOuts(t, outs)
		// Windows emitted by a process that died before its ack were not delivered (their
		// offsets were not committed), so each window is in outs once unless a process
		// delivered it and died before the ack; keep the first of equal ones.
		sortWindows(got)
		got = slices.Compact(got)
		if !slices.Equal(got, want) {
			t.Fatalf("seed %d: %d windows, want %d", seed, len(got), len(want))
		}
		t.Logf("seed %d: %d windows; the log holds %d live entries of %d appended", seed, len(got), log.live(), len(log.entries))
	}
}

type rec2 struct{ connector.Record }

// stringField and tail rebuild a test record's JSON with another key.
func stringField(v []byte, name string) string {
	var m map[string]any
	_ = jsonUnmarshal(v, &m)
	return fmt.Sprint(m[name])
}

func tail(v []byte) string {
	for i := range v {
		if v[i] == ',' {
			return string(v[i:])
		}
	}
	return "}"
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
