package redis

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

// TestBadRecords checks that each record that cannot be stored fails alone, with its reason, and
// the rest of the batch is written.
func TestBadRecords(t *testing.T) {
	addr := sharedRedis(t)
	c := client(t, addr)
	ctx := testCtx(t, time.Minute)
	for _, ttl := range []time.Duration{0, time.Hour} { // plain HSET, and the expiry script
		t.Run("hash ttl "+ttl.String(), func(t *testing.T) {
			prefix := unique(t, "bad")
			dropKeys(t, c, prefix)
			if err := c.RPush(ctx, prefix+":wrong", "a list").Err(); err != nil {
				t.Fatal(err)
			}
			s := openSink(t, map[string]any{"addr": addr, "mode": "hash", "key": prefix + ":{{commodity}}", "ttl": ttl}, connector.Env{})
			batch := []connector.Record{
				rec(`{"commodity":"gold","price":1}`),
				rec(`{"price":2}`),                 // no commodity for the key
				rec(`"gold"`),                      // not an object
				rec(`{"commodity":"wrong","p":3}`), // the key holds a list
				rec(`{"commodity":"tin","price":4}`),
				rec(`{"commodity":`),            // not JSON
				rec(` {"commodity":"spaced"} `), // blanks around JSON are fine
				rec(`[{"commodity":"arr"}]`),    // an array
			}
			idx, reasons := failedIndexes(t, s.Write(ctx, batch))
			if want := []int{1, 2, 3, 5, 7}; !reflect.DeepEqual(idx, want) {
				t.Fatalf("failed %v (%q); want %v", idx, reasons, want)
			}
			for i, want := range []string{"field commodity missing", "field commodity missing", "WRONGTYPE", "", "field commodity missing"} {
				if !strings.Contains(reasons[i], want) {
					t.Errorf("reason of record %d = %q; want it to mention %q", idx[i], reasons[i], want)
				}
			}
			for _, k := range []string{"gold", "tin", "spaced"} {
				if c.Exists(ctx, prefix+":"+k).Val() != 1 {
					t.Errorf("key %s:%s was not written", prefix, k)
				}
			}
			if got := c.PTTL(ctx, prefix+":wrong").Val(); got != -1 {
				t.Errorf("the list the refused record named got PTTL %v; want -1 (untouched)", got)
			}
		})
	}
	t.Run("hash values", func(t *testing.T) {
		prefix := unique(t, "bad")
		dropKeys(t, c, prefix)
		s := openSink(t, map[string]any{"addr": addr, "mode": "hash", "key": prefix + ":h"}, connector.Env{})
		idx, reasons := failedIndexes(t, s.Write(ctx, []connector.Record{rec(`"gold"`), rec(`[1]`), rec(`{}`), rec(`{"a":1} x`), rec(`{"a":1}`)}))
		if want := []int{0, 1, 2, 3}; !reflect.DeepEqual(idx, want) {
			t.Fatalf("failed %v (%q); want %v", idx, reasons, want)
		}
		for i, want := range []string{"not a JSON object: a JSON string", "not a JSON object: a JSON array", "empty", "not valid JSON"} {
			if !strings.Contains(reasons[i], want) {
				t.Errorf("reason of record %d = %q; want it to mention %q", idx[i], reasons[i], want)
			}
		}
	})
	t.Run("zset scores", func(t *testing.T) {
		prefix := unique(t, "bad")
		dropKeys(t, c, prefix)
		s := openSink(t, map[string]any{"addr": addr, "mode": "zset", "key": prefix + ":z", "score": "p", "member": "{{m}}"}, connector.Env{})
		batch := []connector.Record{
			rec(`{"m":"a","p":1}`),
			rec(`{"m":"b","p":"high"}`),
			rec(`{"m":"c"}`),
			rec(`{"m":"d","p":"NaN"}`),
			rec(`{"m":"e","p":{"x":1}}`),
			rec(`{"p":2}`),
			rec(`{"m":"f","p":-1.5e3}`),
		}
		idx, reasons := failedIndexes(t, s.Write(ctx, batch))
		if want := []int{1, 2, 3, 4, 5}; !reflect.DeepEqual(idx, want) {
			t.Fatalf("failed %v (%q); want %v", idx, reasons, want)
		}
		if got := c.ZRange(ctx, prefix+":z", 0, -1).Val(); !reflect.DeepEqual(got, []string{"f", "a"}) {
			t.Fatalf("members %v, want [f a]", got)
		}
	})
	t.Run("stream object fields", func(t *testing.T) {
		prefix := unique(t, "bad")
		dropKeys(t, c, prefix)
		s := openSink(t, map[string]any{"addr": addr, "mode": "stream", "stream": prefix + ":s", "fields": "object"}, connector.Env{})
		idx, _ := failedIndexes(t, s.Write(ctx, []connector.Record{rec(`{}`), rec(`{"a":1}`), rec(`12`), rec(``)}))
		if want := []int{0, 2, 3}; !reflect.DeepEqual(idx, want) {
			t.Fatalf("failed %v, want %v", idx, want)
		}
		if n := c.XLen(ctx, prefix+":s").Val(); n != 1 {
			t.Fatalf("XLEN = %d, want 1", n)
		}
	})
}

// TestBadConfig checks every configuration problem is a *connector.ConfigError naming the field.
func TestBadConfig(t *testing.T) {
	base := func(kv ...any) map[string]any {
		m := map[string]any{"addr": "localhost:6379", "mode": "stream", "stream": "s"}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(m, kv[i].(string))
			} else {
				m[kv[i].(string)] = kv[i+1]
			}
		}
		return m
	}
	for _, tc := range []struct {
		name   string
		values map[string]any
		field  string
	}{
		{"no address", base("addr", nil), "addr"},
		{"both addresses", base("addrs", []any{"a:1"}), "addrs"},
		{"address without port", base("addr", "localhost"), "addr"},
		{"db in a cluster", base("addr", nil, "addrs", []any{"a:1", "b:2"}, "db", 1), "db"},
		{"negative db", base("db", -1), "db"},
		{"stream mode without stream", base("stream", nil), "stream"},
		{"hash mode without key", base("mode", "hash", "stream", nil), "key"},
		{"key in stream mode", base("key", "k"), "key"},
		{"stream in hash mode", base("mode", "hash", "key", "k"), "stream"},
		{"publish without channel", base("mode", "publish", "stream", nil), "channel"},
		{"ttl in publish mode", base("mode", "publish", "stream", nil, "channel", "c", "ttl", time.Second), "ttl"},
		{"zset without score", base("mode", "zset", "stream", nil, "key", "k"), "score"},
		{"bad score path", base("mode", "zset", "stream", nil, "key", "k", "score", "a..b"), "score"},
		{"score in hash mode", base("mode", "hash", "stream", nil, "key", "k", "score", "p"), "score"},
		{"maxlen in hash mode", base("mode", "hash", "stream", nil, "key", "k", "maxlen", 10), "maxlen"},
		{"negative maxlen", base("maxlen", -1), "maxlen"},
		{"fields object in hash mode", base("mode", "hash", "stream", nil, "key", "k", "fields", "object"), "fields"},
		{"empty value field", base("value_field", ""), "value_field"},
		{"sub-millisecond ttl", base("ttl", time.Microsecond), "ttl"},
		{"unclosed template", base("stream", "s:{{commodity"), "stream"},
		{"tls files without tls", base("tls", map[string]any{"ca_file": "/ca.pem"}), "tls.enabled"},
		{"cert without key", base("tls", map[string]any{"enabled": true, "cert_file": "/c.pem"}), "tls.cert_file"},
		{"zero timeout", base("timeout", time.Duration(0)), "timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := sinkSpec.Config(tc.values)
			if err == nil {
				_, err = NewSink(cfg, connector.Env{})
			}
			var ce *connector.ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("got %v; want a *connector.ConfigError", err)
			}
			if ce.Field != tc.field {
				t.Fatalf("error %q names field %q; want %q", err, ce.Field, tc.field)
			}
		})
	}
}

// TestWrongCredentials checks that a wrong password, an unknown user and a database out of range
// are permanent errors at Open saying what failed, without the password.
func TestWrongCredentials(t *testing.T) {
	srv := startPrivateRedis(t, "--requirepass", "right-password")
	ctx := testCtx(t, time.Minute)
	for _, tc := range []struct {
		name   string
		values map[string]any
		want   string
	}{
		{"wrong password", map[string]any{"password": "wrong-password"}, `authentication at ` + srv.Addr() + ` as user "default" failed`},
		{"no password", map[string]any{}, "authentication"},
		{"unknown user", map[string]any{"username": "nobody", "password": "right-password"}, `as user "nobody" failed`},
		{"db out of range", map[string]any{"password": "right-password", "db": 99}, "db 99"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			values := map[string]any{"addr": srv.Addr(), "mode": "stream", "stream": "s"}
			for k, v := range tc.values {
				values[k] = v
			}
			s := newSink(t, values, connector.Env{})
			err := s.Open(ctx)
			t.Log(err)
			// The runtime retries Open: a second one checks again.
			if err2 := s.Open(ctx); err2 == nil || err2.Error() != err.Error() {
				t.Errorf("second Open: %v; want the first one's error again", err2)
			}
			s.Close(ctx)
			if !errors.Is(err, connector.ErrPermanent) {
				t.Fatalf("Open: %v; want a permanent error", err)
			}
			if !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "wrong-password") {
				t.Fatalf("Open: %q; want it to say %q and not hold the password", err, tc.want)
			}
		})
	}
	// The right password works.
	s := openSink(t, map[string]any{"addr": srv.Addr(), "password": "right-password", "mode": "stream", "stream": "s"}, connector.Env{})
	if err := s.Write(ctx, []connector.Record{rec("x")}); err != nil {
		t.Fatal(err)
	}
}
