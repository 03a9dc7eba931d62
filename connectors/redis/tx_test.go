package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

func posRecs(part string, from, to int) []connector.Record {
	var out []connector.Record
	for i := from; i <= to; i++ {
		out = append(out, connector.Record{Value: fmt.Appendf(nil, `{"part":%q,"n":%d}`, part, i), Position: connector.Position{Partition: part, Offset: int64(i)}})
	}
	return out
}

func checkStored(t *testing.T, s *Sink, want []connector.Position) {
	t.Helper()
	got, err := s.StoredPositions(testCtx(t, time.Minute))
	if err != nil {
		t.Fatalf("StoredPositions: %v", err)
	}
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("StoredPositions = %v, want %v", got, want)
	}
}

func TestWriteTx(t *testing.T) {
	addr := sharedRedis(t)
	c := client(t, addr)
	ctx := testCtx(t, time.Minute)
	prefix := unique(t, "tx")
	dropKeys(t, c, prefix)
	env := connector.Env{Pipeline: "prices", Component: "cache"}
	values := map[string]any{"addr": addr, "mode": "stream", "stream": prefix + ":s", "positions_key": prefix + ":pos"}
	s := openSink(t, values, env)
	checkStored(t, s, nil)

	pos := []connector.Position{{Partition: "a", Offset: 3}, {Partition: "b", Offset: 2, Cursor: []byte{0, 1, 0xff}}}
	recs := append(posRecs("a", 1, 3), posRecs("b", 1, 2)...)
	if err := s.WriteTx(ctx, recs, pos); err != nil {
		t.Fatal(err)
	}
	checkStored(t, s, pos)
	if n := c.XLen(ctx, prefix+":s").Val(); n != 5 {
		t.Fatalf("XLEN = %d, want 5", n)
	}
	// Positions alone move; a partition not named keeps its position.
	if err := s.WriteTx(ctx, nil, []connector.Position{{Partition: "a", Offset: 9}}); err != nil {
		t.Fatal(err)
	}
	checkStored(t, s, []connector.Position{{Partition: "a", Offset: 9}, pos[1]})

	// A reopened sink reads them back; a sink of another pipeline or name has its own.
	s2 := openSink(t, values, env)
	checkStored(t, s2, []connector.Position{{Partition: "a", Offset: 9}, pos[1]})
	delete(values, "positions_key")
	other := openSink(t, values, connector.Env{Pipeline: "prices", Component: "other"})
	checkStored(t, other, nil)
	if err := other.WriteTx(ctx, nil, []connector.Position{{Offset: 1}}); err != nil { // the unnamed partition
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Del(context.Background(), "sluice:positions:prices:other", "sluice:positions:prices:other:version:")
	})
	checkStored(t, other, []connector.Position{{Offset: 1}})
	if got := c.HGetAll(ctx, "sluice:positions:prices:other").Val(); !reflect.DeepEqual(got, map[string]string{"": `{"offset":1}`}) {
		t.Fatalf("default positions key holds %q", got)
	}
	if got := c.Get(ctx, "sluice:positions:prices:other:version:").Val(); got != "1" {
		t.Fatalf("the unnamed partition's version key holds %q, want 1", got)
	}
}

// TestWriteTxRefusedRecords checks records refused at run time (WRONGTYPE) or before sending (a
// missing field) fail alone while the others and the positions are stored.
func TestWriteTxRefusedRecords(t *testing.T) {
	addr := sharedRedis(t)
	c := client(t, addr)
	ctx := testCtx(t, time.Minute)
	prefix := unique(t, "tx")
	dropKeys(t, c, prefix)
	if err := c.Set(ctx, prefix+":h:wrong", "a string", 0).Err(); err != nil {
		t.Fatal(err)
	}
	s := openSink(t, map[string]any{"addr": addr, "mode": "hash", "key": prefix + ":h:{{k}}", "positions_key": prefix + ":pos"}, connector.Env{})
	recs := []connector.Record{
		{Value: []byte(`{"k":"a","v":1}`), Position: connector.Position{Offset: 1}},
		{Value: []byte(`{"k":"wrong","v":2}`), Position: connector.Position{Offset: 2}},
		{Value: []byte(`{"v":3}`), Position: connector.Position{Offset: 3}},
		{Value: []byte(`{"k":"b","v":4}`), Position: connector.Position{Offset: 4}},
	}
	idx, reasons := failedIndexes(t, s.WriteTx(ctx, recs, []connector.Position{{Offset: 4}}))
	if !reflect.DeepEqual(idx, []int{1, 2}) || !strings.Contains(reasons[0], "WRONGTYPE") {
		t.Fatalf("failed %v (%q), want [1 2] with WRONGTYPE first", idx, reasons)
	}
	checkStored(t, s, []connector.Position{{Offset: 4}})
	for _, k := range []string{"a", "b"} {
		if c.HGet(ctx, prefix+":h:"+k, "v").Val() == "" {
			t.Errorf("hash %s was not written", k)
		}
	}
}

// TestWriteTxACL checks a record whose key the user's ACL denies: Redis refuses it while
// queueing and aborts the transaction; the sink sets the record aside and commits the rest.
func TestWriteTxACL(t *testing.T) {
	srv := startPrivateRedis(t)
	admin := client(t, srv.Addr())
	ctx := testCtx(t, time.Minute)
	if err := admin.Do(ctx, "ACL", "SETUSER", "writer", "on", ">pw", "~ok:*", "~sluice:*", "+@all").Err(); err != nil {
		t.Fatal(err)
	}
	values := map[string]any{"addr": srv.Addr(), "username": "writer", "password": "pw", "mode": "string", "key": "{{k}}"}
	s := openSink(t, values, connector.Env{Pipeline: "p", Component: "acl"})
	recs := []connector.Record{
		{Value: []byte(`{"k":"ok:1"}`), Position: connector.Position{Offset: 1}},
		{Value: []byte(`{"k":"denied:2"}`), Position: connector.Position{Offset: 2}},
		{Value: []byte(`{"k":"ok:3"}`), Position: connector.Position{Offset: 3}},
	}
	idx, reasons := failedIndexes(t, s.WriteTx(ctx, recs, []connector.Position{{Offset: 3}}))
	if !reflect.DeepEqual(idx, []int{1}) || !strings.Contains(reasons[0], "NOPERM") {
		t.Fatalf("failed %v (%q), want [1] refused with NOPERM", idx, reasons)
	}
	checkStored(t, s, []connector.Position{{Offset: 3}})
	if n := admin.Exists(ctx, "ok:1", "ok:3", "denied:2").Val(); n != 2 {
		t.Fatalf("%d of ok:1, ok:3, denied:2 exist; want the two ok keys", n)
	}
	// The same without a transaction.
	idx, _ = failedIndexes(t, s.Write(ctx, []connector.Record{rec(`{"k":"ok:w1"}`), rec(`{"k":"denied:w2"}`), rec(`{"k":"ok:w3"}`)}))
	if !reflect.DeepEqual(idx, []int{1}) {
		t.Fatalf("Write failed %v, want [1]", idx)
	}
}

// TestWriteTxLostReply checks the case of a transaction whose outcome the sink cannot know (the
// connection broke after EXEC was sent): the retry must neither lose nor duplicate records,
// whether or not the transaction ran.
func TestWriteTxLostReply(t *testing.T) {
	addr := sharedRedis(t)
	c := client(t, addr)
	for _, ran := range []bool{true, false} {
		t.Run(fmt.Sprintf("ran=%v", ran), func(t *testing.T) {
			ctx := testCtx(t, time.Minute)
			prefix := unique(t, "tx")
			dropKeys(t, c, prefix)
			px := startProxy(t, addr)
			posKey := prefix + ":pos"
			s := openSink(t, map[string]any{"addr": px.Addr(), "mode": "stream", "stream": prefix + ":s", "positions_key": posKey}, connector.Env{})
			if err := s.WriteTx(ctx, posRecs("p", 1, 3), []connector.Position{{Partition: "p", Offset: 3}}); err != nil {
				t.Fatal(err)
			}
			batch, pos := posRecs("p", 4, 10), []connector.Position{{Partition: "p", Offset: 10}}
			px.holdAtMulti(!ran, true)
			done := make(chan error, 1)
			go func() { done <- s.WriteTx(ctx, batch, pos) }()
			if ran {
				waitFor(t, "the transaction to run", func() bool { return c.HGet(ctx, posKey, "p").Val() == `{"offset":10}` })
			} else {
				waitFor(t, "the request to be held", func() bool { return px.heldBytes() > 0 })
				if n := c.XLen(ctx, prefix+":s").Val(); n != 3 {
					t.Fatalf("the stream holds %d entries while the transaction is held, want 3", n)
				}
			}
			px.cut()
			err := <-done
			if err == nil {
				t.Fatal("WriteTx succeeded though its reply was lost")
			}
			var be *connector.BatchError
			if errors.As(err, &be) {
				t.Fatalf("WriteTx: %v; want a failure of the whole write", err)
			}
			if err := s.WriteTx(ctx, batch, pos); err != nil {
				t.Fatalf("retry: %v", err)
			}
			checkStored(t, s, pos)
			msgs := c.XRange(ctx, prefix+":s", "-", "+").Val()
			if len(msgs) != 10 {
				t.Fatalf("stream holds %d entries after the retry, want 10", len(msgs))
			}
			for i, m := range msgs {
				if want := fmt.Sprintf(`{"part":"p","n":%d}`, i+1); m.Values["value"] != want {
					t.Fatalf("entry %d = %v, want %s", i, m.Values["value"], want)
				}
			}
		})
	}
}

// waitFor polls cond until it holds, failing the test after a generous deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestCheckExactlyOnce(t *testing.T) {
	for _, tc := range []struct {
		values map[string]any
		field  string
	}{
		{map[string]any{"addr": "h:1", "mode": "stream", "stream": "s"}, ""},
		{map[string]any{"addr": "h:1", "mode": "hash", "key": "k"}, ""},
		{map[string]any{"addr": "h:1", "mode": "publish", "channel": "c"}, "mode"},
		{map[string]any{"addrs": []any{"h:1", "h:2"}, "mode": "stream", "stream": "s"}, "addrs"},
		{map[string]any{"addr": "h:1", "cluster": true, "mode": "stream", "stream": "s"}, "cluster"},
	} {
		err := newSink(t, tc.values, connector.Env{}).CheckExactlyOnce()
		var ce *connector.ConfigError
		switch {
		case tc.field == "" && err != nil:
			t.Errorf("%v: %v; want nil", tc.values, err)
		case tc.field != "" && (!errors.As(err, &ce) || ce.Field != tc.field):
			t.Errorf("%v: %v; want a ConfigError naming %s", tc.values, err, tc.field)
		}
	}
}

func TestPositionsKeyOfAnotherType(t *testing.T) {
	addr := sharedRedis(t)
	c := client(t, addr)
	ctx := testCtx(t, time.Minute)
	prefix := unique(t, "tx")
	dropKeys(t, c, prefix)
	c.Set(ctx, prefix+":pos", "not a hash", 0)
	s := openSink(t, map[string]any{"addr": addr, "mode": "stream", "stream": prefix + ":s", "positions_key": prefix + ":pos"}, connector.Env{})
	if _, err := s.StoredPositions(ctx); !errors.Is(err, connector.ErrPermanent) {
		t.Fatalf("StoredPositions: %v; want a permanent error", err)
	}
	err := s.WriteTx(ctx, posRecs("p", 1, 1), []connector.Position{{Partition: "p", Offset: 1}})
	if !errors.Is(err, connector.ErrPermanent) || !strings.Contains(err.Error(), "not a hash") {
		t.Fatalf("WriteTx: %v; want a permanent error", err)
	}
}

// TestWriteTxStaleWriter checks, in every mode that can be exactly once, two instances of one
// pipeline's sink, one of which read the positions before the other wrote: the stale one's
// records at or before the stored positions are left out (a stream does not get them twice, a
// key does not go back to an older value), its lower positions do not move the stored ones back,
// and its records after them are written.
func TestWriteTxStaleWriter(t *testing.T) {
	addr := sharedRedis(t)
	c := client(t, addr)
	for _, tc := range []struct {
		mode   string
		values func(prefix string) map[string]any
		// last reads the n of the last record of partition p written, -1 for none.
		last func(ctx context.Context, prefix string) int
	}{
		{"stream", func(p string) map[string]any { return map[string]any{"stream": p + ":s"} }, nil},
		{"hash", func(p string) map[string]any { return map[string]any{"key": p + ":h:{{part}}"} },
			func(ctx context.Context, p string) int { return atoi(c.HGet(ctx, p+":h:p", "n").Val()) }},
		{"hash+ttl", func(p string) map[string]any { return map[string]any{"key": p + ":h:{{part}}", "ttl": time.Hour} },
			func(ctx context.Context, p string) int { return atoi(c.HGet(ctx, p+":h:p", "n").Val()) }},
		{"string", func(p string) map[string]any { return map[string]any{"key": p + ":k:{{part}}"} },
			func(ctx context.Context, p string) int {
				var v struct{ N int }
				if json.Unmarshal([]byte(c.Get(ctx, p+":k:p").Val()), &v) != nil {
					return -1
				}
				return v.N
			}},
		{"zset", func(p string) map[string]any {
			return map[string]any{"key": p + ":z", "score": "n", "member": "{{part}}"}
		},
			func(ctx context.Context, p string) int { return int(c.ZScore(ctx, p+":z", "p").Val()) }},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			ctx := testCtx(t, time.Minute)
			prefix := unique(t, "tx")
			dropKeys(t, c, prefix)
			values := tc.values(prefix)
			values["addr"], values["mode"], values["positions_key"] = addr, strings.TrimSuffix(tc.mode, "+ttl"), prefix+":pos"
			env := connector.Env{Pipeline: "prices", Component: "cache"}
			a, b := openSink(t, values, env), openSink(t, values, env)
			for _, s := range []*Sink{a, b} {
				checkStored(t, s, nil)
			}
			if err := a.WriteTx(ctx, posRecs("p", 1, 5), []connector.Position{{Partition: "p", Offset: 5}}); err != nil {
				t.Fatal(err)
			}
			// b has seen nothing: its records 1..3 are all stored, and its position 3 is behind.
			if err := b.WriteTx(ctx, posRecs("p", 1, 3), []connector.Position{{Partition: "p", Offset: 3}}); err != nil {
				t.Fatalf("stale write: %v", err)
			}
			checkStored(t, b, []connector.Position{{Partition: "p", Offset: 5}})
			if tc.last != nil {
				if n := tc.last(ctx, prefix); n != 5 {
					t.Fatalf("after the stale write the key holds record %d, want 5", n)
				}
			}
			// b's records 4..7 with q: 6, 7 and q's are new.
			recs := append(posRecs("p", 4, 7), posRecs("q", 1, 2)...)
			if err := b.WriteTx(ctx, recs, []connector.Position{{Partition: "p", Offset: 7}, {Partition: "q", Offset: 2}}); err != nil {
				t.Fatal(err)
			}
			// a, behind on q now, writes positions only: q does not move back.
			if err := a.WriteTx(ctx, nil, []connector.Position{{Partition: "q", Offset: 1}}); err != nil {
				t.Fatal(err)
			}
			fresh := openSink(t, values, env)
			checkStored(t, fresh, []connector.Position{{Partition: "p", Offset: 7}, {Partition: "q", Offset: 2}})
			if tc.last != nil {
				if n := tc.last(ctx, prefix); n != 7 {
					t.Fatalf("the key holds record %d, want 7", n)
				}
				return
			}
			var got []string
			for _, m := range c.XRange(ctx, prefix+":s", "-", "+").Val() {
				got = append(got, fmt.Sprint(m.Values["value"]))
			}
			var want []string
			for _, r := range append(posRecs("p", 1, 7), posRecs("q", 1, 2)...) {
				want = append(want, string(r.Value))
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("stream holds\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		return -1
	}
	return n
}

// TestWriteTxMovedBack checks a sink stops when the positions it saw stored went back or
// vanished (the server lost writes it had acknowledged), instead of writing records again: with
// the version key changed too (a transaction's WATCH fires), or after a new connection (a server
// restarted or failed over closes the old ones).
func TestWriteTxMovedBack(t *testing.T) {
	addr := sharedRedis(t)
	c := client(t, addr)
	for _, change := range []string{"lower", "deleted", "lower-reconnected"} {
		t.Run(change, func(t *testing.T) {
			ctx := testCtx(t, time.Minute)
			prefix := unique(t, "tx")
			dropKeys(t, c, prefix)
			posKey := prefix + ":pos"
			s := openSink(t, map[string]any{"addr": addr, "mode": "stream", "stream": prefix + ":s", "positions_key": posKey}, connector.Env{Pipeline: "prices"})
			if err := s.WriteTx(ctx, posRecs("p", 1, 5), []connector.Position{{Partition: "p", Offset: 5}}); err != nil {
				t.Fatal(err)
			}
			switch change {
			case "lower":
				c.HSet(ctx, posKey, "p", `{"offset":2}`)
				c.Set(ctx, posKey+":version:p", 2, 0)
			case "deleted":
				c.Del(ctx, posKey, posKey+":version:p")
			case "lower-reconnected":
				c.HSet(ctx, posKey, "p", `{"offset":2}`)
				s.dropConn()
			}
			err := s.WriteTx(ctx, posRecs("p", 3, 6), []connector.Position{{Partition: "p", Offset: 6}})
			if !errors.Is(err, connector.ErrPermanent) || !strings.Contains(err.Error(), "moved back") {
				t.Fatalf("WriteTx: %v; want a permanent error saying the positions moved back", err)
			}
			if n := c.XLen(ctx, prefix+":s").Val(); n != 5 {
				t.Fatalf("stream holds %d entries, want the 5 of the first write", n)
			}
		})
	}
}

// TestWriteTxConcurrentWriters runs three instances of one pipeline's sink at once, as the
// processes of a consumer group: each writes ~3,000 records a second (paced) or as fast as it can,
// in batches of 10, to a partition of its own, and in the overlapping cases also all of a shared
// partition, which one instance starts late with a stale view. The stream must hold every record
// once and a fresh instance read the greatest position of each partition. It logs how many
// transactions found the positions changed by another writer and started over.
func TestWriteTxConcurrentWriters(t *testing.T) {
	addr := sharedRedis(t)
	c := client(t, addr)
	for _, tc := range []struct {
		name    string
		n       int           // records of each partition
		shared  bool          // a partition all instances write
		perSec  int           // records a second of each instance, 0 unpaced
		timeout time.Duration // hang guard
	}{
		{"disjoint/3000rps", 6000, false, 3000, 2 * time.Minute},
		{"overlapping/3000rps", 3000, true, 3000, 2 * time.Minute},
		{"overlapping/unpaced", 3000, true, 0, 2 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testCtx(t, tc.timeout)
			prefix := unique(t, "tx")
			dropKeys(t, c, prefix)
			posKey := prefix + ":pos"
			values := map[string]any{"addr": addr, "mode": "stream", "stream": prefix + ":s", "positions_key": posKey}
			env := connector.Env{Pipeline: "prices", Component: "cache"}
			const writers, size = 3, 10
			sinks := make([]*Sink, writers)
			for i := range sinks {
				sinks[i] = openSink(t, values, env)
				checkStored(t, sinks[i], nil) // all read before anyone wrote
			}
			errs := make(chan error, writers)
			for i, s := range sinks {
				go func() {
					errs <- func() error {
						own := fmt.Sprintf("own/%d", i)
						if tc.shared && i == writers-1 {
							// The late one starts once a third of the shared partition is stored.
							for atoi(strings.TrimSuffix(strings.TrimPrefix(c.HGet(ctx, posKey, "shared").Val(), `{"offset":`), "}")) < tc.n/3 {
								if err := ctx.Err(); err != nil {
									return err
								}
								time.Sleep(time.Millisecond)
							}
						}
						perBatch := size
						if tc.shared {
							perBatch = size / 2
						}
						var interval time.Duration
						if tc.perSec > 0 {
							interval = time.Duration(size) * time.Second / time.Duration(tc.perSec)
						}
						next := time.Now()
						for from := 1; from <= tc.n; from += perBatch {
							to := min(from+perBatch-1, tc.n)
							recs := posRecs(own, from, to)
							pos := []connector.Position{{Partition: own, Offset: int64(to)}}
							if tc.shared {
								recs = append(recs, posRecs("shared", from, to)...)
								pos = append(pos, connector.Position{Partition: "shared", Offset: int64(to)})
							}
							if err := s.WriteTx(ctx, recs, pos); err != nil {
								return fmt.Errorf("instance %d, records %d..%d: %w", i, from, to, err)
							}
							if interval > 0 {
								next = next.Add(interval)
								time.Sleep(time.Until(next))
							}
						}
						return nil
					}()
				}()
			}
			for range writers {
				if err := <-errs; err != nil {
					t.Fatal(err)
				}
			}
			var txs, conflicts int64
			for i, s := range sinks {
				t.Logf("instance %d: %d transactions, %d started over", i, s.txs, s.conflicts)
				txs, conflicts = txs+s.txs, conflicts+s.conflicts
			}
			t.Logf("%s: %d of %d transactions (%.1f%%) found the positions changed by another writer and started over",
				tc.name, conflicts, txs, 100*float64(conflicts)/float64(txs))

			var want []connector.Position
			counts := map[string]int{}
			for i := range writers {
				own := fmt.Sprintf("own/%d", i)
				want = append(want, connector.Position{Partition: own, Offset: int64(tc.n)})
				for _, r := range posRecs(own, 1, tc.n) {
					counts[string(r.Value)]--
				}
			}
			if tc.shared {
				want = append(want, connector.Position{Partition: "shared", Offset: int64(tc.n)})
				for _, r := range posRecs("shared", 1, tc.n) {
					counts[string(r.Value)]--
				}
			}
			checkStored(t, openSink(t, values, env), want)
			for _, m := range c.XRange(ctx, prefix+":s", "-", "+").Val() {
				counts[fmt.Sprint(m.Values["value"])]++
			}
			bad := 0
			for v, d := range counts {
				if d != 0 && bad < 10 {
					t.Errorf("record %s: stored %d times more than once", v, d)
				}
				if d != 0 {
					bad++
				}
			}
			if bad > 0 {
				t.Fatalf("%d records not stored exactly once", bad)
			}
		})
	}
}

// TestWriteTxReadsCarried checks a sink writing the same partitions again and again reads the
// positions once up front and then only in each transaction's own pipeline, after its EXEC (a
// WATCH and an HMGET per EXEC), rather than in a round trip of their own before each; a batch
// entirely at or before what it has seen stored sends nothing.
func TestWriteTxReadsCarried(t *testing.T) {
	srv := startPrivateRedis(t)
	c := client(t, srv.Addr())
	ctx := testCtx(t, time.Minute)
	s := openSink(t, map[string]any{"addr": srv.Addr(), "mode": "stream", "stream": "s"}, connector.Env{Pipeline: "p", Component: "c"})
	calls := func() map[string]int {
		out := map[string]int{}
		for _, line := range strings.Split(c.Info(ctx, "commandstats").Val(), "\n") {
			name, rest, ok := strings.Cut(strings.TrimPrefix(line, "cmdstat_"), ":calls=")
			if ok && strings.HasPrefix(line, "cmdstat_") {
				n, _, _ := strings.Cut(rest, ",")
				out[name] = atoi(n)
			}
		}
		return out
	}
	const txs = 50
	for j := range txs {
		recs := append(posRecs("a", 10*j+1, 10*j+10), posRecs("b", 10*j+1, 10*j+5)...)
		if err := s.WriteTx(ctx, recs, []connector.Position{{Partition: "a", Offset: int64(10*j + 10)}, {Partition: "b", Offset: int64(10*j + 5)}}); err != nil {
			t.Fatal(err)
		}
	}
	// Old records and positions: nothing to send.
	if err := s.WriteTx(ctx, posRecs("a", 1, 10), []connector.Position{{Partition: "a", Offset: 10}}); err != nil {
		t.Fatal(err)
	}
	got := calls()
	for cmd, want := range map[string]int{"exec": txs, "watch": txs + 1, "hmget": txs + 1, "xadd": 15 * txs} {
		if got[cmd] != want {
			t.Errorf("%s called %d times, want %d (all: %v)", cmd, got[cmd], want, got)
		}
	}
	if n := c.XLen(ctx, "s").Val(); n != 15*txs {
		t.Fatalf("stream holds %d entries, want %d", n, 15*txs)
	}
}
