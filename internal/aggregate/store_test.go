package aggregate

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

// diskState reads a stage's state as a restart sees it: the slots bucket with the delta log's
// records applied in order. It also reports how many log records there are.
func diskState(t *testing.T, db *bolt.DB) (map[string]string, int) {
	t.Helper()
	state := map[string]string{}
	records := 0
	err := db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketName("p", "stats"))
		if b == nil {
			return nil
		}
		if sb := b.Bucket(slotsBucket); sb != nil {
			_ = sb.ForEach(func(k, v []byte) error { state[string(k)] = string(v); return nil })
		}
		lb := b.Bucket(logBucket)
		if lb == nil {
			return nil
		}
		return lb.ForEach(func(_, v []byte) error {
			records++
			es, err := parseLog(nil, v)
			for _, e := range es {
				if e.val == nil {
					delete(state, string(e.key))
				} else {
					state[string(e.key)] = string(e.val)
				}
			}
			return err
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return state, records
}

// memState is the operator's state in memory as the store records it.
func memState(o *Operator) map[string]string {
	state := map[string]string{}
	for id, s := range o.single.slots.all {
		c := changeOf(s)
		state[string(slotKey(id))] = string(encodeChange(&c))
	}
	return state
}

// The delta log, appended by each commit and compacted into the slots bucket when it grows past
// its bound, holds after every commit exactly the state in memory (every batch committed), and a
// restart at any batch from it, with the last batches processed but never committed (kill -9),
// gives the windows of an uninterrupted run, whatever the bound.
func TestDeltaLogKeepsExactlyTheCommittedState(t *testing.T) {
	recs := dataset(3000, 40, 6)
	want, _ := expectTumbling(recs, 60_000, 2000)
	const batch = 50
	for _, bound := range []int64{1, 3000, 20_000, compactLogBytes} {
		t.Run(fmt.Sprint("bound ", bound), func(t *testing.T) {
			compacted, appended := false, false
			for _, cut := range []int{1, 9, 26, 43, 60} {
				dir := t.TempDir()
				db := openDB(t, dir)
				o, err := New(tumblingConfig(), &sumGuest{name: "sum"}, Store{DB: db}, "p", "stats", testMetrics())
				if err != nil {
					t.Fatal(err)
				}
				o.compactAt = bound
				ctx := context.Background()
				var outs []Out
				committed := 0
				for b := 0; b < cut; b++ {
					res, err := o.Process(ctx, uint64(b+1), recs[b*batch:(b+1)*batch])
					if err != nil {
						t.Fatal(err)
					}
					if b >= cut-3 {
						continue // processed, never committed
					}
					c := o.Committable(uint64(b + 1))
					if err := db.Update(c.Write); err != nil {
						t.Fatal(err)
					}
					c.Done()
					compacted = compacted || c.compacted
					outs = append(outs, res.Out...)
					committed = b + 1
					disk, records := diskState(t, db)
					appended = appended || records > 0
					if mem := memState(o); !maps.Equal(disk, mem) {
						t.Fatalf("after batch %d the store holds %d slots, memory %d", b+1, len(disk), len(mem))
					}
				}
				db.Close()
				db = openDB(t, dir)
				o2, err := New(tumblingConfig(), &sumGuest{name: "sum"}, Store{DB: db}, "p", "stats", testMetrics())
				if err != nil {
					t.Fatal(err)
				}
				o2.compactAt = bound
				if err := o2.Restore(); err != nil {
					t.Fatal(err)
				}
				if _, records := diskState(t, db); records != 0 {
					t.Fatalf("Restore left %d delta log records", records)
				}
				rest, _ := feed(t, o2, db, recs[committed*batch:], batch, 1000, true)
				got := append(decodeOuts(t, outs), rest...)
				sortWindows(got)
				db.Close()
				if !slices.Equal(got, want) {
					t.Fatalf("cut at batch %d (committed %d): %d windows, want %d", cut, committed, len(got), len(want))
				}
			}
			if bound < compactLogBytes && !compacted {
				t.Error("no commit compacted the log")
			}
			if bound > 1 && !appended {
				t.Error("no commit appended to the log")
			}
		})
	}
}

// A store written before the delta log (format 1: the slots bucket only) is resumed.
func TestStoreWithoutDeltaLogIsRead(t *testing.T) {
	recs := dataset(1000, 5, 8)
	want, _ := expectTumbling(recs, 60_000, 2000)
	dir := t.TempDir()
	db := openDB(t, dir)
	o, err := New(tumblingConfig(), &sumGuest{name: "sum"}, Store{DB: db}, "p", "stats", testMetrics())
	if err != nil {
		t.Fatal(err)
	}
	o.compactAt = 1 // every commit writes the slots bucket, as format 1 did
	first, _ := feed(t, o, db, recs[:500], 50, 1, false)
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketName("p", "stats"))
		return b.Put(metaKey, []byte(fmt.Sprintf(`{"format":1,"module":"sum","state_version":0,"watermark":%d,"max_time":%d}`, o.single.wm, o.single.maxTs)))
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	db = openDB(t, dir)
	defer db.Close()
	o2, err := New(tumblingConfig(), &sumGuest{name: "sum"}, Store{DB: db}, "p", "stats", testMetrics())
	if err != nil {
		t.Fatal(err)
	}
	if err := o2.Restore(); err != nil {
		t.Fatal(err)
	}
	rest, _ := feed(t, o2, db, recs[500:], 50, 1000, true)
	got := append(first, rest...)
	sortWindows(got)
	if !slices.Equal(got, want) {
		t.Fatalf("%d windows, want %d", len(got), len(want))
	}
}

// Closing more windows than a chunk at once (two watermark jumps, then the end of the input)
// emits each of them once, whatever chunk it falls in.
func TestClosingManyWindowsAtOnceEmitsEachOnce(t *testing.T) {
	n := 2*closeChunk + 123
	var recs []connector.Record
	for i := range n {
		recs = append(recs, rec(i, fmt.Sprintf("k%d", i), 1_700_000_000_000+int64(i%50_000), float64(i%7)))
	}
	for i := range n {
		recs = append(recs, rec(n+i, fmt.Sprintf("k%d", i), 1_700_000_120_000+int64(i%50_000), 1))
	}
	recs = append(recs, rec(2*n, "last", 1_700_000_400_000, 1))
	want, _ := expectTumbling(recs, 60_000, 2000)
	db := openDB(t, t.TempDir())
	defer db.Close()
	o, err := New(tumblingConfig(), &sumGuest{name: "sum"}, Store{DB: db}, "p", "stats", testMetrics())
	if err != nil {
		t.Fatal(err)
	}
	got, _ := feed(t, o, db, recs, 4000, 1, true)
	if !slices.Equal(got, want) {
		t.Fatalf("%d windows, want %d", len(got), len(want))
	}
}

// TestEarlyUpdatesAfterARestartCoverWhatWasSaved: records folded and saved after the last early
// update before a crash are in the first early update after the restart, also for slots whose
// state stays on disk, and also for slots changed and then spilled before an update.
func TestEarlyUpdatesAfterARestartCoverWhatWasSaved(t *testing.T) {
	for _, memory := range []int64{0, 16 * 3} { // no bound; about 3 slots' blobs in memory
		t.Run(fmt.Sprint("memory ", memory), func(t *testing.T) {
			dir := t.TempDir()
			now := time.UnixMilli(1_714_564_800_000)
			cfg := tumblingConfig()
			cfg.Early = time.Second
			cfg.Clock = func() time.Time { return now }
			if memory > 0 {
				cfg.MemoryBytes = memory
			}
			open := func(db *bolt.DB) *Operator {
				o, err := New(cfg, &sumGuest{name: "sum"}, Store{DB: db}, "p", "stats", testMetrics())
				if err != nil {
					t.Fatal(err)
				}
				if err := o.Restore(); err != nil {
					t.Fatal(err)
				}
				o.compactAt = 1 // every commit compacts, so that changed slots may spill
				return o
			}
			ctx := context.Background()
			const start = int64(1_714_564_800_000)
			want := map[string]uint64{}
			var recs []connector.Record
			for i := range 40 {
				k := fmt.Sprintf("k%d", i%8)
				recs = append(recs, rec(i+1, k, start+int64(i)*100, 1))
				want[k]++
			}
			db := openDB(t, dir)
			o := open(db)
			// The first half gets an early update; the second half is folded and saved, and the
			// process dies before the next update is due.
			if _, err := o.Process(ctx, 1, recs[:20]); err != nil {
				t.Fatal(err)
			}
			commit(t, o, db, 1)
			now = now.Add(time.Second)
			res, err := o.Tick(ctx, 2)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Out) != 8 {
				t.Fatalf("the early update before the crash emitted %d slots, want 8", len(res.Out))
			}
			commit(t, o, db, 2)
			for b := range 4 { // in several commits: a slot changed by one may spill at the next
				id := uint64(3 + b)
				if _, err := o.Process(ctx, id, recs[20+5*b:25+5*b]); err != nil {
					t.Fatal(err)
				}
				commit(t, o, db, id)
			}
			spilled := o.spilled
			db.Close()

			db = openDB(t, dir)
			defer db.Close()
			o = open(db)
			if memory > 0 && (o.spilled == 0 || spilled == 0) {
				t.Fatalf("spilled %d slots before the crash and %d after the restore; the bound does not spill", spilled, o.spilled)
			}
			now = now.Add(time.Second)
			res, err = o.Tick(ctx, 7)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]uint64{}
			for _, w := range decodeOuts(t, res.Out) {
				got[w.Key] = w.Count
			}
			if !maps.Equal(got, want) {
				t.Fatalf("the first early update after the restart: %v, want %v", got, want)
			}
			// Nothing changed since: the next update emits nothing.
			commit(t, o, db, 7)
			now = now.Add(time.Second)
			if res, err = o.Tick(ctx, 8); err != nil || len(res.Out) != 0 {
				t.Fatalf("a second early update without changes emitted %d slots (%v)", len(res.Out), err)
			}
		})
	}
}
