package postgres_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

func TestAppendConvertsByDeclaredTypeIntegration(t *testing.T) {
	dsn := pgDSN(t)
	table := uniqueTable(t, dsn, "pgsink")
	s := openSink(t, map[string]any{"dsn": dsn, "table": table, "create_table": true,
		"columns": map[string]any{
			"id":        "bigint",
			"commodity": "text",
			"price":     "double precision",
			"amount":    "numeric(12,4)",
			"ts":        "timestamptz",
			"day":       map[string]any{"type": "date", "from": "ts"},
			"ok":        "boolean",
			"tags":      "jsonb",
			"uid":       "uuid",
			"venue":     map[string]any{"type": "varchar(16)", "from": "quote.venue"},
			"src_key":   map[string]any{"type": "text", "from": "@key"},
			"src_off":   map[string]any{"type": "bigint", "from": "@offset"},
			"src_time":  map[string]any{"type": "timestamptz", "from": "@time"},
			"trace":     map[string]any{"type": "text", "from": "@header.trace"},
		},
		"value_column": "payload",
	})
	ctx := testContext(t, time.Minute)
	at := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	batch := []connector.Record{
		{Key: []byte("k1"), Value: []byte(`{"id":1,"commodity":"gold","price":"2310.5","amount":12.3456,"ts":"2024-05-01T23:30:00-02:00","ok":true,"tags":["a",{"b":1}],"uid":"6ba7b810-9dad-11d1-80b4-00c04fd430c8","quote":{"venue":"LME"}}`),
			Time: at, Headers: []connector.Header{{Key: "trace", Value: []byte("t-1")}}, Position: connector.Position{Partition: "p", Offset: 7}},
		{Value: []byte(`{"id":2,"commodity":null,"ts":1714564800123}`), Position: connector.Position{Partition: "p", Offset: 8}},
	}
	if err := s.Write(ctx, batch); err != nil {
		t.Fatalf("Write: %v", err)
	}
	got := psql(t, dsn, fmt.Sprintf(`SELECT id, coalesce(commodity, 'NULL'), coalesce(price::text, 'NULL'), coalesce(amount::text, 'NULL'), ts AT TIME ZONE 'UTC', coalesce(day::text, 'NULL'),
		coalesce(ok::text, 'NULL'), coalesce(tags::text, 'NULL'), coalesce(uid::text, 'NULL'), coalesce(venue, 'NULL'), coalesce(src_key, 'NULL'), src_off,
		coalesce((src_time AT TIME ZONE 'UTC')::text, 'NULL'), coalesce(trace, 'NULL'), payload->>'id' FROM %s ORDER BY id`, pgx.Identifier{table}.Sanitize()))
	want := "1|gold|2310.5|12.3456|2024-05-02 01:30:00|2024-05-01|true|[\"a\", {\"b\": 1}]|6ba7b810-9dad-11d1-80b4-00c04fd430c8|LME|k1|7|2024-05-01 12:00:00|t-1|1\n" +
		"2|NULL|NULL|NULL|2024-05-01 12:00:00.123|2024-05-01|NULL|NULL|NULL|NULL|NULL|8|NULL|NULL|2"
	if got != want {
		t.Fatalf("rows:\n%s\nwant:\n%s", got, want)
	}
}

func TestSchemaQualifiedTableIntegration(t *testing.T) {
	dsn := pgDSN(t)
	schema := uniqueTable(t, dsn, "pgschema")
	t.Cleanup(func() { exec1(t, dsn, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE") })
	s := openSink(t, map[string]any{"dsn": dsn, "table": schema + ".Prices", "create_table": true, "columns": map[string]any{"commodity": "text"}})
	if err := s.Write(testContext(t, time.Minute), recs(`{"commodity":"gold"}`)); err != nil {
		t.Fatal(err)
	}
	if got := psql(t, dsn, fmt.Sprintf(`SELECT commodity FROM %s."Prices"`, pgx.Identifier{schema}.Sanitize())); got != "gold" {
		t.Fatalf("got %q", got)
	}
}

// 100,000 commodity records in engine-sized batches: psql counts every row, and the sums of the
// ids and prices match what was sent.
func TestHundredThousandRecordsIntegration(t *testing.T) {
	dsn := pgDSN(t)
	table := uniqueTable(t, dsn, "pgsink")
	s := openSink(t, map[string]any{"dsn": dsn, "table": table, "create_table": true,
		"columns": map[string]any{"id": "bigint", "commodity": "text", "price": "numeric(10,2)", "ts": "timestamptz"}})
	ctx := testContext(t, 5*time.Minute)
	const n, batch = 100_000, 4096
	var idSum int64
	var batchRecs []connector.Record
	for i := range n {
		batchRecs = append(batchRecs, commodityRecord(i))
		idSum += int64(i)
		if len(batchRecs) == batch || i == n-1 {
			if err := s.Write(ctx, batchRecs); err != nil {
				t.Fatalf("Write: %v", err)
			}
			batchRecs = batchRecs[:0]
		}
	}
	got := psql(t, dsn, fmt.Sprintf("SELECT count(*), count(DISTINCT id), sum(id), count(DISTINCT commodity) FROM %s", pgx.Identifier{table}.Sanitize()))
	if want := fmt.Sprintf("%d|%d|%d|5", n, n, idSum); got != want {
		t.Fatalf("psql: count, distinct ids, sum of ids, commodities = %s; want %s", got, want)
	}
}

// Rows the database refuses and values that do not convert go to the dead letters, each with
// its own reason; the other rows of the batch are written.
func TestRefusedRowsAreIsolatedIntegration(t *testing.T) {
	dsn := pgDSN(t)
	for _, mode := range []string{"append", "upsert"} {
		t.Run(mode, func(t *testing.T) {
			table := uniqueTable(t, dsn, "pgsink")
			exec1(t, dsn, fmt.Sprintf(`CREATE TABLE %s (id bigint PRIMARY KEY, commodity varchar(8) NOT NULL, price double precision CHECK (price > 0))`,
				pgx.Identifier{table}.Sanitize()))
			s := openSink(t, map[string]any{"dsn": dsn, "table": table, "mode": mode, "key": []any{"id"},
				"columns": map[string]any{"id": "bigint", "commodity": "text", "price": "double precision"}})
			ctx := testContext(t, time.Minute)
			var batch []connector.Record
			bad := map[int]string{
				3:   "violates check constraint",    // refused by the database (CHECK)
				10:  "not a number",                 // does not convert
				11:  "key column \"id\"",            // no key
				57:  "violates not-null constraint", // refused by the database (NOT NULL)
				58:  "value too long",               // refused by the database (varchar(8))
				99:  "value is not valid JSON",      // not JSON
				140: "violates check constraint",    // refused by the database (CHECK), last of its range
				199: "violates check constraint",    // the last row
			}
			for i := range 200 {
				v := fmt.Sprintf(`{"id":%d,"commodity":"c%d","price":%d}`, i, i%7, i+1)
				switch i {
				case 3, 140, 199:
					v = fmt.Sprintf(`{"id":%d,"commodity":"c","price":-1}`, i)
				case 10:
					v = fmt.Sprintf(`{"id":%d,"commodity":"c","price":"ten"}`, i)
				case 11:
					v = `{"commodity":"c","price":1}`
				case 57:
					v = fmt.Sprintf(`{"id":%d,"price":1}`, i)
				case 58:
					v = fmt.Sprintf(`{"id":%d,"commodity":"far too long","price":1}`, i)
				case 99:
					v = `{"id":99,`
				}
				batch = append(batch, rec(v))
			}
			err := s.Write(ctx, batch)
			var be *connector.BatchError
			if !errors.As(err, &be) {
				t.Fatalf("Write: %v; want a *connector.BatchError", err)
			}
			if len(be.Failed) != len(bad) {
				t.Errorf("%d records failed; want %d: %v", len(be.Failed), len(bad), be.Failed)
			}
			for _, f := range be.Failed {
				want, ok := bad[f.Index]
				if !ok || !strings.Contains(f.Err.Error(), want) {
					t.Errorf("record %d failed with %q; want a reason containing %q", f.Index, f.Err, want)
				}
			}
			got := psql(t, dsn, fmt.Sprintf("SELECT count(*), sum(id) FROM %s", pgx.Identifier{table}.Sanitize()))
			sum := 199 * 200 / 2
			for i := range bad {
				sum -= i
			}
			if want := fmt.Sprintf("%d|%d", 200-len(bad), sum); got != want {
				t.Fatalf("count, sum(id) = %s; want %s", got, want)
			}
		})
	}
}

// A batch of which every row is refused stores none and names all.
func TestEveryRowRefusedIntegration(t *testing.T) {
	dsn := pgDSN(t)
	table := uniqueTable(t, dsn, "pgsink")
	exec1(t, dsn, fmt.Sprintf(`CREATE TABLE %s (price double precision CHECK (price > 0))`, pgx.Identifier{table}.Sanitize()))
	s := openSink(t, map[string]any{"dsn": dsn, "table": table, "columns": map[string]any{"price": "double precision"}})
	var batch []connector.Record
	for range 33 {
		batch = append(batch, rec(`{"price":-1}`))
	}
	var be *connector.BatchError
	if err := s.Write(testContext(t, time.Minute), batch); !errors.As(err, &be) || len(be.Failed) != 33 {
		t.Fatalf("Write: %v; want all 33 records refused", err)
	}
	if got := psql(t, dsn, "SELECT count(*) FROM "+pgx.Identifier{table}.Sanitize()); got != "0" {
		t.Fatalf("%s rows stored", got)
	}
}

func TestUpsertIntegration(t *testing.T) {
	dsn := pgDSN(t)
	table := uniqueTable(t, dsn, "pgsink")
	s := openSink(t, map[string]any{"dsn": dsn, "table": table, "create_table": true, "mode": "upsert", "key": []any{"commodity", "day"},
		"columns": map[string]any{"commodity": "text", "day": "date", "price": "double precision", "n": "integer"}})
	ctx := testContext(t, time.Minute)
	// Within a batch the last record of a key wins; keys differ by either column.
	if err := s.Write(ctx, recs(
		`{"commodity":"gold","day":"2024-05-01","price":1,"n":1}`,
		`{"commodity":"gold","day":"2024-05-02","price":2,"n":1}`,
		`{"commodity":"gold","day":"2024-05-01","price":3,"n":2}`,
		`{"commodity":"oil","day":"2024-05-01","price":4,"n":1}`,
		`{"commodity":"gold","day":"2024-05-01","price":5,"n":3}`,
	)); err != nil {
		t.Fatal(err)
	}
	q := fmt.Sprintf("SELECT commodity, day, price, n FROM %s ORDER BY 1, 2", pgx.Identifier{table}.Sanitize())
	if got, want := psql(t, dsn, q), "gold|2024-05-01|5|3\ngold|2024-05-02|2|1\noil|2024-05-01|4|1"; got != want {
		t.Fatalf("after the first batch:\n%s\nwant\n%s", got, want)
	}
	// A later batch updates existing keys and inserts new ones; a missing field sets NULL.
	if err := s.Write(ctx, recs(`{"commodity":"oil","day":"2024-05-01","price":6}`, `{"commodity":"wheat","day":"2024-05-01","price":7,"n":1}`)); err != nil {
		t.Fatal(err)
	}
	if got, want := psql(t, dsn, q), "gold|2024-05-01|5|3\ngold|2024-05-02|2|1\noil|2024-05-01|6|\nwheat|2024-05-01|7|1"; got != want {
		t.Fatalf("after the second batch:\n%s\nwant\n%s", got, want)
	}
	// Writing the same batch again (a redelivery) changes nothing.
	if err := s.Write(ctx, recs(`{"commodity":"oil","day":"2024-05-01","price":6}`, `{"commodity":"wheat","day":"2024-05-01","price":7,"n":1}`)); err != nil {
		t.Fatal(err)
	}
	if got := psql(t, dsn, "SELECT count(*) FROM "+pgx.Identifier{table}.Sanitize()); got != "4" {
		t.Fatalf("count after a redelivery = %s; want 4", got)
	}
	// A batch too large for one INSERT goes through the staging table, with the same semantics.
	var batch []connector.Record
	for i := range 300 {
		batch = append(batch, rec(fmt.Sprintf(`{"commodity":"c%d","day":"2024-06-01","price":%d,"n":%d}`, i%10, i, i)))
	}
	if err := s.Write(ctx, batch); err != nil {
		t.Fatal(err)
	}
	got := psql(t, dsn, fmt.Sprintf("SELECT count(*), min(n), max(n), sum(price) FROM %s WHERE day = '2024-06-01'", pgx.Identifier{table}.Sanitize()))
	if want := fmt.Sprintf("10|290|299|%d", (290+299)*10/2); got != want {
		t.Fatalf("after a batch of 300 over 10 keys: count, min, max, sum = %s; want %s (the last record of each key)", got, want)
	}
}

// With only key columns, upsert inserts what is new and leaves the rest.
func TestUpsertKeyOnlyIntegration(t *testing.T) {
	dsn := pgDSN(t)
	table := uniqueTable(t, dsn, "pgsink")
	s := openSink(t, map[string]any{"dsn": dsn, "table": table, "create_table": true, "mode": "upsert", "key": []any{"id"}, "columns": map[string]any{"id": "uuid"}})
	ctx := testContext(t, time.Minute)
	for range 2 {
		if err := s.Write(ctx, recs(`{"id":"6ba7b810-9dad-11d1-80b4-00c04fd430c8"}`, `{"id":"6ba7b811-9dad-11d1-80b4-00c04fd430c8"}`, `{"id":"6ba7b810-9dad-11d1-80b4-00c04fd430c8"}`)); err != nil {
			t.Fatal(err)
		}
	}
	if got := psql(t, dsn, "SELECT count(*) FROM "+pgx.Identifier{table}.Sanitize()); got != "2" {
		t.Fatalf("count = %s; want 2", got)
	}
}

// The whole record as jsonb, with a key column beside it.
func TestValueColumnIntegration(t *testing.T) {
	dsn := pgDSN(t)
	table := uniqueTable(t, dsn, "pgsink")
	s := openSink(t, map[string]any{"dsn": dsn, "table": table, "create_table": true, "mode": "upsert", "key": []any{"id"},
		"columns": map[string]any{"id": map[string]any{"type": "text", "from": "@key"}}, "value_column": "doc"})
	ctx := testContext(t, time.Minute)
	err := s.Write(ctx, []connector.Record{
		{Key: []byte("a"), Value: []byte(`{"price": 1, "nested": {"x": [1, 2]}}`)},
		{Key: []byte("b"), Value: []byte(`not json`)},
		{Key: []byte("c"), Value: []byte(`[1, 2]`)},
	})
	var be *connector.BatchError
	if !errors.As(err, &be) || len(be.Failed) != 1 || be.Failed[0].Index != 1 || !strings.Contains(be.Failed[0].Err.Error(), "not JSON") {
		t.Fatalf("Write: %v; want record 1 refused as not JSON", err)
	}
	got := psql(t, dsn, fmt.Sprintf("SELECT id, doc FROM %s ORDER BY id", pgx.Identifier{table}.Sanitize()))
	if want := "a|{\"price\": 1, \"nested\": {\"x\": [1, 2]}}\nc|[1, 2]"; got != want {
		t.Fatalf("rows:\n%s\nwant\n%s", got, want)
	}
}
