package iceberg_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/testenv"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

var commodities = []string{"gold", "silver", "copper", "wheat", "coffee"}

var commodityBase = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

// commodityRecord is record i of the commodity stream: five commodities, prices with cents,
// timestamps 2.5 s apart (100,000 records span three days).
func commodityRecord(i int) connector.Record {
	ts := commodityBase.Add(time.Duration(i) * 2500 * time.Millisecond)
	v := fmt.Appendf(nil, `{"commodity":%q,"price":%d.%02d,"ts":%q,"seq":%d,"source":"exchange-feed-%d"}`,
		commodities[i%len(commodities)], 100+i%2400, i%100, ts.Format("2006-01-02T15:04:05.000Z"), i, i%7)
	return connector.Record{Value: v, Position: connector.Position{Partition: "prices.jsonl", Offset: int64(i)}}
}

var commoditySchema = []any{
	map[string]any{"name": "commodity", "type": "string", "required": true},
	map[string]any{"name": "price", "type": "double", "required": true},
	map[string]any{"name": "ts", "type": "timestamptz"},
	map[string]any{"name": "seq", "type": "long", "required": true},
}

// pyTable is what testdata/read_table.py prints.
type pyTable struct {
	Rows          []map[string]any    `json:"rows"`
	Schema        []pyColumn          `json:"schema"`
	PartitionSpec []string            `json:"partition_spec"`
	Partitions    []pyPartition       `json:"partitions"`
	Summaries     []map[string]string `json:"summaries"`
}

type pyColumn struct {
	Name     string `json:"name"`
	Type     string `json:"type"`
	Required bool   `json:"required"`
}

type pyPartition struct {
	Partition map[string]any `json:"partition"`
	Records   int            `json:"records"`
}

// readWithPyIceberg reads the table with PyIceberg, an implementation independent of the writer.
func readWithPyIceberg(t *testing.T, d dest, name, sortBy string) pyTable {
	t.Helper()
	python := testenv.Require(t, "PYICEBERG_PYTHON")
	props, _ := json.Marshal(d.pyProps)
	cmd := exec.CommandContext(ctx(t), python, filepath.Join("testdata", "read_table.py"), d.pyName, string(props), name, sortBy)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("pyiceberg read of %s: %v\n%s", name, err, stderr.String())
	}
	var got pyTable
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.UseNumber()
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("decode pyiceberg output: %v", err)
	}
	return got
}

func TestCommodities100kSQLiteIntegration(t *testing.T) {
	testCommodities(t, sqliteDest(t))
}

// The SQL catalog on Postgres: written by the sink, read back by PyIceberg.
func TestCommodities100kPostgresCatalogIntegration(t *testing.T) {
	testCommodities(t, pgDest(t, testenv.Require(t, "PG_DSN")))
}

func TestCommodities100kRESTIntegration(t *testing.T) {
	testCommodities(t, restDest(t, testenv.Require(t, "ICEBERG_REST_URI")))
}

// testCommodities writes 100,000 commodity records in four exactly-once commits and checks with
// PyIceberg every row, the partitions and the positions in the snapshot summaries.
func testCommodities(t *testing.T, d dest) {
	testenv.Require(t, "PYICEBERG_PYTHON")
	const n, batch = 100_000, 25_000
	name := uniqueTable(t, d)
	cfg := map[string]any{"catalog": d.catalog, "table": name, "schema": commoditySchema, "partition": []any{"day(ts)", "commodity"}}
	e := env("prices")
	s := openSink(t, cfg, e)
	stored, err := s.StoredPositions(ctx(t))
	if err != nil || len(stored) != 0 {
		t.Fatalf("StoredPositions of a new table = %v, %v; want none", stored, err)
	}
	recs := make([]connector.Record, n)
	for i := range recs {
		recs[i] = commodityRecord(i)
	}
	for i := 0; i < n; i += batch {
		last := recs[i+batch-1].Position
		if err := s.WriteTx(ctx(t), recs[i:i+batch], []connector.Position{last}); err != nil {
			t.Fatalf("WriteTx of records %d..%d: %v", i, i+batch-1, err)
		}
	}
	if err := s.Close(ctx(t)); err != nil {
		t.Fatalf("Close: %v", err)
	}

	// A new sink of the same pipeline reads the positions back; another pipeline sees none.
	again := openSink(t, cfg, e)
	stored, err = again.StoredPositions(ctx(t))
	if want := []connector.Position{{Partition: "prices.jsonl", Offset: n - 1}}; err != nil || !slices.EqualFunc(stored, want, samePosition) {
		t.Errorf("StoredPositions after reopening = %v, %v; want %v", stored, err, want)
	}
	other := openSink(t, cfg, env("other-pipeline"))
	if stored, err := other.StoredPositions(ctx(t)); err != nil || len(stored) != 0 {
		t.Errorf("StoredPositions of another pipeline = %v, %v; want none", stored, err)
	}

	got := readWithPyIceberg(t, d, name, "seq")
	if len(got.Rows) != n {
		t.Fatalf("pyiceberg reads %d rows, want %d", len(got.Rows), n)
	}
	for i, row := range got.Rows {
		if err := checkCommodityRow(i, row); err != nil {
			t.Fatalf("row %d: %v", i, err)
		}
	}
	if want := []string{"day(ts)", "identity(commodity)"}; !slices.Equal(got.PartitionSpec, want) {
		t.Errorf("partition spec = %v, want %v", got.PartitionSpec, want)
	}
	checkPartitions(t, got.Partitions, n)
	key := "sluice.positions.prices.lake"
	var commits []string
	for _, s := range got.Summaries {
		if v, ok := s[key]; ok {
			commits = append(commits, v)
			if s["operation"] != "append" {
				t.Errorf("snapshot with positions %s has operation %q, want append", v, s["operation"])
			}
		}
	}
	want := []string{}
	for i := batch - 1; i < n; i += batch {
		want = append(want, fmt.Sprintf(`[{"partition":"prices.jsonl","offset":%d}]`, i))
	}
	if !slices.Equal(commits, want) {
		t.Errorf("summary %s of the snapshots = %v, want one per write: %v", key, commits, want)
	}
}

func samePosition(a, b connector.Position) bool {
	return a.Partition == b.Partition && a.Offset == b.Offset && bytes.Equal(a.Cursor, b.Cursor)
}

// checkCommodityRow compares a row PyIceberg read with commodity record i.
func checkCommodityRow(i int, row map[string]any) error {
	var want map[string]any
	if err := json.Unmarshal(commodityRecord(i).Value, &want); err != nil {
		return err
	}
	if row["commodity"] != want["commodity"] {
		return fmt.Errorf("commodity = %v, want %v", row["commodity"], want["commodity"])
	}
	if p, _ := row["price"].(json.Number).Float64(); p != want["price"].(float64) {
		return fmt.Errorf("price = %v, want %v", row["price"], want["price"])
	}
	if s, _ := row["seq"].(json.Number).Int64(); s != int64(i) {
		return fmt.Errorf("seq = %v, want %d", row["seq"], i)
	}
	ts, err := time.Parse("2006-01-02 15:04:05-07:00", fmt.Sprint(row["ts"]))
	wantTS, _ := time.Parse(time.RFC3339, want["ts"].(string))
	if err != nil || !ts.Equal(wantTS) {
		return fmt.Errorf("ts = %v (%v), want %v", row["ts"], err, wantTS)
	}
	if _, ok := row["source"]; ok {
		return fmt.Errorf("has a column source, which the schema does not declare")
	}
	return nil
}

// checkPartitions checks PyIceberg's partitions: one per day and commodity, with the right counts.
func checkPartitions(t *testing.T, parts []pyPartition, n int) {
	t.Helper()
	want := map[string]int{}
	for i := range n {
		r := commodityRecord(i)
		var v struct {
			Commodity string `json:"commodity"`
			TS        string `json:"ts"`
		}
		_ = json.Unmarshal(r.Value, &v)
		want[v.TS[:10]+"/"+v.Commodity]++
	}
	got := map[string]int{}
	for _, p := range parts {
		day := fmt.Sprint(p.Partition["ts_day"])
		got[day+"/"+fmt.Sprint(p.Partition["commodity"])] += p.Records
	}
	if len(got) != len(want) {
		t.Errorf("pyiceberg sees %d partitions %v, want %d", len(got), keysOf(got), len(want))
	}
	for k, c := range want {
		if got[k] != c {
			t.Errorf("partition %s holds %d records, want %d", k, got[k], c)
		}
	}
}

func keysOf(m map[string]int) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestBadRecords: records that do not fit the schema go to the dead letters, named with their
// column, and the others are committed.
func TestBadRecords(t *testing.T) {
	d := sqliteDest(t)
	name := uniqueTable(t, d)
	s := openSink(t, map[string]any{"catalog": d.catalog, "table": name, "schema": []any{
		map[string]any{"name": "commodity", "type": "string", "required": true},
		map[string]any{"name": "price", "type": "decimal(10,2)", "required": true},
		map[string]any{"name": "ts", "type": "timestamptz"},
		map[string]any{"name": "qty", "type": "int"},
		map[string]any{"name": "bid", "type": "double", "from": "quote.bid"},
	}}, env("bad"))
	values := []struct {
		value  string
		reason string // empty: the record fits
	}{
		{`{"commodity":"gold","price":12.5,"ts":"2026-12-01T10:00:00Z","qty":3,"quote":{"bid":12.25}}`, ""},
		{`{"commodity":"silver","price":"0.10"}`, ""},
		{`not json`, "not a JSON object"},
		{`{"price":1}`, "column commodity: required, but missing"},
		{`{"commodity":null,"price":1}`, "column commodity: required, but null"},
		{`{"commodity":7,"price":1}`, "column commodity: want a string, got a number"},
		{`{"commodity":"gold","price":1.234}`, "column price: \"1.234\" has more than 2 decimal places"},
		{`{"commodity":"gold","price":1,"ts":"yesterday"}`, "column ts: \"yesterday\": not a timestamp"},
		{`{"commodity":"gold","price":1,"qty":3000000000}`, "column qty: 3000000000: out of range for int"},
		{`{"commodity":"gold","price":1,"qty":1.5}`, "column qty: 1.5: not an integer for int"},
		{`{"commodity":"gold","price":1,"quote":{"bid":"high"}}`, "column bid: want a number, got a string"},
		{`{"commodity":"gold","price":1`, "invalid JSON"},
		{`{"commodity":"caf\u00e9","price":2,"extra":[1,{"a":"}"}]}`, ""},
	}
	recs := make([]connector.Record, len(values))
	for i, v := range values {
		recs[i] = connector.Record{Value: []byte(v.value)}
	}
	err := s.Write(ctx(t), recs)
	var be *connector.BatchError
	if !errors.As(err, &be) {
		t.Fatalf("Write = %v, want a *connector.BatchError", err)
	}
	failed := map[int]string{}
	for _, f := range be.Failed {
		failed[f.Index] = f.Err.Error()
	}
	for i, v := range values {
		msg, bad := failed[i]
		switch {
		case v.reason == "" && bad:
			t.Errorf("record %d (%s) refused: %s", i, v.value, msg)
		case v.reason != "" && !bad:
			t.Errorf("record %d (%s) accepted, want refused with %q", i, v.value, v.reason)
		case bad && !strings.Contains(msg, v.reason):
			t.Errorf("record %d (%s) refused with %q, want %q", i, v.value, msg, v.reason)
		}
	}
	rows := readRows(t, d, name)
	want := []string{
		`{"commodity":"gold","price":"12.5","ts":"2026-12-01T10:00:00Z","qty":3,"bid":12.25}`,
		`{"commodity":"silver","price":"0.1","ts":null,"qty":null,"bid":null}`,
		`{"commodity":"café","price":"2","ts":null,"qty":null,"bid":null}`,
	}
	if len(rows) != len(want) {
		t.Fatalf("table holds %v, want %v", rows, want)
	}
	for i := range want {
		if !jsonEqual(rows[i], want[i]) {
			t.Errorf("row %d = %s, want %s", i, rows[i], want[i])
		}
	}
}

func jsonEqual(a, b string) bool {
	var x, y any
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return false
	}
	return fmt.Sprint(x) == fmt.Sprint(y)
}
