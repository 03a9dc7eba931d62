package redis

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os/exec"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

// startPrivateCluster starts a Redis Cluster of three masters of the test's own and returns
// their addresses.
func startPrivateCluster(t *testing.T) []string {
	t.Helper()
	var addrs []string
	for range 3 {
		port := clusterPort(t)
		srv := startPrivateRedisOn(t, port, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "5000")
		addrs = append(addrs, srv.Addr())
	}
	out, err := exec.Command("redis-cli", append(append([]string{"--cluster", "create"}, addrs...), "--cluster-replicas", "0", "--cluster-yes")...).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	for _, a := range addrs {
		c := client(t, a)
		waitFor(t, "cluster_state:ok on "+a, func() bool {
			info, err := c.ClusterInfo(testCtx(t, 10*time.Second)).Result()
			return err == nil && strings.Contains(info, "cluster_state:ok")
		})
	}
	return addrs
}

// clusterPort returns a free port whose cluster bus port (port+10000) is free too.
func clusterPort(t *testing.T) int {
	t.Helper()
	for range 100 {
		port := 20000 + rand.IntN(25000)
		l1, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		l2, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port+10000))
		l1.Close()
		if err != nil {
			continue
		}
		l2.Close()
		return port
	}
	t.Fatal("no free port pair for a cluster node")
	return 0
}

// TestClusterIntegration writes through a private three-node Redis Cluster: keys of every slot,
// routed to their nodes, with refused records failing alone.
func TestClusterIntegration(t *testing.T) {
	sharedRedis(t) // the services (and with them redis-server and redis-cli) are there
	addrs := startPrivateCluster(t)
	ctx := testCtx(t, 2*time.Minute)
	cc := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: addrs})
	defer cc.Close()

	const n = 10_000
	batch := make([]connector.Record, n)
	for i := range batch {
		batch[i] = rec(fmt.Sprintf(`{"seq":%d,"commodity":"c%d","price":%d.5}`, i, i%7, i))
	}
	for _, tc := range []struct {
		name   string
		values map[string]any
		check  func(t *testing.T)
	}{
		{"hash", map[string]any{"addrs": []any{addrs[0], addrs[1]}, "mode": "hash", "key": "h:{{seq}}"}, func(t *testing.T) {
			if got := countKeys(t, cc, "h:*"); got != n {
				t.Fatalf("%d hashes in the cluster, want %d", got, n)
			}
			if got := cc.HGet(ctx, "h:4321", "price").Val(); got != "4321.5" {
				t.Fatalf("h:4321 price = %q", got)
			}
		}},
		{"stream per commodity", map[string]any{"addrs": []any{addrs[2]}, "cluster": true, "mode": "stream", "stream": "s:{{commodity}}", "maxlen": 100000, "ttl": time.Hour}, func(t *testing.T) {
			total := int64(0)
			for i := range 7 {
				total += cc.XLen(ctx, fmt.Sprintf("s:c%d", i)).Val()
			}
			if total != n {
				t.Fatalf("%d entries in the streams, want %d", total, n)
			}
		}},
		{"zset", map[string]any{"addrs": []any{addrs[0], addrs[1], addrs[2]}, "mode": "zset", "key": "z:{{commodity}}", "score": "price", "member": "{{seq}}"}, func(t *testing.T) {
			total := int64(0)
			for i := range 7 {
				total += cc.ZCard(ctx, fmt.Sprintf("z:c%d", i)).Val()
			}
			if total != n {
				t.Fatalf("%d members in the sorted sets, want %d", total, n)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := openSink(t, tc.values, connector.Env{})
			if err := s.Write(ctx, batch); err != nil {
				t.Fatal(err)
			}
			tc.check(t)
		})
	}

	t.Run("refused records", func(t *testing.T) {
		cc.Set(ctx, "w:1", "a string", 0)
		s := openSink(t, map[string]any{"addrs": []any{addrs[0], addrs[1]}, "mode": "hash", "key": "w:{{seq}}"}, connector.Env{})
		idx, reasons := failedIndexes(t, s.Write(ctx, []connector.Record{rec(`{"seq":0}`), rec(`{"seq":1}`), rec(`{"x":2}`), rec(`{"seq":3}`)}))
		if !reflect.DeepEqual(idx, []int{1, 2}) || !strings.Contains(reasons[0], "WRONGTYPE") {
			t.Fatalf("failed %v (%q), want [1 2] with WRONGTYPE first", idx, reasons)
		}
		for _, k := range []string{"w:0", "w:3"} {
			if cc.Exists(ctx, k).Val() != 1 {
				t.Errorf("%s was not written", k)
			}
		}
	})
	t.Run("single-node config on a cluster node", func(t *testing.T) {
		s := newSink(t, map[string]any{"addr": addrs[0], "mode": "stream", "stream": "x"}, connector.Env{})
		err := s.Open(ctx)
		s.Close(ctx)
		var ce *connector.ConfigError
		if !errors.As(err, &ce) || ce.Field != "addr" || !strings.Contains(err.Error(), "Cluster") {
			t.Fatalf("Open: %v; want a ConfigError on addr saying it is a cluster node", err)
		}
	})
	t.Run("cluster config on a single node", func(t *testing.T) {
		single := startPrivateRedis(t)
		s := newSink(t, map[string]any{"addr": single.Addr(), "cluster": true, "mode": "stream", "stream": "x"}, connector.Env{})
		err := s.Open(ctx)
		s.Close(ctx)
		if !errors.Is(err, connector.ErrPermanent) || !strings.Contains(err.Error(), "not a Redis Cluster") {
			t.Fatalf("Open: %v; want a permanent error saying it is not a cluster", err)
		}
	})
}

func countKeys(t *testing.T, cc *goredis.ClusterClient, pattern string) int {
	t.Helper()
	ctx := testCtx(t, time.Minute)
	var mu sync.Mutex
	total := 0
	err := cc.ForEachMaster(ctx, func(ctx2 context.Context, c *goredis.Client) error {
		iter := c.Scan(ctx2, 0, pattern, 1000).Iterator()
		n := 0
		for iter.Next(ctx2) {
			n++
		}
		mu.Lock()
		total += n
		mu.Unlock()
		return iter.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	return total
}
