package postgres_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sluicehq/sluice/connectors/postgres"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

func positionsOf(t *testing.T, s *postgres.Sink) []connector.Position {
	t.Helper()
	ps, err := s.StoredPositions(testContext(t, time.Minute))
	if err != nil {
		t.Fatalf("StoredPositions: %v", err)
	}
	return ps
}

func samePositions(a, b []connector.Position) bool {
	return slices.EqualFunc(a, b, func(x, y connector.Position) bool {
		return x.Partition == y.Partition && x.Offset == y.Offset && string(x.Cursor) == string(y.Cursor)
	})
}

// WriteTx stores rows and positions together; StoredPositions reads them back, per pipeline and
// sink; refused rows go to the dead letters while the others and the positions are stored.
func TestWriteTxStoresPositionsWithRowsIntegration(t *testing.T) {
	if !spec.ExactlyOnce {
		t.Fatal("the spec does not promise exactly-once")
	}
	dsn := pgDSN(t)
	table := uniqueTable(t, dsn, "pgeo")
	positions := uniqueTable(t, dsn, "pgpos")
	cfg := map[string]any{"dsn": dsn, "table": table, "create_table": true, "positions_table": positions,
		"columns": map[string]any{"id": "bigint", "commodity": "text", "price": "numeric(10,2)", "ts": "timestamptz"}}
	env := connector.Env{Pipeline: "prices", Component: "pg"}
	s := openSinkEnv(t, cfg, env)
	ctx := testContext(t, time.Minute)
	if err := s.CheckExactlyOnce(); err != nil {
		t.Fatalf("CheckExactlyOnce: %v", err)
	}
	if ps := positionsOf(t, s); len(ps) != 0 {
		t.Fatalf("a new sink has stored positions %v", ps)
	}
	var batch []connector.Record
	for i := range 100 {
		batch = append(batch, commodityRecord(i))
	}
	pos := []connector.Position{{Partition: "p", Offset: 99}, {Partition: "q", Offset: 7, Cursor: []byte("c-7")}}
	if err := s.WriteTx(ctx, batch, pos); err != nil {
		t.Fatalf("WriteTx: %v", err)
	}
	// A refused row: the rest and the positions are stored.
	batch = []connector.Record{commodityRecord(100), {Value: []byte(`{"id":101,"price":"x"}`), Position: connector.Position{Partition: "p", Offset: 101}}, commodityRecord(102)}
	pos = []connector.Position{{Partition: "p", Offset: 102}, {Partition: "q", Offset: 7, Cursor: []byte("c-7")}}
	var be *connector.BatchError
	if err := s.WriteTx(ctx, batch, pos); !errors.As(err, &be) || len(be.Failed) != 1 || be.Failed[0].Index != 1 {
		t.Fatalf("WriteTx with a bad record: %v; want record 1 refused", err)
	}
	// Positions alone move too.
	pos = []connector.Position{{Partition: "p", Offset: 102}, {Partition: "q", Offset: 9, Cursor: []byte("c-9")}}
	if err := s.WriteTx(ctx, nil, pos); err != nil {
		t.Fatalf("WriteTx without records: %v", err)
	}
	s.Close(ctx)

	s2 := openSinkEnv(t, cfg, env)
	if got := positionsOf(t, s2); !samePositions(got, pos) {
		t.Fatalf("stored positions %v; want %v", got, pos)
	}
	other := openSinkEnv(t, cfg, connector.Env{Pipeline: "prices", Component: "pg2"})
	if got := positionsOf(t, other); len(got) != 0 {
		t.Fatalf("another sink of the pipeline sees positions %v", got)
	}
	if got := psql(t, dsn, fmt.Sprintf("SELECT count(*), sum(id) FROM %s", pgx.Identifier{table}.Sanitize())); got != fmt.Sprintf("102|%d", 99*100/2+100+102) {
		t.Fatalf("count, sum(id) = %s", got)
	}
	got := psql(t, dsn, fmt.Sprintf(`SELECT pipeline, sink, partition, "offset", coalesce(convert_from(cursor, 'UTF8'), 'NULL') FROM %s ORDER BY partition`,
		pgx.Identifier{positions}.Sanitize()))
	if want := "prices|pg|p|102|NULL\nprices|pg|q|9|c-9"; got != want {
		t.Fatalf("positions table:\n%s\nwant\n%s", got, want)
	}
}

// When the transaction fails, neither the rows nor the positions are stored.
func TestWriteTxIsAtomicIntegration(t *testing.T) {
	dsn := pgDSN(t)
	table := uniqueTable(t, dsn, "pgeo")
	positions := uniqueTable(t, dsn, "pgpos")
	cfg := map[string]any{"dsn": dsn, "table": table, "create_table": true, "positions_table": positions, "columns": map[string]any{"id": "bigint"}}
	s := openSink(t, cfg)
	ctx := testContext(t, time.Minute)
	positionsOf(t, s) // creates the positions table
	fn := uniqueTable(t, dsn, "pgfn")
	exec1(t, dsn,
		fmt.Sprintf(`CREATE FUNCTION %s() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
			IF NEW.partition = 'boom' THEN RAISE EXCEPTION 'the positions table fails' USING ERRCODE = 'XX000'; END IF;
			RETURN NEW; END $$`, pgx.Identifier{fn}.Sanitize()),
		fmt.Sprintf(`CREATE TRIGGER boom BEFORE INSERT OR UPDATE ON %s FOR EACH ROW EXECUTE FUNCTION %s()`, pgx.Identifier{positions}.Sanitize(), pgx.Identifier{fn}.Sanitize()))
	t.Cleanup(func() { exec1(t, dsn, "DROP FUNCTION IF EXISTS "+pgx.Identifier{fn}.Sanitize()+" CASCADE") })
	if err := s.WriteTx(ctx, recs(`{"id":1}`, `{"id":2}`), []connector.Position{{Partition: "p", Offset: 2}}); err != nil {
		t.Fatal(err)
	}
	err := s.WriteTx(ctx, recs(`{"id":3}`, `{"id":4}`), []connector.Position{{Partition: "p", Offset: 4}, {Partition: "boom", Offset: 1}})
	var be *connector.BatchError
	if err == nil || errors.As(err, &be) || !strings.Contains(err.Error(), "the positions table fails") {
		t.Fatalf("WriteTx: %v; want the transaction to fail as a whole", err)
	}
	if got := psql(t, dsn, "SELECT string_agg(id::text, ',' ORDER BY id) FROM "+pgx.Identifier{table}.Sanitize()); got != "1,2" {
		t.Fatalf("rows %s; want 1,2: the failed transaction left rows", got)
	}
	if got := psql(t, dsn, `SELECT string_agg(partition || '@' || "offset", ',') FROM `+pgx.Identifier{positions}.Sanitize()); got != "p@2" {
		t.Fatalf("positions %s; want p@2", got)
	}
	// Retried without the failing partition, it goes through.
	if err := s.WriteTx(ctx, recs(`{"id":3}`, `{"id":4}`), []connector.Position{{Partition: "p", Offset: 4}}); err != nil {
		t.Fatal(err)
	}
	if got := psql(t, dsn, "SELECT string_agg(id::text, ',' ORDER BY id) FROM "+pgx.Identifier{table}.Sanitize()); got != "1,2,3,4" {
		t.Fatalf("rows %s; want 1,2,3,4", got)
	}
}

