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

// icebergCounts reads each table with PyIceberg: its row count, distinct, smallest and largest
// seq, and the positions of the latest snapshot carrying the sink's summary key.
const icebergCounts = `
import json, sys
import pyarrow.compute as pc
from pyiceberg.catalog import load_catalog
name, props, key = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
out = {}
for ident in sys.argv[4:]:
    t = load_catalog(name, **props).load_table(ident)
    seq = t.scan(selected_fields=("seq",)).to_arrow()["seq"]
    pos, snap = None, t.current_snapshot()
    while snap is not None and pos is None:
        props_ = snap.summary.additional_properties if snap.summary else {}
        pos = props_.get(key + "." + ident.split("_")[-1])
        snap = t.snapshot_by_id(snap.parent_snapshot_id) if snap.parent_snapshot_id else None
    out[ident] = {"rows": len(seq), "distinct": pc.count_distinct(seq).as_py(),
                  "min": pc.min(seq).as_py(), "max": pc.max(seq).as_py(), "positions": pos}
print(json.dumps(out))
`

// TestKill9ExactlyOnceIcebergIntegration runs file → two iceberg sinks (two tables of one SQLite
// catalog, committing every 5,000 and every 20,000 records) with delivery: exactly_once, and kills
// `sluice run` with SIGKILL at ten random moments, restarting it each time, then lets a run finish.
// PyIceberg must then read every record exactly once in each table, and the latest snapshot of
// each sink must hold the end of the file as its position.
func TestKill9ExactlyOnceIcebergIntegration(t *testing.T) {
	python := testenv.Require(t, "PYICEBERG_PYTHON")
	bin := buildSluice(t)
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewSource(seed))
	t.Logf("seed %d", seed)
	// The file source is held to 40,000 lines/s: a kill comes at most two commits of sink a
	// (10,000 lines) and 300ms (12,000) into a run, so ten kills never reach the end.
	const n = 300_000
	dir := t.TempDir()
	inPath, inLen := writeCommodities(t, dir, n, 1000)
	db, wh := filepath.Join(dir, "catalog.db"), "file://"+filepath.Join(dir, "warehouse")
	sink := func(name, batch string) string {
		return fmt.Sprintf(`    - name: %s
      type: iceberg%s
      config:
        catalog: {type: sql, uri: %q, warehouse: %q, name: lake}
        table: market.prices_%s
        schema: [{name: seq, type: long, required: true}, {name: commodity, type: string, required: true},
                 {name: price, type: double}, {name: ts, type: timestamptz}]
        partition: ["day(ts)", commodity]
`, name, batch, "sqlite:///"+db, wh, name)
	}
	manifest := `apiVersion: sluice.dev/v1
kind: Pipeline
metadata: {name: eo-iceberg}
spec:
  source: {type: file, config: {path: ` + strconv.Quote(inPath) + `, read_buffer: 64KiB, rate: 40000}}
  sinks:
` + sink("a", "\n      batch: {max_records: 5000, linger: 50ms}") + sink("b", "\n      batch: {max_records: 20000, linger: 200ms}") + `  delivery: exactly_once
  batch: {max_records: 5000, linger: 20ms}
  buffer: {max_records: 50000}
`
	mPath := filepath.Join(dir, "eo.yaml")
	if err := os.WriteFile(mPath, []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	// A kill lands after a random number (0 to 2) of sink a's commits in that run, plus up to
	// 300ms: progress, not time, so that the kills fall while the sinks write on an idle machine
	// and on a loaded one alike. Each commit leaves a manifest list (snap-*.avro) that stays.
	commits := func() int {
		m, _ := filepath.Glob(filepath.Join(dir, "warehouse", "*", "prices_a", "metadata", "snap-*.avro"))
		return len(m)
	}
	kills := killRuns(t, bin, dir, mPath, rng, 10, func(exited <-chan struct{}) <-chan string {
		kill := make(chan string, 1)
		wait, extra, before := rng.Intn(3), time.Duration(rng.Intn(300))*time.Millisecond, commits()
		go func() {
			deadline := time.Now().Add(2 * time.Minute)
			for commits() < before+wait && time.Now().Before(deadline) {
				select {
				case <-exited:
					return
				case <-time.After(10 * time.Millisecond):
				}
			}
			time.Sleep(extra)
			kill <- fmt.Sprintf("after %d commit(s) of sink a and %v", wait, extra)
		}()
		return kill
	}, nil)
	got, err := readIcebergTables(python, db, wh, "sluice.positions.eo-iceberg", "market.prices_a", "market.prices_b")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"market.prices_a", "market.prices_b"} {
		tb := got[name]
		if tb.Rows != n || tb.Distinct != n || tb.Min != 1 || tb.Max != n {
			t.Errorf("%s: rows %d, distinct seq %d, seq %d..%d; want %d, %d, 1..%d: a record lost or stored twice after %d kills",
				name, tb.Rows, tb.Distinct, tb.Min, tb.Max, n, n, n, kills)
		}
		if want := fmt.Sprintf(`[{"partition":%q,"offset":%d}]`, inPath, inLen); tb.Positions != want {
			t.Errorf("%s: positions in the latest snapshot %s; want %s (the end of the file)", name, tb.Positions, want)
		}
	}
}

// TestIcebergBadConfigNamesTheSink: a partition the schema cannot take is refused by validate at
// its manifest line; an unreachable catalog stops run with an error naming the sink and the
// catalog.
func TestIcebergBadConfigNamesTheSink(t *testing.T) {
	bin := buildSluice(t)
	dir := t.TempDir()
	manifest := func(partition string) string {
		p := filepath.Join(dir, "p.yaml")
		if err := os.WriteFile(p, []byte(`apiVersion: sluice.dev/v1
kind: Pipeline
metadata: {name: lake-down}
spec:
  source: {type: generate, config: {count: 10}}
  sinks:
    - name: lake
      type: iceberg
      config:
        catalog: {type: rest, uri: "http://127.0.0.1:1"}
        table: market.prices
        schema: [{name: seq, type: long}, {name: ts, type: timestamptz}]
        partition: [`+partition+`]
`), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	out, err := exec.Command(bin, "validate", manifest(`"day(seq)"`)).CombinedOutput()
	if want := `p.yaml:13:21: sink "lake": config.partition[0]: "day(seq)": transform day does not apply to column "seq" of type long`; err == nil || !strings.Contains(string(out), want) {
		t.Errorf("validate = %v\n%s\nwant an error with %q", err, out, want)
	}
	out, err = exec.Command(bin, "run", "--data-dir", filepath.Join(dir, "data"), "--admin-addr", "", manifest(`"day(ts)"`)).CombinedOutput()
	if want := `pipeline "lake-down": open sink "lake": iceberg sink: catalog http://127.0.0.1:1: `; err == nil || !strings.Contains(string(out), want) {
		t.Errorf("run = %v\n%s\nwant an error with %q", err, out, want)
	}
}
