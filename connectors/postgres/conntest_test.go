package postgres_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sluicehq/sluice/connectors/postgres"
	"github.com/sluicehq/sluice/sdk/go/connector"
	"github.com/sluicehq/sluice/sdk/go/conntest"
)

func TestConformanceSinkIntegration(t *testing.T) {
	dsn := pgDSN(t)
	for _, mode := range []string{"append", "upsert"} {
		t.Run(mode, func(t *testing.T) {
			conntest.TestSink(t, conntest.SinkHarness{
				Setup: func(t *testing.T) (conntest.SinkFactory, func(t *testing.T) []connector.Record) {
					table := uniqueTable(t, dsn, "pgconf")
					exec1(t, dsn, fmt.Sprintf("CREATE TABLE %s (n bigint PRIMARY KEY CHECK (n >= 0))", pgx.Identifier{table}.Sanitize()))
					cfg := conntest.Config(t, spec, map[string]any{"dsn": dsn, "table": table, "mode": mode, "key": []any{"n"}, "columns": map[string]any{"n": "bigint"}})
					return func() (connector.Sink, error) { return postgres.NewSink(cfg, connector.Env{}) },
						func(t *testing.T) []connector.Record { return readBackN(t, dsn, table) }
				},
				// Odd poisoned records are refused by the database (the CHECK), even ones do not
				// convert.
				Poison: func(i int) connector.Record {
					if i%2 == 1 {
						return connector.Record{Value: fmt.Appendf(nil, `{"n":%d}`, -i)}
					}
					return connector.Record{Value: []byte(`{"n":"many"}`)}
				},
				Broken: func(t *testing.T) (connector.Sink, error) {
					cfg := conntest.Config(t, spec, map[string]any{"dsn": dsn, "table": "no_such_table_anywhere", "columns": map[string]any{"n": "bigint"}})
					return postgres.NewSink(cfg, connector.Env{})
				},
			})
		})
	}
}

func readBackN(t *testing.T, dsn, table string) []connector.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("read back: %v", err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SELECT n FROM "+pgx.Identifier{table}.Sanitize())
	if err != nil {
		t.Fatalf("read back: %v", err)
	}
	var out []connector.Record
	for rows.Next() {
		var n int64
		if err := rows.Scan(&n); err != nil {
			t.Fatalf("read back: %v", err)
		}
		out = append(out, connector.Record{Value: conntest.Value(int(n))})
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("read back: %v", err)
	}
	return out
}

func TestConformanceTransactionalSinkIntegration(t *testing.T) {
	dsn := pgDSN(t)
	for _, mode := range []string{"append", "upsert"} {
		t.Run(mode, func(t *testing.T) {
			var positions string
			conntest.TestTransactionalSink(t, conntest.TransactionalSinkHarness{
				Setup: func(t *testing.T) (conntest.TxSinkFactory, func(t *testing.T) []connector.Record) {
					table := uniqueTable(t, dsn, "pgtx")
					positions = uniqueTable(t, dsn, "pgtxpos")
					exec1(t, dsn, fmt.Sprintf("CREATE TABLE %s (n bigint PRIMARY KEY CHECK (n >= 0))", pgx.Identifier{table}.Sanitize()))
					cfg := conntest.Config(t, spec, map[string]any{"dsn": dsn, "table": table, "mode": mode, "key": []any{"n"}, "positions_table": positions,
						"columns": map[string]any{"n": "bigint"}})
					return func(env connector.Env) (connector.TransactionalSink, error) { return postgres.NewSink(cfg, env) },
						func(t *testing.T) []connector.Record { return readBackN(t, dsn, table) }
				},
				Poison: func(i int) connector.Record { return connector.Record{Value: fmt.Appendf(nil, `{"n":%d}`, -i)} },
				Shared: true,
				// A trigger on the positions table fails the transaction after the rows went in.
				BreakCommit: func(t *testing.T) func() {
					fn := uniqueTable(t, dsn, "pgtxfn")
					exec1(t, dsn,
						fmt.Sprintf(`CREATE FUNCTION %s() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'broken on purpose' USING ERRCODE = 'XX000'; END $$`,
							pgx.Identifier{fn}.Sanitize()),
						fmt.Sprintf(`CREATE TRIGGER broken BEFORE INSERT OR UPDATE ON %s FOR EACH ROW EXECUTE FUNCTION %s()`, pgx.Identifier{positions}.Sanitize(), pgx.Identifier{fn}.Sanitize()))
					return func() { exec1(t, dsn, "DROP FUNCTION "+pgx.Identifier{fn}.Sanitize()+" CASCADE") }
				},
			})
		})
	}
}
