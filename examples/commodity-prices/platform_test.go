package commodityprices_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/examples/commodity-prices/ledger"
	"github.com/sluicehq/sluice/internal/testenv"
)

// The names the platform manifests use (examples/commodity-prices/platform).
var (
	platformTopics = map[string]int32{"commodity-prices": 3, "commodity-prices-rejected": 1, "commodity-analytics-rejected": 1}
	platformGroups = []string{"commodity-analytics", "commodity-analytics-stats"}
)

// TestPlatformManifestsValidate checks the extract and analytics manifests with `sluice validate`.
func TestPlatformManifestsValidate(t *testing.T) {
	if testing.Short() {
		t.Skip("builds sluice")
	}
	sluice := build(t, "github.com/sluicehq/sluice/cmd/sluice")
	cmd := exec.Command(sluice, "validate", "--data-dir", t.TempDir(), "platform") // its module cache goes there
	cmd.Env = append(os.Environ(), "PRICE_API=http://127.0.0.1:8787", "KAFKA=127.0.0.1:9092", "PG_DSN=postgres://u@127.0.0.1:5432/db",
		"REDIS_ADDR=127.0.0.1:6379", "LAKE_CATALOG_URI=sqlite:////tmp/lake/catalog.db", "LAKE_WAREHOUSE=file:///tmp/lake/warehouse")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "3 pipelines") {
		t.Fatalf("sluice validate platform: %v\n%s", err, out)
	}
}

// sluiceProcess is a running `sluice run`, stopped with SIGTERM when the test ends.
type sluiceProcess struct {
	cmd    *exec.Cmd
	out    *testenv.Buffer
	exited chan error
}

func startSluice(t *testing.T, bin string, env []string, args ...string) *sluiceProcess {
	t.Helper()
	p := &sluiceProcess{cmd: exec.Command(bin, args...), out: &testenv.Buffer{}, exited: make(chan error, 1)}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited <- p.cmd.Wait() }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(60 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("sluice %v:\n%s", args, p.out.String())
		}
	})
	return p
}

// waitFor polls cond until it holds, failing after the deadline with what it last reported, or at
// once when a sluice process exits.
func waitFor(t *testing.T, what string, deadline time.Duration, procs []*sluiceProcess, cond func() (bool, string)) {
	t.Helper()
	end := time.Now().Add(deadline)
	for {
		ok, state := cond()
		if ok {
			return
		}
		for _, p := range procs {
			select {
			case err := <-p.exited:
				p.exited <- err
				t.Fatalf("waiting for %s (%s): sluice exited: %v\n%s", what, state, err, p.out.String())
			default:
			}
		}
		if time.Now().After(end) {
			t.Fatalf("waiting for %s: still %s after %s", what, state, deadline)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// readTopic reads every record of topic up to its end offsets.
func readTopic(t *testing.T, ctx context.Context, brokers string, adm *kadm.Client, topic string) []*kgo.Record {
	t.Helper()
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	want := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			want[o.Partition] = o.Offset
		}
	})
	if len(want) == 0 {
		return nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []*kgo.Record
	for len(want) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %s: %v", topic, ctx.Err())
		}
		fs.EachRecord(func(r *kgo.Record) {
			if end, ok := want[r.Partition]; ok && r.Offset < end {
				out = append(out, r)
				if r.Offset == end-1 {
					delete(want, r.Partition)
				}
			}
		})
	}
	return out
}

func topicSize(ctx context.Context, adm *kadm.Client, topic string) int64 {
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return -1
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n
}

// TestPlatformAgainstServices runs the extract pipeline and three processes of the analytics
// pipelines against the real Kafka, Postgres and Redis (Iceberg on a SQLite catalog, which the
// three processes commit to), on a bounded history of the price API, and accounts for every
// record: the valid ones once each in the topic commodity-prices (keyed by commodity, so each
// commodity on one partition) and in the Iceberg table, the malformed ones in the dead-letter
// topic; one alert per outlier in the Redis stream; the latest price of each commodity in Redis;
// the closed minute windows in Postgres equal to those the table's rows give. The topics (state
// logs included), groups, stream, hashes and table of these manifests are dropped first, so the
// services must not be shared with another run of this test.
func TestPlatformAgainstServices(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the services")
	}
	kafkaAddr := testenv.Require(t, "KAFKA_BOOTSTRAP")
	pgDSN := testenv.Require(t, "PG_DSN")
	redisAddr := testenv.Require(t, "REDIS_ADDR")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	// Fresh topics, groups, Redis keys and Postgres table.
	kcl, err := kgo.NewClient(kgo.SeedBrokers(kafkaAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer kcl.Close()
	adm := kadm.NewClient(kcl)
	_, _ = adm.DeleteGroups(ctx, platformGroups...)
	for topic := range platformTopics {
		_, _ = adm.DeleteTopics(ctx, topic)
	}
	// The aggregate stages' state logs (sluice.GROUP.PIPELINE.STAGE.state) of an earlier run.
	listed, err := adm.ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range listed.Names() {
		if strings.HasPrefix(name, "sluice.commodity-analytics") {
			_, _ = adm.DeleteTopics(ctx, name)
		}
	}
	for topic, parts := range platformTopics {
		waitFor(t, "topic "+topic+" to be created", time.Minute, nil, func() (bool, string) {
			resp, err := adm.CreateTopic(ctx, parts, 1, nil, topic)
			if err == nil {
				err = resp.Err
			}
			if err != nil {
				return false, err.Error() // still being deleted
			}
			return true, ""
		})
	}
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr})
	defer rdb.Close()
	keys, _ := rdb.Keys(ctx, "price:*").Result()
	// The positions the exactly-once sinks stored in an earlier run: the topics start again at
	// offset 0, and positions left from before would have every record skipped as written.
	positions, _ := rdb.Keys(ctx, "sluice:positions:commodity-analytics*").Result()
	if err := rdb.Del(ctx, append(append(keys, positions...), "commodity-alerts")...).Err(); err != nil {
		t.Fatal(err)
	}
	pg, err := pgx.Connect(ctx, pgDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close(context.Background())
	if _, err := pg.Exec(ctx, "DROP TABLE IF EXISTS commodity_stats_1m"); err != nil {
		t.Fatal(err)
	}
	if _, err := pg.Exec(ctx, `DO $$ BEGIN
		IF to_regclass('sluice_positions') IS NOT NULL THEN
			DELETE FROM sluice_positions WHERE pipeline LIKE 'commodity-analytics%';
		END IF;
	END $$`); err != nil {
		t.Fatal(err)
	}

	sluice := build(t, "github.com/sluicehq/sluice/cmd/sluice")
	priceapi := build(t, "github.com/sluicehq/sluice/examples/commodity-prices/priceapi")
	// Half of the history at once, the rest as it comes (event time 40 times faster than the
	// clock: about 5 s), so that extract polls it over several cycles, each from its cursor.
	const total = 2000
	api := startAPI(t, priceapi, "-seed", "11", "-total", fmt.Sprint(total), "-rate", "0.5",
		"-start", "2026-01-05T09:00:00Z", "-backfill", "200s", "-speed", "40", "-malformed", "0.05", "-outlier", "0.02")

	dir := t.TempDir()
	env := []string{"PRICE_API=" + api, "KAFKA=" + kafkaAddr, "PG_DSN=" + pgDSN, "REDIS_ADDR=" + redisAddr,
		"LAKE_CATALOG_URI=sqlite:///" + filepath.Join(dir, "catalog.db"), "LAKE_WAREHOUSE=file://" + filepath.Join(dir, "warehouse")}
	// extract in one process, analytics in three (the consumer groups spread the partitions).
	procs := []*sluiceProcess{
		startSluice(t, sluice, env, "run", "--watch=false", "--admin-addr", "", "--log-level", "warn", "--data-dir", filepath.Join(dir, "extract"), "platform/extract.yaml"),
	}
	for i := range 3 {
		procs = append(procs, startSluice(t, sluice, env, "run", "--watch=false", "--admin-addr", "", "--log-level", "warn",
			"--data-dir", filepath.Join(dir, fmt.Sprint("analytics", i)), "platform/analytics.yaml"))
	}

	var produced ledger.Produced
	waitFor(t, "the price API to produce its history", time.Minute, procs, func() (bool, string) {
		var err error
		if produced, err = ledger.APIStats(ctx, api); err != nil {
			return false, err.Error()
		}
		return produced.Done, fmt.Sprintf("%d records produced", produced.Produced)
	})
	if produced.Produced != total || produced.Malformed == 0 || produced.Outliers == 0 {
		t.Fatalf("the API produced %+v", produced)
	}
	served := fetchAll(t, api)

	waitFor(t, "extract to publish every record", 5*time.Minute, procs, func() (bool, string) {
		v, m := topicSize(ctx, adm, "commodity-prices"), topicSize(ctx, adm, "commodity-prices-rejected")
		return v == produced.Valid && m == produced.Malformed, fmt.Sprintf("%d valid and %d rejected in Kafka of %d and %d", v, m, produced.Valid, produced.Malformed)
	})

	// Kafka: the valid records once each, each commodity on one partition; the malformed ones in
	// the dead-letter topic.
	partitionOf := map[string]int32{}
	seen := map[int64]bool{}
	for _, r := range readTopic(t, ctx, kafkaAddr, adm, "commodity-prices") {
		var v struct {
			Seq       int64  `json:"seq"`
			Commodity string `json:"commodity"`
		}
		if err := json.Unmarshal(r.Value, &v); err != nil || string(r.Key) != v.Commodity || seen[v.Seq] {
			t.Fatalf("commodity-prices offset %d/%d: key %q value %s (seen before %v, %v)", r.Partition, r.Offset, r.Key, r.Value, seen[v.Seq], err)
		}
		seen[v.Seq] = true
		if p, ok := partitionOf[v.Commodity]; ok && p != r.Partition {
			t.Errorf("%s is on partitions %d and %d", v.Commodity, p, r.Partition)
		}
		partitionOf[v.Commodity] = r.Partition
	}
	malformed := map[int64]bool{}
	for _, s := range produced.MalformedSeqs {
		malformed[s] = true
		if seen[s] {
			t.Errorf("malformed seq %d is in commodity-prices", s)
		}
	}
	for _, r := range readTopic(t, ctx, kafkaAddr, adm, "commodity-prices-rejected") {
		var d ledger.DeadLetter
		if err := json.Unmarshal(r.Value, &d); err != nil || !malformed[d.Seq()] || d.Reason == "" {
			t.Errorf("commodity-prices-rejected: unexpected %s (%v)", r.Value, err)
		}
		delete(malformed, d.Seq())
	}
	if len(malformed) != 0 {
		t.Errorf("%d malformed records are in no topic", len(malformed))
	}

	// Analytics: Iceberg rows, alerts, latest prices, minute statistics.
	var rows []ledger.Price
	waitFor(t, "analytics to write every valid record to Iceberg", 5*time.Minute, procs, func() (bool, string) {
		lake, err := ledger.OpenSQLiteCatalog(ctx, "commodities", filepath.Join(dir, "catalog.db"), filepath.Join(dir, "warehouse"))
		if err != nil {
			return false, err.Error()
		}
		defer lake.Close()
		if rows, err = lake.Prices(ctx); err != nil {
			return false, err.Error()
		}
		return int64(len(rows)) >= produced.Valid, fmt.Sprintf("%d rows of %d", len(rows), produced.Valid)
	})
	byCommodity := map[string][]ledger.Price{}
	rowSeqs := map[int64]bool{}
	for _, r := range rows {
		if rowSeqs[r.Seq] || !seen[r.Seq] {
			t.Errorf("market.prices: seq %d twice or not published", r.Seq)
		}
		rowSeqs[r.Seq] = true
		w := served[r.Seq]
		if w["commodity"] != r.Commodity || w["price"] != r.Price {
			t.Errorf("market.prices seq %d: %s %v, served %v", r.Seq, r.Commodity, r.Price, w)
		}
		byCommodity[r.Commodity] = append(byCommodity[r.Commodity], r)
	}
	waitFor(t, "one alert per outlier in Redis", 2*time.Minute, procs, func() (bool, string) {
		n, _ := rdb.XLen(ctx, "commodity-alerts").Result()
		return n >= produced.Outliers, fmt.Sprintf("%d alerts of %d outliers", n, produced.Outliers)
	})
	entries, err := rdb.XRange(ctx, "commodity-alerts", "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	outlierAt := map[string]bool{}
	for _, s := range produced.OutlierSeqs {
		w := served[s]
		ts, _ := time.Parse(time.RFC3339, w["ts"].(string))
		outlierAt[fmt.Sprintf("%s@%d", w["commodity"], ts.UnixMilli())] = true
	}
	for _, e := range entries {
		k := fmt.Sprintf("%s@%s", e.Values["key"], e.Values["ts"])
		if !outlierAt[k] {
			t.Errorf("alert %v is no outlier", e.Values)
		}
		delete(outlierAt, k)
	}
	if len(outlierAt) != 0 {
		t.Errorf("outliers without an alert: %v", outlierAt)
	}
	for c, rs := range byCommodity {
		last := rs[0]
		for _, r := range rs {
			if r.Seq > last.Seq {
				last = r
			}
		}
		got, err := rdb.HGet(ctx, "price:"+c, "price").Float64()
		if err != nil || got != last.Price {
			t.Errorf("Redis price:%s = %v (%v), the latest valid price is %v (seq %d)", c, got, err, last.Price, last.Seq)
		}
	}

	// Postgres: each closed window equals the one the Iceberg rows give; every window that ends a
	// minute before the earliest commodity's last price (plus the allowed lateness) is closed.
	type slot struct {
		commodity string
		start     int64
	}
	type agg struct {
		n        int64
		min, max float64
	}
	expect := map[slot]*agg{}
	lastTS := time.Time{}
	for c, rs := range byCommodity {
		cl := time.Time{}
		for _, r := range rs {
			k := slot{c, r.TS.UnixMilli() / 60000 * 60000}
			a := expect[k]
			if a == nil {
				a = &agg{min: r.Price, max: r.Price}
				expect[k] = a
			}
			a.n++
			a.min, a.max = min(a.min, r.Price), max(a.max, r.Price)
			if r.TS.After(cl) {
				cl = r.TS
			}
		}
		if lastTS.IsZero() || cl.Before(lastTS) {
			lastTS = cl
		}
	}
	closedBy := lastTS.Add(-5*time.Second - time.Minute).UnixMilli()
	mustClose := 0
	for k := range expect {
		if k.start+60000 <= closedBy {
			mustClose++
		}
	}
	var pgRows int
	waitFor(t, "the closed minute windows in Postgres", 2*time.Minute, procs, func() (bool, string) {
		err := pg.QueryRow(ctx, "SELECT count(*) FROM commodity_stats_1m").Scan(&pgRows)
		if err != nil {
			return false, err.Error()
		}
		return pgRows >= mustClose, fmt.Sprintf("%d windows of at least %d", pgRows, mustClose)
	})
	rs, err := pg.Query(ctx, `SELECT commodity, window_start, window_end, count, min, max FROM commodity_stats_1m`)
	if err != nil {
		t.Fatal(err)
	}
	var checked int
	for rs.Next() {
		var c string
		var start, end time.Time
		var n int64
		var lo, hi float64
		if err := rs.Scan(&c, &start, &end, &n, &lo, &hi); err != nil {
			t.Fatal(err)
		}
		e := expect[slot{c, start.UnixMilli()}]
		if e == nil || end.Sub(start) != time.Minute || e.n != n || e.min != lo || e.max != hi {
			t.Errorf("commodity_stats_1m %s %s: count %d min %v max %v; the rows give %+v", c, start, n, lo, hi, e)
		}
		checked++
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	if n := topicSize(ctx, adm, "commodity-analytics-rejected"); n != 0 {
		t.Errorf("analytics sent %d records to its dead letters; extract validated them all", n)
	}
	t.Logf("%d records: %d valid through Kafka into Iceberg, %d dead letters, %d alerts, %d minute windows in Postgres (%d must be closed)",
		total, len(rows), produced.Malformed, len(entries), checked, mustClose)
}
