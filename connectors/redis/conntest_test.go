package redis

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/sluicehq/sluice/sdk/go/connector"
	"github.com/sluicehq/sluice/sdk/go/conntest"
)

// TestConformanceSink runs the connector contract checks in every mode against the shared Redis.
// Records are {"n":i}; poison records are values the mode cannot store.
func TestConformanceSink(t *testing.T) {
	addr := sharedRedis(t)
	c := client(t, addr)
	type mode struct {
		name   string
		config func(prefix string) map[string]any
		poison string
		read   func(t *testing.T, ctx context.Context, prefix string) []string
	}
	// scanRead reads every key under prefix with get and returns the values.
	scanRead := func(get func(ctx context.Context, key string) string) func(t *testing.T, ctx context.Context, prefix string) []string {
		return func(t *testing.T, ctx context.Context, prefix string) []string {
			var out []string
			iter := c.Scan(ctx, 0, prefix+":*", 1000).Iterator()
			for iter.Next(ctx) {
				out = append(out, get(ctx, iter.Val()))
			}
			if err := iter.Err(); err != nil {
				t.Fatal(err)
			}
			return out
		}
	}
	modes := []mode{
		{name: "stream", poison: `not json`,
			config: func(p string) map[string]any {
				return map[string]any{"addr": addr, "mode": "stream", "stream": p, "fields": "object", "maxlen": 100000}
			},
			read: func(t *testing.T, ctx context.Context, p string) []string {
				msgs, err := c.XRange(ctx, p, "-", "+").Result()
				if err != nil {
					t.Fatal(err)
				}
				var out []string
				for _, m := range msgs {
					out = append(out, fmt.Sprintf(`{"n":%v}`, m.Values["n"]))
				}
				return out
			}},
		{name: "hash", poison: `[1,2]`,
			config: func(p string) map[string]any {
				return map[string]any{"addr": addr, "mode": "hash", "key": p + ":{{n}}", "ttl": 10 * time.Minute}
			},
			read: scanRead(func(ctx context.Context, k string) string {
				return fmt.Sprintf(`{"n":%s}`, c.HGet(ctx, k, "n").Val())
			})},
		{name: "string", poison: `{"m":1}`,
			config: func(p string) map[string]any {
				return map[string]any{"addr": addr, "mode": "string", "key": p + ":{{n}}", "ttl": 10 * time.Minute}
			},
			read: scanRead(func(ctx context.Context, k string) string { return c.Get(ctx, k).Val() })},
		{name: "zset", poison: `{"n":"many"}`,
			config: func(p string) map[string]any {
				return map[string]any{"addr": addr, "mode": "zset", "key": p, "score": "n"}
			},
			read: func(t *testing.T, ctx context.Context, p string) []string {
				ms, err := c.ZRange(ctx, p, 0, -1).Result()
				if err != nil {
					t.Fatal(err)
				}
				return ms
			}},
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			conntest.TestSink(t, conntest.SinkHarness{
				Setup: func(t *testing.T) (conntest.SinkFactory, func(t *testing.T) []connector.Record) {
					prefix := unique(t, "ct")
					dropKeys(t, c, prefix)
					cfg := conntest.Config(t, sinkSpec, m.config(prefix))
					return func() (connector.Sink, error) { return NewSink(cfg, connector.Env{}) },
						func(t *testing.T) []connector.Record {
							var out []connector.Record
							for _, v := range m.read(t, testCtx(t, time.Minute), prefix) {
								out = append(out, rec(v))
							}
							return out
						}
				},
				Poison: func(int) connector.Record { return rec(m.poison) },
				Broken: func(t *testing.T) (connector.Sink, error) {
					cfg := m.config("broken")
					cfg["addr"] = fmt.Sprintf("127.0.0.1:%d", freePort(t)) // nothing listens
					cfg["dial_timeout"] = time.Second
					return NewSink(conntest.Config(t, sinkSpec, cfg), connector.Env{})
				},
			})
		})
	}
	t.Run("publish", func(t *testing.T) {
		conntest.TestSink(t, conntest.SinkHarness{
			Setup: func(t *testing.T) (conntest.SinkFactory, func(t *testing.T) []connector.Record) {
				prefix := unique(t, "ct")
				sub := c.PSubscribe(testCtx(t, time.Minute), prefix+":*")
				t.Cleanup(func() { sub.Close() })
				if _, err := sub.Receive(testCtx(t, time.Minute)); err != nil { // the subscription's confirmation
					t.Fatal(err)
				}
				cfg := conntest.Config(t, sinkSpec, map[string]any{"addr": addr, "mode": "publish", "channel": prefix + ":{{n}}"})
				return func() (connector.Sink, error) { return NewSink(cfg, connector.Env{}) },
					func(t *testing.T) []connector.Record { return receiveUntilMarker(t, c, sub, prefix+":end") }
			},
			Poison: func(int) connector.Record { return rec(`{"m":1}`) },
		})
	})
}

// receiveUntilMarker publishes a marker after the sink's messages and returns what the
// subscriber received before it: Redis delivers to a subscriber in the order it published.
func receiveUntilMarker(t *testing.T, c *goredis.Client, sub *goredis.PubSub, channel string) []connector.Record {
	t.Helper()
	ctx := testCtx(t, time.Minute)
	if err := c.Publish(ctx, channel, "end").Err(); err != nil {
		t.Fatal(err)
	}
	var out []connector.Record
	for {
		m, err := sub.ReceiveMessage(ctx)
		if err != nil {
			t.Fatalf("receive: %v", err)
		}
		if m.Channel == channel {
			sort.Slice(out, func(i, j int) bool { return string(out[i].Value) < string(out[j].Value) })
			return out
		}
		out = append(out, rec(m.Payload))
	}
}

// TestConformanceTransactionalSink runs the exactly-once contract checks on stream mode, with
// several processes of one pipeline writing at once (Shared). The sink reaches Redis through a
// proxy, so that a commit can be broken: the proxy lets the WATCH and the read of the positions
// through and holds the MULTI/EXEC request until the write times out, and the server never runs it.
func TestConformanceTransactionalSink(t *testing.T) {
	addr := sharedRedis(t)
	c := client(t, addr)
	var px *proxy
	conntest.TestTransactionalSink(t, conntest.TransactionalSinkHarness{
		Setup: func(t *testing.T) (conntest.TxSinkFactory, func(t *testing.T) []connector.Record) {
			prefix := unique(t, "ct")
			dropKeys(t, c, prefix)
			// The checks name their pipelines conntest-<time>; their positions use the default key.
			dropKeys(t, c, "sluice:positions:conntest-")
			px = startProxy(t, addr)
			cfg := conntest.Config(t, sinkSpec, map[string]any{"addr": px.Addr(), "mode": "stream", "stream": prefix, "fields": "object", "timeout": time.Second})
			return func(env connector.Env) (connector.TransactionalSink, error) { return NewSink(cfg, env) },
				func(t *testing.T) []connector.Record {
					msgs, err := c.XRange(testCtx(t, time.Minute), prefix, "-", "+").Result()
					if err != nil {
						t.Fatal(err)
					}
					var out []connector.Record
					for _, m := range msgs {
						out = append(out, rec(fmt.Sprintf(`{"n":%v}`, m.Values["n"])))
					}
					return out
				}
		},
		Poison: func(int) connector.Record { return rec(`not json`) },
		BreakCommit: func(t *testing.T) func() {
			px.holdAtMulti(true, true)
			return px.cut
		},
		Shared: true,
	})
}
