package redis

import (
	"reflect"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

const nested = `{"commodity":"gold","price":1912.5,"ok":true,"none":null,"quote":{"bid":1912.25, "ask":[1,2]},"note":"a \"b\"\n"}`

// wantFields is how the fields of nested are stored: strings unquoted, the rest compact JSON.
var wantFields = map[string]string{
	"commodity": "gold", "price": "1912.5", "ok": "true", "none": "null",
	"quote": `{"bid":1912.25,"ask":[1,2]}`, "note": "a \"b\"\n",
}

func TestStreamMode(t *testing.T) {
	addr := sharedRedis(t)
	c := client(t, addr)
	ctx := testCtx(t, time.Minute)
	prefix := unique(t, "stream")
	dropKeys(t, c, prefix)

	t.Run("value field and stream template", func(t *testing.T) {
		s := openSink(t, map[string]any{"addr": addr, "mode": "stream", "stream": prefix + ":{{commodity}}", "value_field": "v"}, connector.Env{})
		recs := []connector.Record{rec(`{"commodity":"gold","price":1}`), rec(`{"commodity":"tin","price":2}`), rec(`{"commodity":"gold","price":3}`)}
		if err := s.Write(ctx, recs); err != nil {
			t.Fatal(err)
		}
		msgs := c.XRange(ctx, prefix+":gold", "-", "+").Val()
		if len(msgs) != 2 || msgs[0].Values["v"] != string(recs[0].Value) || msgs[1].Values["v"] != string(recs[2].Value) {
			t.Fatalf("gold stream = %v", msgs)
		}
		if n := c.XLen(ctx, prefix+":tin").Val(); n != 1 {
			t.Fatalf("tin stream has %d entries, want 1", n)
		}
	})
	t.Run("object fields", func(t *testing.T) {
		key := prefix + ":obj"
		s := openSink(t, map[string]any{"addr": addr, "mode": "stream", "stream": key, "fields": "object"}, connector.Env{})
		if err := s.Write(ctx, []connector.Record{rec(nested)}); err != nil {
			t.Fatal(err)
		}
		msgs := c.XRange(ctx, key, "-", "+").Val()
		if len(msgs) != 1 {
			t.Fatalf("%d entries, want 1", len(msgs))
		}
		got := map[string]string{}
		for k, v := range msgs[0].Values {
			got[k] = v.(string)
		}
		if !reflect.DeepEqual(got, wantFields) {
			t.Fatalf("entry fields = %q\nwant %q", got, wantFields)
		}
	})
	for _, approx := range []bool{false, true} {
		name := map[bool]string{false: "maxlen exact", true: "maxlen approximate"}[approx]
		t.Run(name, func(t *testing.T) {
			key := prefix + ":" + strings.ReplaceAll(name, " ", "_")
			s := openSink(t, map[string]any{"addr": addr, "mode": "stream", "stream": key, "maxlen": 10, "maxlen_approximate": approx}, connector.Env{})
			batch := make([]connector.Record, 1000)
			for i := range batch {
				batch[i] = rec(`{}`)
			}
			if err := s.Write(ctx, batch); err != nil {
				t.Fatal(err)
			}
			n := c.XLen(ctx, key).Val()
			// Approximate trimming removes whole macro nodes (100 entries by default), so it
			// keeps at least 10 and fewer than 10 + a node.
			if !approx && n != 10 || approx && (n < 10 || n > 10+100) {
				t.Fatalf("XLEN = %d after 1000 appends with maxlen 10 (approximate %v)", n, approx)
			}
		})
	}
	t.Run("ttl", func(t *testing.T) {
		key := prefix + ":ttl"
		s := openSink(t, map[string]any{"addr": addr, "mode": "stream", "stream": key, "ttl": time.Hour}, connector.Env{})
		if err := s.Write(ctx, []connector.Record{rec(`1`), rec(`2`)}); err != nil {
			t.Fatal(err)
		}
		if n := c.XLen(ctx, key).Val(); n != 2 {
			t.Fatalf("XLEN = %d, want 2", n)
		}
		checkTTL(t, c, key, time.Hour)
	})
}

// checkTTL fails unless key expires within (0, ttl].
func checkTTL(t *testing.T, c *goredis.Client, key string, ttl time.Duration) {
	t.Helper()
	got := c.PTTL(testCtx(t, time.Minute), key).Val()
	if got <= 0 || got > ttl {
		t.Fatalf("PTTL %s = %v, want in (0, %v]", key, got, ttl)
	}
}

func TestHashMode(t *testing.T) {
	addr := sharedRedis(t)
	c := client(t, addr)
	ctx := testCtx(t, time.Minute)
	prefix := unique(t, "hash")
	dropKeys(t, c, prefix)
	s := openSink(t, map[string]any{"addr": addr, "mode": "hash", "key": prefix + ":{{commodity}}", "ttl": time.Hour}, connector.Env{})
	if err := s.Write(ctx, []connector.Record{rec(nested), rec(`{"commodity":"gold","price":1913}`)}); err != nil {
		t.Fatal(err)
	}
	got := c.HGetAll(ctx, prefix+":gold").Val()
	want := map[string]string{}
	for k, v := range wantFields {
		want[k] = v
	}
	want["price"] = "1913" // the later record's field wins, the others stay
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("hash = %q\nwant %q", got, want)
	}
	checkTTL(t, c, prefix+":gold", time.Hour)
}

func TestStringMode(t *testing.T) {
	addr := sharedRedis(t)
	c := client(t, addr)
	ctx := testCtx(t, time.Minute)
	prefix := unique(t, "string")
	dropKeys(t, c, prefix)
	s := openSink(t, map[string]any{"addr": addr, "mode": "string", "key": prefix + ":{{key}}:{{header.src}}", "ttl": 90 * time.Second}, connector.Env{})
	r := connector.Record{Key: []byte("gold"), Value: []byte(nested), Headers: []connector.Header{{Key: "src", Value: []byte("lme")}}}
	if err := s.Write(ctx, []connector.Record{r}); err != nil {
		t.Fatal(err)
	}
	key := prefix + ":gold:lme"
	if got := c.Get(ctx, key).Val(); got != nested {
		t.Fatalf("GET %s = %q, want the record value", key, got)
	}
	checkTTL(t, c, key, 90*time.Second)

	// Without ttl the key does not expire.
	s2 := openSink(t, map[string]any{"addr": addr, "mode": "string", "key": prefix + ":plain"}, connector.Env{})
	if err := s2.Write(ctx, []connector.Record{rec("x")}); err != nil {
		t.Fatal(err)
	}
	if ttl := c.PTTL(ctx, prefix+":plain").Val(); ttl != -1 {
		t.Fatalf("PTTL without ttl = %v, want -1 (no expiry)", ttl)
	}
}

func TestZsetMode(t *testing.T) {
	addr := sharedRedis(t)
	c := client(t, addr)
	ctx := testCtx(t, time.Minute)
	prefix := unique(t, "zset")
	dropKeys(t, c, prefix)

	t.Run("score path and member template", func(t *testing.T) {
		key := prefix + ":bids"
		s := openSink(t, map[string]any{"addr": addr, "mode": "zset", "key": key, "score": "quote.bid", "member": "{{commodity}}", "ttl": time.Hour}, connector.Env{})
		recs := []connector.Record{
			rec(`{"commodity":"gold","quote":{"bid":1912.25}}`),
			rec(`{"commodity":"tin","quote":{"bid":"31.5"}}`), // a number in a string counts
			rec(`{"commodity":"gold","quote":{"bid":1900}}`),  // a member's later score wins
		}
		if err := s.Write(ctx, recs); err != nil {
			t.Fatal(err)
		}
		got := c.ZRangeWithScores(ctx, key, 0, -1).Val()
		want := []goredis.Z{{Score: 31.5, Member: "tin"}, {Score: 1900, Member: "gold"}}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("zset = %v, want %v", got, want)
		}
		checkTTL(t, c, key, time.Hour)
	})
	t.Run("score template and whole value", func(t *testing.T) {
		key := prefix + ":times"
		s := openSink(t, map[string]any{"addr": addr, "mode": "zset", "key": key, "score": "{{time_ms}}"}, connector.Env{})
		at := time.UnixMilli(1_700_000_000_123)
		if err := s.Write(ctx, []connector.Record{{Value: []byte(`{"a":1}`), Time: at}}); err != nil {
			t.Fatal(err)
		}
		got := c.ZRangeWithScores(ctx, key, 0, -1).Val()
		if len(got) != 1 || got[0].Member != `{"a":1}` || got[0].Score != 1_700_000_000_123 {
			t.Fatalf("zset = %v", got)
		}
	})
}

func TestPublishMode(t *testing.T) {
	addr := sharedRedis(t)
	c := client(t, addr)
	ctx := testCtx(t, time.Minute)
	prefix := unique(t, "pub")
	sub := c.PSubscribe(ctx, prefix+":*")
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	s := openSink(t, map[string]any{"addr": addr, "mode": "publish", "channel": prefix + ":{{commodity}}"}, connector.Env{})
	if err := s.Write(ctx, []connector.Record{rec(`{"commodity":"gold","price":1}`), rec(`{"commodity":"tin","price":2}`)}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []struct{ ch, payload string }{{prefix + ":gold", `{"commodity":"gold","price":1}`}, {prefix + ":tin", `{"commodity":"tin","price":2}`}} {
		m, err := sub.ReceiveMessage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if m.Channel != want.ch || m.Payload != want.payload {
			t.Fatalf("received %q on %s; want %q on %s", m.Payload, m.Channel, want.payload, want.ch)
		}
	}
}
