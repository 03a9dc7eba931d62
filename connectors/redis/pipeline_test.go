package redis

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/connectors/generate"
	"github.com/sluicehq/sluice/internal/checkpoint"
	"github.com/sluicehq/sluice/internal/engine"
	"github.com/sluicehq/sluice/runtime/catalog"
	"github.com/sluicehq/sluice/runtime/pipeline"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// commodityTemplate makes generate emit records like
// {"seq":7,"commodity":"tin","price":42.17,"ts":"..."}.
const commodityTemplate = `{"seq":{{seq}},"commodity":"{{pick gold silver copper tin nickel}}","price":{{rand_float 10 99}}}`

func testCatalog(t *testing.T) *catalog.Catalog {
	t.Helper()
	cat, err := catalog.New(append([]connector.Component{generate.Component()}, Components()...)...)
	if err != nil {
		t.Fatal(err)
	}
	return cat
}

func generateSource(count int) pipeline.Component {
	return pipeline.Component{Type: "generate", Config: connector.Config{
		"template": commodityTemplate, "count": int64(count), "batch_size": int64(1024), "seed": int64(7)}}
}

// sinkOf is a redis sink entry of a pipeline, its config built through the spec.
func sinkOf(t *testing.T, name string, values map[string]any) pipeline.Sink {
	t.Helper()
	cfg, err := sinkSpec.Config(values)
	if err != nil {
		t.Fatalf("sink %s: %v", name, err)
	}
	return pipeline.Sink{Name: name, Component: pipeline.Component{Type: "redis", Config: cfg}}
}

// runPipeline runs p to its end (or ctx's) with a checkpoint store in dir.
func runPipeline(t *testing.T, ctx context.Context, p *pipeline.Pipeline, dir string) error {
	t.Helper()
	store, err := checkpoint.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	e, err := engine.New(p, engine.Options{Catalog: testCatalog(t), Checkpoints: store, DrainTimeout: 30 * time.Second})
	if err != nil {
		return err
	}
	return e.Run(ctx)
}

// redisCLI runs redis-cli against addr and returns its output.
func redisCLI(t *testing.T, addr string, args ...string) string {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	out, err := exec.Command("redis-cli", append([]string{"-h", host, "-p", port}, args...)...).Output()
	if err != nil {
		t.Fatalf("redis-cli %s: %v", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out))
}

func cliInt(t *testing.T, addr string, args ...string) int {
	t.Helper()
	s := redisCLI(t, addr, args...)
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("redis-cli %s: %q is not a count", strings.Join(args, " "), s)
	}
	return n
}

// TestCommodities100kIntegration runs 100,000 commodity records from generate through one sink
// of each storing mode and counts what arrived with redis-cli.
func TestCommodities100kIntegration(t *testing.T) {
	const n = 100_000
	addr := sharedRedis(t)
	c := client(t, addr)
	prefix := unique(t, "100k")
	dropKeys(t, c, prefix)
	p := &pipeline.Pipeline{Name: "commodities", Source: generateSource(n), Sinks: []pipeline.Sink{
		sinkOf(t, "stream", map[string]any{"addr": addr, "mode": "stream", "stream": prefix + ":prices", "fields": "object"}),
		sinkOf(t, "latest", map[string]any{"addr": addr, "mode": "hash", "key": prefix + ":latest:{{commodity}}"}),
		sinkOf(t, "byprice", map[string]any{"addr": addr, "mode": "zset", "key": prefix + ":byprice", "score": "price", "member": "{{seq}}"}),
		sinkOf(t, "each", map[string]any{"addr": addr, "mode": "string", "key": prefix + ":seq:{{seq}}", "ttl": 10 * time.Minute}),
	}}
	if err := runPipeline(t, testCtx(t, 5*time.Minute), p, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	if got := cliInt(t, addr, "XLEN", prefix+":prices"); got != n {
		t.Errorf("redis-cli XLEN = %d, want %d", got, n)
	}
	if got := cliInt(t, addr, "ZCARD", prefix+":byprice"); got != n {
		t.Errorf("redis-cli ZCARD = %d, want %d", got, n)
	}
	keys := redisCLI(t, addr, "--scan", "--pattern", prefix+":seq:*")
	if got := countLines(keys); got != n {
		t.Errorf("redis-cli --scan found %d string keys, want %d", got, n)
	}
	latest := strings.Fields(redisCLI(t, addr, "--scan", "--pattern", prefix+":latest:*"))
	if len(latest) != 5 {
		t.Errorf("%d latest hashes (%v), want one per commodity", len(latest), latest)
	}
	for _, k := range latest {
		if got := cliInt(t, addr, "HLEN", k); got != 3 {
			t.Errorf("HLEN %s = %d, want 3 (seq, commodity, price)", k, got)
		}
	}
	// Every seq (generate counts from 1) arrived once in the stream.
	seen := make([]bool, n+1)
	for start := "-"; ; {
		msgs := c.XRangeN(testCtx(t, time.Minute), prefix+":prices", start, "+", 10000).Val()
		if len(msgs) == 0 {
			break
		}
		for _, m := range msgs {
			i, _ := strconv.Atoi(m.Values["seq"].(string))
			if i < 1 || i > n || seen[i] {
				t.Fatalf("seq %v out of range or twice", m.Values["seq"])
			}
			seen[i] = true
		}
		start = "(" + msgs[len(msgs)-1].ID
	}
}

func countLines(s string) int {
	n := 0
	sc := bufio.NewScanner(bytes.NewReader([]byte(s)))
	for sc.Scan() {
		if sc.Text() != "" {
			n++
		}
	}
	return n
}

// TestWrongPasswordStopsPipeline checks a wrong password stops the pipeline at once with an error
// naming the sink.
func TestWrongPasswordStopsPipeline(t *testing.T) {
	srv := startPrivateRedis(t, "--requirepass", "right-password")
	p := &pipeline.Pipeline{Name: "auth", Source: generateSource(10), Sinks: []pipeline.Sink{
		sinkOf(t, "cache", map[string]any{"addr": srv.Addr(), "password": "wrong", "mode": "stream", "stream": "s"}),
	}}
	err := runPipeline(t, testCtx(t, time.Minute), p, t.TempDir())
	if err == nil || !errors.Is(err, connector.ErrPermanent) && !strings.Contains(err.Error(), "permanent") {
		t.Fatalf("run: %v; want a permanent error", err)
	}
	for _, want := range []string{`sink "cache"`, "authentication", "WRONGPASS"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

// TestExactlyOnceRefused checks a pipeline asking exactly_once of a publish or cluster sink is
// refused when it is built, before anything runs, naming the sink and the setting.
func TestExactlyOnceRefused(t *testing.T) {
	for _, tc := range []struct {
		values map[string]any
		want   string
	}{
		{map[string]any{"addr": "localhost:6379", "mode": "publish", "channel": "alerts"}, "mode: publish cannot be exactly once"},
		{map[string]any{"addrs": []any{"a:1", "b:2"}, "mode": "stream", "stream": "s"}, "addrs: a Redis Cluster cannot be written exactly once"},
	} {
		p := &pipeline.Pipeline{Name: "eo", Source: generateSource(10), Delivery: pipeline.ExactlyOnce,
			Sinks: []pipeline.Sink{sinkOf(t, "cache", tc.values)}}
		_, err := engine.New(p, engine.Options{Catalog: testCatalog(t)})
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "cache") {
			t.Errorf("engine.New with %v: %v; want an error naming sink cache and saying %q", tc.values, err, tc.want)
		}
	}
}
