package servicetest

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sluicehq/sluice/internal/testenv"
)

func TestRedisSmokeIntegration(t *testing.T) {
	addr := testenv.Require(t, "REDIS_ADDR")
	ctx := testContext(t, 30*time.Second)

	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	key := uniqueName(t, "smoke")
	t.Cleanup(func() { rdb.Del(testContext(t, 5*time.Second), key) })
	if err := rdb.Set(ctx, key, "hello redis", time.Minute).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	got, err := rdb.Get(ctx, key).Result()
	if err != nil {
		t.Fatalf("GET: %v", err)
	}
	if got != "hello redis" {
		t.Fatalf("GET = %q, want %q", got, "hello redis")
	}
	ttl, err := rdb.TTL(ctx, key).Result()
	if err != nil || ttl <= 0 || ttl > time.Minute {
		t.Fatalf("TTL = %v (err %v), want in (0, 1m]", ttl, err)
	}
	if _, err := rdb.Get(ctx, key+"_absent").Result(); err != redis.Nil {
		t.Fatalf("GET of an absent key: err = %v, want redis.Nil", err)
	}
}
