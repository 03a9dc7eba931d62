package iceberg_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/internal/testenv"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

func values(format string, from, n int) []connector.Record {
	out := make([]connector.Record, n)
	for i := range out {
		out[i] = connector.Record{Value: fmt.Appendf(nil, format, from+i), Position: connector.Position{Partition: "p", Offset: int64(from + i)}}
	}
	return out
}

// failedIndexes returns the indexes of a *connector.BatchError's records and their reasons.
func failedIndexes(t *testing.T, err error) ([]int, []string) {
	t.Helper()
	var be *connector.BatchError
	if !errors.As(err, &be) {
		t.Fatalf("error = %v; want a *connector.BatchError", err)
	}
	var idx []int
	var why []string
	for _, f := range be.Failed {
		idx = append(idx, f.Index)
		why = append(why, f.Err.Error())
	}
	return idx, why
}

func TestEvolveFromRecordsSQLiteIntegration(t *testing.T) { testEvolveFromRecords(t, sqliteDest(t)) }

func TestEvolveFromRecordsRESTIntegration(t *testing.T) {
	testEvolveFromRecords(t, restDest(t, testenv.Require(t, "ICEBERG_REST_URI")))
}

// testEvolveFromRecords: with evolve, a producer whose records gain fields mid-stream gets a
// column per new field, typed from its values; PyIceberg reads the old rows with nulls there
// and the new rows with the values. A value that does not fit its column goes to the dead
// letters naming the column; a null alone adds nothing.
func testEvolveFromRecords(t *testing.T, d dest) {
	testenv.Require(t, "PYICEBERG_PYTHON")
	name := uniqueTable(t, d)
	cfg := map[string]any{"catalog": d.catalog, "table": name, "schema": []any{col("seq", "long", true)}, "evolve": true}
	s := openSink(t, cfg, env("evolve"))
	if err := s.Write(ctx(t), values(`{"seq":%d,"nothing":null}`, 0, 10)); err != nil {
		t.Fatalf("Write of the old records: %v", err)
	}
	// The new fields appear mid-batch: the first records of the write lack them.
	recs := slices.Concat(values(`{"seq":%d}`, 10, 2),
		values(`{"seq":%[1]d,"venue":"LME","qty":%[1]d,"ratio":0.5,"ok":true,"meta":{"a":[%[1]d]},"tags":["x"],"ts":"2026-12-01T00:00:00Z","price":%[1]d,"nothing":null}`, 12, 4),
		values(`{"seq":%[1]d,"venue":"CME","qty":-%[1]d,"ratio":2,"ok":false,"meta":{"a":"\u00e9"},"tags":[],"ts":"2026-12-02T00:00:00Z","price":%[1]d.5}`, 16, 4))
	if err := s.Write(ctx(t), recs); err != nil {
		t.Fatalf("Write of records with new fields: %v", err)
	}
	// Values that do not fit the inferred types, and a field first seen with a value after nulls.
	bad := values(`{"seq":%d,"qty":"many"}`, 20, 1)
	bad = append(bad, values(`{"seq":%d,"qty":1.5}`, 21, 1)...)
	bad = append(bad, values(`{"seq":%d,"ok":"yes","nothing":7}`, 22, 1)...)
	bad = append(bad, values(`{"seq":%d,"venue":7}`, 23, 1)...)
	bad = append(bad, values(`{"seq":%d,"meta":"plain text","nothing":8}`, 24, 1)...)
	idx, why := failedIndexes(t, s.Write(ctx(t), bad))
	if !slices.Equal(idx, []int{0, 1, 2, 3}) {
		t.Fatalf("refused records %v (%q); want 0..3", idx, why)
	}
	for i, want := range []string{"column qty (long in the table, not declared in schema): want an integer, got a string",
		"column qty (long in the table, not declared in schema): 1.5: not an integer",
		"column ok (boolean in the table, not declared in schema): want a boolean, got a string",
		"column venue (string in the table, not declared in schema): want a string, got a number"} {
		if !strings.Contains(why[i], want) {
			t.Errorf("record %d refused with %q; want %q", i, why[i], want)
		}
	}

	got := readWithPyIceberg(t, d, name, "seq")
	wantSchema := []pyColumn{{"seq", "long", true}, {"venue", "string", false}, {"qty", "long", false}, {"ratio", "double", false},
		{"ok", "boolean", false}, {"meta", "string", false}, {"tags", "string", false}, {"ts", "string", false}, {"price", "double", false},
		{"nothing", "long", false}}
	if fmt.Sprint(got.Schema) != fmt.Sprint(wantSchema) {
		t.Errorf("schema = %v\nwant     %v", got.Schema, wantSchema)
	}
	if len(got.Rows) != 21 {
		t.Fatalf("pyiceberg reads %d rows, want 21: %v", len(got.Rows), got.Rows)
	}
	for i, r := range got.Rows[:12] {
		for _, c := range []string{"venue", "qty", "ratio", "ok", "meta", "tags", "ts", "price", "nothing"} {
			if r[c] != nil {
				t.Errorf("old row %d: %s = %v, want null", i, c, r[c])
			}
		}
	}
	for i := 12; i < 20; i++ {
		r := got.Rows[i]
		want := map[string]any{"venue": "LME", "qty": fmt.Sprint(i), "ratio": "0.5", "ok": "true", "meta": fmt.Sprintf(`{"a":[%d]}`, i),
			"tags": `["x"]`, "ts": "2026-12-01T00:00:00Z", "price": fmt.Sprintf("%d.0", i), "nothing": "<nil>"}
		if i >= 16 {
			want = map[string]any{"venue": "CME", "qty": fmt.Sprint(-i), "ratio": "2.0", "ok": "false", "meta": `{"a":"\u00e9"}`,
				"tags": `[]`, "ts": "2026-12-02T00:00:00Z", "price": fmt.Sprintf("%d.5", i), "nothing": "<nil>"}
		}
		for c, w := range want {
			if g := fmt.Sprint(r[c]); g != w {
				t.Errorf("row %d: %s = %s, want %s", i, c, g, w)
			}
		}
	}
	if r := got.Rows[20]; fmt.Sprint(r["seq"]) != "24" || r["meta"] != "plain text" || fmt.Sprint(r["nothing"]) != "8" {
		t.Errorf("row 20 = %v", r)
	}
}

// TestEvolveOffIgnoresNewFields: without evolve, fields that are no column are ignored, as they
// always were, and the table keeps its schema.
func TestEvolveOffIgnoresNewFieldsIntegration(t *testing.T) {
	testenv.Require(t, "PYICEBERG_PYTHON")
	d := sqliteDest(t)
	name := uniqueTable(t, d)
	s := openSink(t, map[string]any{"catalog": d.catalog, "table": name, "schema": []any{col("seq", "long", true)}}, env("off"))
	if err := s.Write(ctx(t), values(`{"seq":%d,"extra":"x","n":1}`, 0, 3)); err != nil {
		t.Fatalf("Write: %v", err)
	}
	got := readWithPyIceberg(t, d, name, "seq")
	if want := []pyColumn{{"seq", "long", true}}; fmt.Sprint(got.Schema) != fmt.Sprint(want) || len(got.Rows) != 3 {
		t.Errorf("schema %v with %d rows; want %v with 3", got.Schema, len(got.Rows), want)
	}
}

func TestEvolveInferredTableSQLiteIntegration(t *testing.T) {
	testEvolveInferredTable(t, sqliteDest(t))
}

func TestEvolveInferredTableRESTIntegration(t *testing.T) {
	testEvolveInferredTable(t, restDest(t, testenv.Require(t, "ICEBERG_REST_URI")))
}

// testEvolveInferredTable: with evolve and no schema, the table is created without columns and
// takes them all from the records, in exactly-once writes whose commits add columns: the
// positions are stored with the rows, and a reopened sink resumes from them and writes the
// columns it finds in the table.
func testEvolveInferredTable(t *testing.T, d dest) {
	testenv.Require(t, "PYICEBERG_PYTHON")
	name := uniqueTable(t, d)
	cfg := map[string]any{"catalog": d.catalog, "table": name, "evolve": true}
	e := env("inferred")
	s := openSink(t, cfg, e)
	if stored, err := s.StoredPositions(ctx(t)); err != nil || len(stored) != 0 {
		t.Fatalf("StoredPositions = %v, %v; want none", stored, err)
	}
	// Only nulls: nothing to make a column of.
	idx, _ := failedIndexes(t, s.WriteTx(ctx(t), values(`{"a":null}`, 0, 1), []connector.Position{pos("p", 0)}))
	if !slices.Equal(idx, []int{0}) {
		t.Fatalf("a record of nulls into a table without columns: refused %v, want [0]", idx)
	}
	if err := s.WriteTx(ctx(t), values(`{"seq":%d,"name":"n"}`, 1, 5), []connector.Position{pos("p", 5)}); err != nil {
		t.Fatalf("WriteTx: %v", err)
	}
	if err := s.WriteTx(ctx(t), values(`{"seq":%d,"name":"n","more":true}`, 6, 5), []connector.Position{pos("p", 10)}); err != nil {
		t.Fatalf("WriteTx: %v", err)
	}
	_ = s.Close(ctx(t))

	again := openSink(t, cfg, e)
	stored, err := again.StoredPositions(ctx(t))
	if want := []connector.Position{pos("p", 10)}; err != nil || !slices.EqualFunc(stored, want, samePosition) {
		t.Fatalf("StoredPositions after reopening = %v, %v; want %v", stored, err, want)
	}
	// A retry of the last write stores nothing twice; the next records fill the columns found.
	if err := again.WriteTx(ctx(t), values(`{"seq":%d,"name":"n","more":true}`, 6, 7), []connector.Position{pos("p", 12)}); err != nil {
		t.Fatalf("WriteTx after reopening: %v", err)
	}
	got := readWithPyIceberg(t, d, name, "seq")
	want := []pyColumn{{"seq", "long", false}, {"name", "string", false}, {"more", "boolean", false}}
	if fmt.Sprint(got.Schema) != fmt.Sprint(want) {
		t.Errorf("schema = %v, want %v", got.Schema, want)
	}
	if len(got.Rows) != 12 {
		t.Fatalf("pyiceberg reads %d rows, want 12: %v", len(got.Rows), got.Rows)
	}
	for i, r := range got.Rows {
		if fmt.Sprint(r["seq"]) != fmt.Sprint(i+1) || (r["more"] == nil) != (i < 5) {
			t.Errorf("row %d = %v", i, r)
		}
	}
	var positions []string
	for _, sum := range got.Summaries {
		if v, ok := sum["sluice.positions.inferred.lake"]; ok {
			positions = append(positions, v)
		}
	}
	if len(positions) != 4 || !strings.Contains(positions[3], `"offset":12`) {
		t.Errorf("positions in the snapshots = %v; want 4 commits, the last at offset 12", positions)
	}
}

// TestEvolveConcurrentWriters: a writer whose view of the table is stale adds only the columns
// another writer has not added first, and writes its values into those; values that do not fit
// the type the other writer chose go to the dead letters.
func TestEvolveConcurrentWritersIntegration(t *testing.T) {
	testenv.Require(t, "PYICEBERG_PYTHON")
	d := restDest(t, testenv.Require(t, "ICEBERG_REST_URI"))
	name := uniqueTable(t, d)
	cfg := map[string]any{"catalog": d.catalog, "table": name, "schema": []any{col("seq", "long", true)}, "evolve": true}
	a := openSink(t, cfg, env("a"))
	b := openSink(t, cfg, env("b"))
	c := openSink(t, cfg, env("c"))
	if err := a.WriteTx(ctx(t), values(`{"seq":%[1]d,"x":%[1]d}`, 0, 3), []connector.Position{pos("a", 2)}); err != nil {
		t.Fatalf("a: %v", err)
	}
	if err := b.WriteTx(ctx(t), values(`{"seq":%[1]d,"x":%[1]d,"y":"b"}`, 10, 3), []connector.Position{pos("b", 12)}); err != nil {
		t.Fatalf("b after a added x: %v", err)
	}
	err := c.Write(ctx(t), slices.Concat(values(`{"seq":%d,"x":"text"}`, 20, 1), values(`{"seq":%d,"z":1}`, 21, 1)))
	idx, why := failedIndexes(t, err)
	if !slices.Equal(idx, []int{0}) || !strings.Contains(why[0], "column x (long in the table") {
		t.Fatalf("c refused %v %q; want record 0 for column x", idx, why)
	}
	got := readWithPyIceberg(t, d, name, "seq")
	want := []pyColumn{{"seq", "long", true}, {"x", "long", false}, {"y", "string", false}, {"z", "long", false}}
	if fmt.Sprint(got.Schema) != fmt.Sprint(want) {
		t.Errorf("schema = %v, want %v", got.Schema, want)
	}
	var rows []string
	for _, r := range got.Rows {
		rows = append(rows, fmt.Sprintf("%v/%v/%v/%v", r["seq"], r["x"], r["y"], r["z"]))
	}
	wantRows := []string{"0/0/<nil>/<nil>", "1/1/<nil>/<nil>", "2/2/<nil>/<nil>", "10/10/b/<nil>", "11/11/b/<nil>", "12/12/b/<nil>", "21/<nil>/<nil>/1"}
	if !slices.Equal(rows, wantRows) {
		t.Errorf("rows = %v\nwant   %v", rows, wantRows)
	}
}
