package kafka

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/internal/testenv"
)

// TestBacklogMetricOfARunningPipelineIntegration reads a running `sluice run`'s /metrics: the
// Kafka source's lag is exported per partition as sluice_source_backlog_records. The pipeline
// writes to a Postgres table the test holds locked, so it stalls with records undelivered and the
// backlog must show them on every partition; once the lock is released, it must fall to 0.
func TestBacklogMetricOfARunningPipelineIntegration(t *testing.T) {
	b := sharedBroker(t)
	dsn := testenv.Require(t, "PG_DSN")
	bin := sluiceBinary(t)
	const partitions, n = 3, 30_000
	topic := b.topic(t, partitions, nil)
	b.produce(t, topic, partitions, n, seqValue(partitions))

	ctx := testContext(t, 5*time.Minute)
	table := fmt.Sprintf("kafka_lag_%d", time.Now().UnixNano())
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, fmt.Sprintf(`CREATE TABLE %q (p bigint, s bigint)`, table)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = conn.Exec(context.Background(), fmt.Sprintf(`DROP TABLE IF EXISTS %q`, table)) })
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, fmt.Sprintf(`LOCK TABLE %q IN ACCESS EXCLUSIVE MODE`, table)); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	m := writeManifest(t, filepath.Join(dir, "lag.yaml"), "lag", groupSource(b.addr, topic, uniqueName(t, "g"), ""),
		fmt.Sprintf("    - {name: out, type: postgres, config: {dsn: %q, table: %s, columns: {p: bigint, s: bigint}}}\n", dsn, table), "")
	p := startSluice(t, bin, dir, "lag", m)
	re := regexp.MustCompile(`(?m)^sluice_source_backlog_records\{partition="([^"]+)",pipeline="lag"\} (\S+)$`)
	backlog := func() (map[string]float64, float64) {
		cl := http.Client{Timeout: 2 * time.Second}
		resp, err := cl.Get("http://" + p.admin + "/metrics")
		if err != nil {
			return nil, -1
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		parts, total := map[string]float64{}, 0.0
		for _, g := range re.FindAllStringSubmatch(string(body), -1) {
			v, _ := strconv.ParseFloat(g[2], 64)
			parts[g[1]] = v
			total += v
		}
		return parts, total
	}
	var stalled float64
	waitFor(t, 2*time.Minute, "a backlog on every partition while the table is locked", func() bool {
		if p.exited() {
			t.Fatalf("sluice exited:\n%s", p.logTail())
		}
		parts, total := backlog()
		for i := range partitions {
			if parts[fmt.Sprintf("%s/%d", topic, i)] <= 0 {
				return false
			}
		}
		stalled = total
		return true
	})
	if stalled > n {
		t.Fatalf("backlog %v, more than the %d records in the topic", stalled, n)
	}
	t.Logf("table locked: backlog %v of %d records", stalled, n)
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Minute, "the backlog back to 0 once the table takes rows", func() bool {
		if p.exited() {
			t.Fatalf("sluice exited:\n%s", p.logTail())
		}
		parts, total := backlog()
		return len(parts) == partitions && total == 0
	})
	var rows int
	if err := conn.QueryRow(ctx, fmt.Sprintf(`SELECT count(*) FROM %q`, table)).Scan(&rows); err != nil || rows != n {
		t.Fatalf("%d rows in the table (%v), want %d", rows, err, n)
	}
	p.terminate()
}
