package main_test

import (
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/testenv"
)

// TestKill9ExactlyOncePostgresIntegration runs file → two postgres sinks (appending, so a
// duplicate would show; the second with a batch of its own, so the two commit at different
// points) with delivery: exactly_once, and kills `sluice run` with SIGKILL at ten random moments,
// restarting it each time, then lets a run finish. psql must then count every record exactly once
// in each table, and the positions table must hold the end of the file for each sink.
func TestKill9ExactlyOncePostgresIntegration(t *testing.T) {
	dsn := testenv.Require(t, "PG_DSN")
	bin := buildSluice(t)
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewSource(seed))
	t.Logf("seed %d", seed)
	// Sized so that ten kills at most 430ms into a run come before the end: the file source is held
	// to 50,000 lines/s (at most 215,000 lines in ten runs), however fast the machine.
	const n = 300_000
	dir := t.TempDir()
	inPath, inLen := writeCommodities(t, dir, n, 1)
	suffix := strconv.FormatInt(time.Now().UnixNano(), 36)
	a, b, pos := "eo_kill_a_"+suffix, "eo_kill_b_"+suffix, "eo_kill_pos_"+suffix
	t.Cleanup(func() { psqlRun(t, dsn, fmt.Sprintf("DROP TABLE IF EXISTS %s, %s, %s", a, b, pos)) })
	sink := func(name, table, batch string) string {
		return fmt.Sprintf(`    - {name: %s, type: postgres%s, config: {dsn: %q, table: %s, create_table: true, positions_table: %s,
        columns: {seq: bigint, commodity: text, price: double precision, ts: timestamptz}}}
`, name, batch, dsn, table, pos)
	}
	manifest := `apiVersion: sluice.dev/v1
kind: Pipeline
metadata: {name: eo-postgres}
spec:
  source: {type: file, config: {path: ` + strconv.Quote(inPath) + `, read_buffer: 16KiB, rate: 50000}}
  sinks:
` + sink("a", a, "") + sink("b", b, ", batch: {max_records: 1500, linger: 20ms}") + `  delivery: exactly_once
  batch: {max_records: 200, linger: 1ms}
  buffer: {max_records: 6000}
`
	mPath := filepath.Join(dir, "eo.yaml")
	if err := os.WriteFile(mPath, []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	count := func(table string) string { // the table may not be created yet
		out, err := exec.Command("psql", dsn, "-X", "-At", "-c", fmt.Sprintf("SELECT count(*), count(DISTINCT seq) FROM %s", table)).Output()
		if err != nil {
			return "no table"
		}
		return strings.TrimSpace(string(out))
	}
	kills := killRuns(t, bin, dir, mPath, rng, 10, nil, func() string {
		return fmt.Sprintf("a holds %s rows (count|distinct), b %s", count(a), count(b))
	})
	for _, table := range []string{a, b} {
		if got, want := psqlRun(t, dsn, fmt.Sprintf("SELECT count(*), count(DISTINCT seq), min(seq), max(seq) FROM %s", table)), fmt.Sprintf("%d|%d|1|%d", n, n, n); got != want {
			t.Errorf("%s: count, distinct, min, max of seq = %s; want %s: a record lost or stored twice after %d kills", table, got, want, kills)
		}
	}
	got := psqlRun(t, dsn, fmt.Sprintf(`SELECT string_agg(sink || '@' || "offset", ',' ORDER BY sink) FROM %s WHERE pipeline = 'eo-postgres'`, pos))
	if want := fmt.Sprintf("a@%d,b@%d", inLen, inLen); got != want {
		t.Errorf("stored positions %s; want %s (the end of the file for each sink)", got, want)
	}
}

// psqlRun runs a statement with psql and returns its unaligned output.
func psqlRun(t *testing.T, dsn, query string) string {
	t.Helper()
	out, err := exec.Command("psql", dsn, "-X", "-At", "-v", "ON_ERROR_STOP=1", "-c", query).CombinedOutput()
	if err != nil {
		t.Fatalf("psql -c %q: %v\n%s", query, err, out)
	}
	return strings.TrimSpace(string(out))
}
