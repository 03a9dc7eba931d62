package postgres_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

func numbered(format string, from, n int) []connector.Record {
	out := make([]connector.Record, n)
	for i := range out {
		out[i] = connector.Record{Value: fmt.Appendf(nil, format, from+i), Position: connector.Position{Partition: "p", Offset: int64(from + i)}}
	}
	return out
}

// refused returns the indexes and reasons of a *connector.BatchError's records.
func refused(t *testing.T, err error) ([]int, []string) {
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

// columnTypes lists the table's columns and their types, as information_schema has them.
func columnTypes(t *testing.T, dsn, table string) string {
	t.Helper()
	return psql(t, dsn, fmt.Sprintf(`SELECT string_agg(column_name || ' ' || data_type, ', ' ORDER BY ordinal_position)
		FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = '%s'`, table))
}

// TestEvolveAddsColumnsIntegration: with evolve, the records' new fields become columns typed
// from their values, mid-stream and mid-batch; the old rows hold NULL there. A value that does
// not convert to its column goes to the dead letters naming the column; a null alone adds
// nothing.
func TestEvolveAddsColumnsIntegration(t *testing.T) {
	dsn := pgDSN(t)
	table := uniqueTable(t, dsn, "evolve")
	s := openSink(t, map[string]any{"dsn": dsn, "table": table, "create_table": true, "evolve": true, "columns": map[string]any{"id": "bigint"}})
	ctx := testContext(t, time.Minute)
	if err := s.Write(ctx, numbered(`{"id":%d,"nothing":null}`, 0, 5)); err != nil {
		t.Fatalf("Write of the old records: %v", err)
	}
	batch := slices.Concat(numbered(`{"id":%d}`, 5, 2),
		numbered(`{"id":%[1]d,"venue":"LME","qty":%[1]d,"ratio":0.5,"ok":true,"meta":{"a":%[1]d},"tags":["x"],"ts":"2026-12-01T00:00:00Z","price":%[1]d,"nothing":null}`, 7, 2),
		numbered(`{"id":%[1]d,"venue":"CME","qty":-%[1]d,"ratio":2,"ok":false,"meta":{},"tags":[],"ts":"2026-12-02T00:00:00Z","price":%[1]d.5}`, 9, 2))
	if err := s.Write(ctx, batch); err != nil {
		t.Fatalf("Write of records with new fields: %v", err)
	}
	idx, why := refused(t, s.Write(ctx, slices.Concat(numbered(`{"id":%d,"qty":"many"}`, 11, 1), numbered(`{"id":%d,"qty":1.5}`, 12, 1),
		numbered(`{"id":%d,"meta":"text","nothing":7}`, 13, 1))))
	if !slices.Equal(idx, []int{0, 1}) || !strings.Contains(why[0], `column "qty" (bigint, from qty): the string "many" is not an integer`) ||
		!strings.Contains(why[1], `column "qty" (bigint, from qty)`) {
		t.Fatalf("refused %v %q; want records 0 and 1 for column qty", idx, why)
	}
	if got, want := columnTypes(t, dsn, table), "id bigint, venue text, qty bigint, ratio double precision, ok boolean, meta jsonb, tags jsonb, ts text, price double precision, nothing bigint"; got != want {
		t.Errorf("columns = %s\nwant      %s", got, want)
	}
	got := psql(t, dsn, fmt.Sprintf(`SELECT id, venue, qty, ratio, ok, meta, tags, ts, price, nothing FROM %q ORDER BY id`, table))
	want := strings.Join([]string{
		"0|||||||||", "1|||||||||", "2|||||||||", "3|||||||||", "4|||||||||", "5|||||||||", "6|||||||||",
		`7|LME|7|0.5|t|{"a": 7}|["x"]|2026-12-01T00:00:00Z|7|`, `8|LME|8|0.5|t|{"a": 8}|["x"]|2026-12-01T00:00:00Z|8|`,
		`9|CME|-9|2|f|{}|[]|2026-12-02T00:00:00Z|9.5|`, `10|CME|-10|2|f|{}|[]|2026-12-02T00:00:00Z|10.5|`,
		`13|||||"text"||||7`,
	}, "\n")
	if got != want {
		t.Errorf("rows:\n%s\nwant:\n%s", got, want)
	}
}

// TestEvolveOffIgnoresNewFieldsIntegration: without evolve, fields that are no column are
// ignored, as they always were.
func TestEvolveOffIgnoresNewFieldsIntegration(t *testing.T) {
	dsn := pgDSN(t)
	table := uniqueTable(t, dsn, "evolve")
	s := openSink(t, map[string]any{"dsn": dsn, "table": table, "create_table": true, "columns": map[string]any{"id": "bigint"}})
	if err := s.Write(testContext(t, time.Minute), numbered(`{"id":%d,"extra":"x"}`, 0, 3)); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if got := columnTypes(t, dsn, table); got != "id bigint" {
		t.Errorf("columns = %s; want id bigint", got)
	}
	if got := psql(t, dsn, fmt.Sprintf(`SELECT count(*) FROM %q`, table)); got != "3" {
		t.Errorf("%s rows; want 3", got)
	}
}

// TestEvolveUpsertExactlyOnceIntegration: in upsert mode with exactly-once writes, a batch that
// adds a column stores its rows and positions in one transaction; a restarted sink writes the
// column it finds in the table, and a column another process added first keeps its type.
func TestEvolveUpsertExactlyOnceIntegration(t *testing.T) {
	dsn := pgDSN(t)
	table := uniqueTable(t, dsn, "evolve")
	positions := uniqueTable(t, dsn, "evolve_pos")
	cfg := map[string]any{"dsn": dsn, "table": table, "create_table": true, "evolve": true, "mode": "upsert", "key": []any{"id"},
		"columns": map[string]any{"id": "bigint"}, "positions_table": positions}
	env := connector.Env{Pipeline: "evolve", Component: "pg"}
	ctx := testContext(t, 2*time.Minute)
	s := openSinkEnv(t, cfg, env)
	if _, err := s.StoredPositions(ctx); err != nil {
		t.Fatalf("StoredPositions: %v", err)
	}
	if err := s.WriteTx(ctx, numbered(`{"id":%d}`, 1, 3), []connector.Position{{Partition: "p", Offset: 3}}); err != nil {
		t.Fatalf("WriteTx: %v", err)
	}
	// Large enough to go through the staging table, which must gain the column too.
	big := append(numbered(`{"id":%d}`, 4, 100), connector.Record{Value: []byte(`{"id":2,"note":"second"}`), Position: connector.Position{Partition: "p", Offset: 104}})
	if err := s.WriteTx(ctx, big, []connector.Position{{Partition: "p", Offset: 104}}); err != nil {
		t.Fatalf("WriteTx adding a column: %v", err)
	}
	if err := s.WriteTx(ctx, []connector.Record{{Value: []byte(`{"id":1,"note":"first","rank":1}`), Position: connector.Position{Partition: "p", Offset: 105}}}, []connector.Position{{Partition: "p", Offset: 105}}); err != nil {
		t.Fatalf("small WriteTx adding a column: %v", err)
	}
	if got := psql(t, dsn, fmt.Sprintf(`SELECT "offset" FROM %q WHERE pipeline = 'evolve'`, positions)); got != "105" {
		t.Errorf("stored offset %s; want 105", got)
	}
	s.Close(ctx)

	// Another process adds a column as text; the restarted sink writes numbers into it as text.
	exec1(t, dsn, fmt.Sprintf(`ALTER TABLE %q ADD COLUMN code text`, table))
	again := openSinkEnv(t, cfg, env)
	stored, err := again.StoredPositions(ctx)
	if err != nil || len(stored) != 1 || stored[0].Offset != 105 {
		t.Fatalf("StoredPositions after restart = %v, %v; want offset 105", stored, err)
	}
	if err := again.WriteTx(ctx, numbered(`{"id":3,"note":"third","rank":3,"code":%d}`, 106, 1), []connector.Position{{Partition: "p", Offset: 106}}); err != nil {
		t.Fatalf("WriteTx after restart: %v", err)
	}
	// Another process adds a column while the sink is open: its ALTER does nothing, and the
	// sink writes the column with the type it finds.
	exec1(t, dsn, fmt.Sprintf(`ALTER TABLE %q ADD COLUMN label text`, table))
	if err := again.WriteTx(ctx, numbered(`{"id":4,"label":%d}`, 107, 1), []connector.Position{{Partition: "p", Offset: 107}}); err != nil {
		t.Fatalf("WriteTx of a column added meanwhile: %v", err)
	}
	if got, want := columnTypes(t, dsn, table), "id bigint, note text, rank bigint, code text, label text"; got != want {
		t.Errorf("columns = %s; want %s", got, want)
	}
	got := psql(t, dsn, fmt.Sprintf(`SELECT id, note, rank, code, label FROM %q WHERE id <= 5 ORDER BY id`, table))
	if want := "1|first|1||\n2|second|||\n3|third|3|106|\n4||||107\n5||||"; got != want {
		t.Errorf("rows:\n%s\nwant:\n%s", got, want)
	}
	if got := psql(t, dsn, fmt.Sprintf(`SELECT count(*) FROM %q`, table)); got != "103" {
		t.Errorf("%s rows; want 103", got)
	}
}

// TestEvolveWithoutColumnsIntegration: with evolve and no columns, the table is created empty and
// takes its columns from the records.
func TestEvolveWithoutColumnsIntegration(t *testing.T) {
	dsn := pgDSN(t)
	table := uniqueTable(t, dsn, "evolve")
	s := openSink(t, map[string]any{"dsn": dsn, "table": table, "create_table": true, "evolve": true})
	ctx := testContext(t, time.Minute)
	idx, _ := refused(t, s.Write(ctx, recs(`{"a":null}`)))
	if !slices.Equal(idx, []int{0}) {
		t.Fatalf("refused %v; want [0]", idx)
	}
	if err := s.Write(ctx, numbered(`{"n":%d,"name":"x"}`, 1, 2)); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if got, want := columnTypes(t, dsn, table), "n bigint, name text"; got != want {
		t.Errorf("columns = %s; want %s", got, want)
	}
	if got := psql(t, dsn, fmt.Sprintf(`SELECT n, name FROM %q ORDER BY n`, table)); got != "1|x\n2|x" {
		t.Errorf("rows = %q", got)
	}
}
