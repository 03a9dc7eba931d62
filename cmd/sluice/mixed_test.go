package main_test

import (
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/testenv"
)

// TestKill9ExactlyOnceMixedSinksIntegration runs one pipeline into three kinds of sink at once,
// each committing at its own pace: Postgres (a table), Redis (a stream, with a batch of its own)
// and Iceberg (a table, committing every 5,000 records), with delivery: exactly_once. It kills
// `sluice run` with SIGKILL at ten random moments, restarting it each time, then lets a run
// finish. Each sink must then hold every record exactly once: psql, redis-cli and PyIceberg count
// them, and each sink's stored position is the end of the file. The engine resumes from the
// earliest position any sink stored and gives each sink only what it lacks.
func TestKill9ExactlyOnceMixedSinksIntegration(t *testing.T) {
	dsn := testenv.Require(t, "PG_DSN")
	addr := testenv.Require(t, "REDIS_ADDR")
	python := testenv.Require(t, "PYICEBERG_PYTHON")
	bin := buildSluice(t)
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewSource(seed))
	t.Logf("seed %d", seed)
	// Held to 40,000 lines/s: ten kills at most 430 ms into a run come before the end.
	const n = 200_000
	dir := t.TempDir()
	inPath, inLen := writeCommodities(t, dir, n, 1000)
	suffix := strconv.FormatInt(time.Now().UnixNano(), 36)
	pgTable, pgPos := "eo_mixed_"+suffix, "eo_mixed_pos_"+suffix
	stream, redisPos := "sluicetest:eo-mixed:"+suffix, "sluicetest:eo-mixed:pos:"+suffix
	cli := redisCLI(t, addr)
	t.Cleanup(func() {
		psqlRun(t, dsn, fmt.Sprintf("DROP TABLE IF EXISTS %s, %s", pgTable, pgPos))
		cli("DEL", stream, redisPos)
	})
	db, wh := filepath.Join(dir, "catalog.db"), "file://"+filepath.Join(dir, "warehouse")
	manifest := fmt.Sprintf(`apiVersion: sluice.dev/v1
kind: Pipeline
metadata: {name: eo-mixed}
spec:
  source: {type: file, config: {path: %q, read_buffer: 16KiB, rate: 40000}}
  sinks:
    - {name: pg, type: postgres, config: {dsn: %q, table: %s, create_table: true, positions_table: %s,
        columns: {seq: bigint, commodity: text, price: double precision, ts: timestamptz}}}
    - {name: cache, type: redis, batch: {max_records: 1500, linger: 20ms},
       config: {addr: %q, mode: stream, stream: %q, fields: object, positions_key: %q}}
    - name: lake
      type: iceberg
      batch: {max_records: 5000, linger: 50ms}
      config:
        catalog: {type: sql, uri: %q, warehouse: %q, name: lake}
        table: market.prices_lake
        schema: [{name: seq, type: long, required: true}, {name: commodity, type: string, required: true},
                 {name: price, type: double}, {name: ts, type: timestamptz}]
  delivery: exactly_once
  batch: {max_records: 200, linger: 1ms}
  buffer: {max_records: 12000}
`, inPath, dsn, pgTable, pgPos, addr, stream, redisPos, "sqlite:///"+db, wh)
	mPath := filepath.Join(dir, "eo.yaml")
	if err := os.WriteFile(mPath, []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	kills := killRuns(t, bin, dir, mPath, rng, 10, nil, func() string {
		return fmt.Sprintf("stream holds %s entries", cli("XLEN", stream))
	})

	// Postgres: every seq once.
	if got, want := psqlRun(t, dsn, fmt.Sprintf("SELECT count(*), count(DISTINCT seq), min(seq), max(seq) FROM %s", pgTable)), fmt.Sprintf("%d|%d|1|%d", n, n, n); got != want {
		t.Errorf("postgres: count, distinct, min, max of seq = %s; want %s after %d kills", got, want, kills)
	}
	if got, want := psqlRun(t, dsn, fmt.Sprintf(`SELECT "offset" FROM %s WHERE pipeline = 'eo-mixed' AND sink = 'pg'`, pgPos)), strconv.Itoa(inLen); got != want {
		t.Errorf("postgres: stored position %s; want %s (the end of the file)", got, want)
	}
	// Redis: every seq once, in order.
	if got := cli("XLEN", stream); got != strconv.Itoa(n) {
		t.Errorf("redis: XLEN = %s, want %d after %d kills", got, n, kills)
	}
	checkStreamSeqs(t, addr, stream, n)
	// Iceberg: every seq once, and the position of the latest commit.
	got, err := readIcebergTables(python, db, wh, "sluice.positions.eo-mixed", "market.prices_lake")
	if err != nil {
		t.Fatal(err)
	}
	tb := got["market.prices_lake"]
	if tb.Rows != n || tb.Distinct != n || tb.Min != 1 || tb.Max != n {
		t.Errorf("iceberg: rows %d, distinct seq %d, seq %d..%d; want %d, %d, 1..%d after %d kills", tb.Rows, tb.Distinct, tb.Min, tb.Max, n, n, n, kills)
	}
	if want := fmt.Sprintf(`[{"partition":%q,"offset":%d}]`, inPath, inLen); tb.Positions != want {
		t.Errorf("iceberg: positions in the latest snapshot %s; want %s (the end of the file)", tb.Positions, want)
	}
}
