package postgres_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
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

// sharedCfg configures a sink of the table every instance of a shared-positions test writes:
// id (the record's number), part and off (its position).
func sharedCfg(dsn, table, positions, mode string) map[string]any {
	return map[string]any{"dsn": dsn, "table": table, "positions_table": positions, "mode": mode, "key": []any{"id"},
		"columns": map[string]any{"id": "bigint", "part": map[string]any{"type": "text", "from": "@partition"}, "off": map[string]any{"type": "bigint", "from": "@offset"}}}
}

// sharedTable creates the table of sharedCfg. In append mode it has no unique index, so a record
// written twice shows as two rows; in upsert mode a trigger refuses the update of a row, so a
// record written twice fails its write.
func sharedTable(t *testing.T, dsn, mode string) string {
	table := uniqueTable(t, dsn, "pgshared")
	q := pgx.Identifier{table}.Sanitize()
	if mode == "append" {
		exec1(t, dsn, "CREATE TABLE "+q+" (id bigint NOT NULL, part text NOT NULL, off bigint NOT NULL)")
		return table
	}
	fn := pgx.Identifier{table + "_fn"}.Sanitize()
	exec1(t, dsn, "CREATE TABLE "+q+" (id bigint PRIMARY KEY, part text NOT NULL, off bigint NOT NULL)",
		"CREATE FUNCTION "+fn+"() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'record % written twice', OLD.id; END $$",
		"CREATE TRIGGER twice BEFORE UPDATE ON "+q+" FOR EACH ROW EXECUTE FUNCTION "+fn+"()")
	t.Cleanup(func() { exec1(t, dsn, "DROP FUNCTION IF EXISTS "+fn+" CASCADE") })
	return table
}

// sharedRecords returns the records of partition part (number k) at offsets [from, to), and
// the position of the last with its cursor.
func sharedRecords(k int, part string, from, to int64) ([]connector.Record, connector.Position) {
	var out []connector.Record
	for off := from; off < to; off++ {
		out = append(out, connector.Record{Value: fmt.Appendf(nil, `{"id":%d}`, int64(k)*1_000_000+off), Position: connector.Position{Partition: part, Offset: off}})
	}
	return out, connector.Position{Partition: part, Offset: to - 1, Cursor: fmt.Appendf(nil, "c-%d", to-1)}
}

// A sink whose view of the positions is stale (another process of the pipeline wrote since it
// read them) leaves out the records at or before what is stored and never moves a position
// back, in every write path: COPY, a small upsert, a large one through the staging table.
func TestSharedPositionsStaleWriterIntegration(t *testing.T) {
	dsn := pgDSN(t)
	for _, tc := range []struct {
		mode string
		n    int64 // records per write
	}{{"append", 20}, {"upsert", 20}, {"upsert", 200}} {
		t.Run(fmt.Sprintf("%s/%d", tc.mode, tc.n), func(t *testing.T) {
			ctx := testContext(t, time.Minute)
			table := sharedTable(t, dsn, tc.mode)
			positions := uniqueTable(t, dsn, "pgpos")
			cfg := sharedCfg(dsn, table, positions, tc.mode)
			env := connector.Env{Pipeline: "shared", Component: "pg"}
			a, stale := openSinkEnv(t, cfg, env), openSinkEnv(t, cfg, env)
			if !a.SharesPositions() {
				t.Fatal("SharesPositions is false")
			}
			positionsOf(t, a)
			if ps := positionsOf(t, stale); len(ps) != 0 {
				t.Fatalf("stored positions %v before any write", ps)
			}
			n := tc.n
			// a writes p 0..2n and q 0..n.
			p1, pp1 := sharedRecords(0, "p", 0, 2*n)
			q1, qp1 := sharedRecords(1, "q", 0, n)
			if err := a.WriteTx(ctx, slices.Concat(p1, q1), []connector.Position{pp1, qp1}); err != nil {
				t.Fatal(err)
			}
			// The stale sink writes p n..3n (its first n stored already), q 0..n/2 (all stored: q stays
			// at n-1 with its cursor) and r, with a record of p that does not convert, stored already.
			p2, pp2 := sharedRecords(0, "p", n, 3*n)
			q2, qp2 := sharedRecords(1, "q", 0, n/2)
			r2, rp2 := sharedRecords(2, "r", 0, 5)
			bad := connector.Record{Value: []byte(`{"id":"not a number"}`), Position: connector.Position{Partition: "p", Offset: n + 1}}
			if err := stale.WriteTx(ctx, slices.Concat(p2, []connector.Record{bad}, q2, r2), []connector.Position{pp2, qp2, rp2}); err != nil {
				t.Fatalf("WriteTx of a stale sink: %v (a record already stored must not be reported)", err)
			}
			// A record after what is stored that does not convert is still reported.
			bad.Position.Offset = 3 * n
			p3, pp3 := sharedRecords(0, "p", 3*n+1, 3*n+2)
			var be *connector.BatchError
			if err := a.WriteTx(ctx, append([]connector.Record{bad}, p3...), []connector.Position{pp3}); !errors.As(err, &be) || len(be.Failed) != 1 || be.Failed[0].Index != 0 {
				t.Fatalf("WriteTx with a new record that does not convert: %v; want it refused", err)
			}
			// Positions lower than stored, alone: nothing moves.
			if err := a.WriteTx(ctx, nil, []connector.Position{pp1, rp2}); err != nil {
				t.Fatal(err)
			}

			fresh := openSinkEnv(t, cfg, env)
			want := []connector.Position{pp3, qp1, rp2}
			if got := positionsOf(t, fresh); !samePositions(got, want) {
				t.Fatalf("stored positions %v; want %v", got, want)
			}
			q := pgx.Identifier{table}.Sanitize()
			got := psql(t, dsn, "SELECT part, count(*), count(DISTINCT off), min(off), max(off) FROM "+q+" GROUP BY part ORDER BY part")
			if want := fmt.Sprintf("p|%d|%[1]d|0|%d\nq|%d|%[3]d|0|%d\nr|5|5|0|4", 3*n+1, 3*n+1, n, n-1); got != want {
				t.Fatalf("rows per partition (count, distinct offsets, min, max):\n%s\nwant\n%s", got, want)
			}
		})
	}
}

// Three sinks of one pipeline, as three processes of a consumer group run them, write the same
// partitions at once in many small transactions: each writes every record of every partition,
// one of them starting over from the beginning when the others are half way (a process that
// just got the partitions and read old positions). Every record is stored once, and the stored
// positions are the last of each partition.
func TestSharedPositionsConcurrentWritersIntegration(t *testing.T) {
	dsn := pgDSN(t)
	for _, mode := range []string{"append", "upsert"} {
		t.Run(mode, func(t *testing.T) {
			ctx := testContext(t, 2*time.Minute)
			table := sharedTable(t, dsn, mode)
			positions := uniqueTable(t, dsn, "pgpos")
			cfg := sharedCfg(dsn, table, positions, mode)
			env := connector.Env{Pipeline: "group", Component: "pg"}
			parts := []string{"orders/0", "orders/1", "orders/2", "orders/3"}
			const n = 400
			sizes := []int64{10, 7, 100} // the last goes through the staging table in upsert mode
			sinks := make([]*postgres.Sink, len(sizes))
			for i := range sinks {
				sinks[i] = openSinkEnv(t, cfg, env)
				positionsOf(t, sinks[i])
			}
			var halfway sync.WaitGroup
			halfway.Add(len(sizes) - 1)
			errs := make(chan error, len(sizes))
			for i, s := range sinks {
				size := sizes[i]
				go func() {
					if i == len(sinks)-1 {
						halfway.Wait() // the laggard: a stale view, starting over
					}
					for from := int64(0); from < n; from += size {
						to := min(from+size, n)
						var batch []connector.Record
						var pos []connector.Position
						for k, part := range parts {
							rs, p := sharedRecords(k, part, from, to)
							batch, pos = append(batch, rs...), append(pos, p)
						}
						if err := s.WriteTx(ctx, batch, pos); err != nil {
							errs <- fmt.Errorf("sink %d, offsets %d..%d: %w", i, from, to, err)
							return
						}
						if i < len(sinks)-1 && from < n/2 && to >= n/2 {
							halfway.Done()
						}
					}
					errs <- nil
				}()
			}
			for range sinks {
				if err := <-errs; err != nil {
					t.Fatal(err)
				}
			}
			var want []connector.Position
			for k, part := range parts {
				_, p := sharedRecords(k, part, n-1, n)
				want = append(want, p)
			}
			if got := positionsOf(t, openSinkEnv(t, cfg, env)); !samePositions(got, want) {
				t.Fatalf("stored positions %v; want %v", got, want)
			}
			q := pgx.Identifier{table}.Sanitize()
			got := psql(t, dsn, "SELECT part, count(*), count(DISTINCT off), min(off), max(off) FROM "+q+" GROUP BY part ORDER BY part")
			var lines []string
			for _, part := range parts {
				lines = append(lines, fmt.Sprintf("%s|%d|%d|0|%d", part, n, n, n-1))
			}
			if want := strings.Join(lines, "\n"); got != want {
				t.Fatalf("rows per partition (count, distinct offsets, min, max):\n%s\nwant\n%s", got, want)
			}
		})
	}
}
