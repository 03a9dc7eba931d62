package redis

import (
	"context"
	"errors"
	"fmt"
	"reflect"
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
	t.Cleanup(func() { c.Del(context.Background(), "sluice:positions:prices:other") })
	checkStored(t, other, []connector.Position{{Offset: 1}})
	if got := c.HGetAll(ctx, "sluice:positions:prices:other").Val(); !reflect.DeepEqual(got, map[string]string{"": `{"offset":1}`}) {
		t.Fatalf("default positions key holds %q", got)
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
			px.set(!ran, true)
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

// TestWriteTxSecondWriter checks a sink notices when the positions it stored were changed by
// another writer (a second process running the same pipeline) and stops.
func TestWriteTxSecondWriter(t *testing.T) {
	addr := sharedRedis(t)
	c := client(t, addr)
	ctx := testCtx(t, time.Minute)
	prefix := unique(t, "tx")
	dropKeys(t, c, prefix)
	values := map[string]any{"addr": addr, "mode": "stream", "stream": prefix + ":s", "positions_key": prefix + ":pos"}
	env := connector.Env{Pipeline: "prices", Component: "cache"}
	a, b := openSink(t, values, env), openSink(t, values, env)
	for _, s := range []*Sink{a, b} {
		checkStored(t, s, nil)
	}
	if err := a.WriteTx(ctx, posRecs("p", 1, 2), []connector.Position{{Partition: "p", Offset: 2}}); err != nil {
		t.Fatal(err)
	}
	if err := a.WriteTx(ctx, posRecs("p", 3, 4), []connector.Position{{Partition: "p", Offset: 4}}); err != nil {
		t.Fatal(err)
	}
	err := b.WriteTx(ctx, posRecs("p", 1, 2), []connector.Position{{Partition: "p", Offset: 2}})
	if !errors.Is(err, connector.ErrPermanent) || !strings.Contains(err.Error(), "another process") {
		t.Fatalf("second writer: %v; want a permanent error about another process", err)
	}
	// The first one notices too.
	err = a.WriteTx(ctx, posRecs("p", 5, 5), []connector.Position{{Partition: "p", Offset: 5}})
	if !errors.Is(err, connector.ErrPermanent) {
		t.Fatalf("first writer after the second: %v; want a permanent error", err)
	}
}
