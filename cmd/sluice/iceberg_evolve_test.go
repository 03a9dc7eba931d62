package main_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/internal/testenv"
)

// TestIcebergEvolveFromFileIntegration runs file → iceberg with evolve: true and no schema, in
// exactly-once delivery: the producer's records gain fields half way through the file. PyIceberg
// must read every record once, the old rows with null in the new columns and the new rows with
// their values; a value that does not fit its inferred column is in the dead letters, naming it.
func TestIcebergEvolveFromFileIntegration(t *testing.T) {
	python := testenv.Require(t, "PYICEBERG_PYTHON")
	bin := buildSluice(t)
	dir := t.TempDir()
	const n = 4000
	var in bytes.Buffer
	for i := 1; i <= n; i++ {
		if i <= n/2 {
			fmt.Fprintf(&in, "{\"seq\":%d,\"commodity\":\"gold\"}\n", i)
		} else {
			fmt.Fprintf(&in, "{\"seq\":%d,\"commodity\":\"gold\",\"venue\":\"LME\",\"qty\":%d}\n", i, i)
		}
	}
	in.WriteString("{\"seq\":4001,\"qty\":\"many\"}\n")
	inPath, dlqPath := filepath.Join(dir, "in.jsonl"), filepath.Join(dir, "dlq.jsonl")
	if err := os.WriteFile(inPath, in.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	db, wh := filepath.Join(dir, "catalog.db"), "file://"+filepath.Join(dir, "warehouse")
	manifest := fmt.Sprintf(`apiVersion: sluice.dev/v1
kind: Pipeline
metadata: {name: evolve}
spec:
  source: {type: file, config: {path: %q}}
  sinks:
    - name: lake
      type: iceberg
      batch: {max_records: 1500, linger: 50ms}
      config:
        catalog: {type: sql, uri: %q, warehouse: %q, name: lake}
        table: market.prices
        evolve: true
  dead_letter: {type: file, config: {path: %q}, max_failure_ratio: 1}
  delivery: exactly_once
`, inPath, "sqlite:///"+db, wh, dlqPath)
	mPath := filepath.Join(dir, "evolve.yaml")
	if err := os.WriteFile(mPath, []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "validate", mPath).CombinedOutput(); err != nil {
		t.Fatalf("sluice validate: %v\n%s", err, out)
	}
	if out, err := exec.Command(bin, "run", "--data-dir", filepath.Join(dir, "data"), "--admin-addr", "", mPath).CombinedOutput(); err != nil {
		t.Fatalf("sluice run: %v\n%s", err, out)
	}

	const read = `
import json, sys
import pyarrow.compute as pc
from pyiceberg.catalog import load_catalog
t = load_catalog("lake", **json.loads(sys.argv[1])).load_table("market.prices")
rows = t.scan().to_arrow().sort_by("seq")
old, new = rows.slice(0, 2000), rows.slice(2000)
print(json.dumps({
    "schema": [f"{f.name} {f.field_type}" for f in t.schema().fields],
    "rows": rows.num_rows, "distinct": pc.count_distinct(rows["seq"]).as_py(),
    "old_null_venue": old["venue"].null_count, "old_null_qty": old["qty"].null_count,
    "new_venues": pc.unique(new["venue"]).to_pylist(), "new_qty_sum": pc.sum(new["qty"]).as_py(),
}))
`
	props, _ := json.Marshal(map[string]string{"type": "sql", "uri": "sqlite:///" + db, "warehouse": wh})
	out, err := exec.Command(python, "-c", read, string(props)).CombinedOutput()
	if err != nil {
		t.Fatalf("pyiceberg: %v\n%s", err, out)
	}
	var got struct {
		Schema       []string `json:"schema"`
		Rows         int      `json:"rows"`
		Distinct     int      `json:"distinct"`
		OldNullVenue int      `json:"old_null_venue"`
		OldNullQty   int      `json:"old_null_qty"`
		NewVenues    []string `json:"new_venues"`
		NewQtySum    int64    `json:"new_qty_sum"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("decode %s: %v", out, err)
	}
	if want := "seq long, commodity string, venue string, qty long"; strings.Join(got.Schema, ", ") != want {
		t.Errorf("schema %v; want %s", got.Schema, want)
	}
	wantSum := int64(0)
	for i := n/2 + 1; i <= n; i++ {
		wantSum += int64(i)
	}
	if got.Rows != n || got.Distinct != n || got.OldNullVenue != n/2 || got.OldNullQty != n/2 ||
		strings.Join(got.NewVenues, ",") != "LME" || got.NewQtySum != wantSum {
		t.Errorf("pyiceberg reads %+v; want %d distinct rows, the first %d with null venue and qty, the others LME and qty summing to %d", got, n, n/2, wantSum)
	}
	dlq, err := os.ReadFile(dlqPath)
	if err != nil || !strings.Contains(string(dlq), "column qty (long in the table, not declared in schema): want an integer, got a string") {
		t.Errorf("dead letters %s (%v); want the record with qty \"many\", naming column qty", dlq, err)
	}
}
