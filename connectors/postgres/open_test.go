package postgres_test

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// Every configuration that cannot work fails Open with a message saying what is wrong, permanent
// when retrying cannot help; the DSN's password never shows.
func TestOpenRefusesWhatCannotWorkIntegration(t *testing.T) {
	dsn := pgDSN(t)
	cols := map[string]any{"id": "bigint", "price": "double precision"}
	withParam := func(param string) string {
		if strings.Contains(dsn, "?") {
			return dsn + "&" + param
		}
		return dsn + "?" + param
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := l.Addr().(*net.TCPAddr).Port
	l.Close()

	existing := uniqueTable(t, dsn, "pgopen")
	exec1(t, dsn, fmt.Sprintf("CREATE TABLE %s (id bigint, price numeric, note text NOT NULL, gen bigint GENERATED ALWAYS AS (id * 2) STORED)", pgx.Identifier{existing}.Sanitize()))
	view := uniqueTable(t, dsn, "pgview")
	exec1(t, dsn, fmt.Sprintf("CREATE VIEW %s AS SELECT 1::bigint AS id", pgx.Identifier{view}.Sanitize()))
	t.Cleanup(func() { exec1(t, dsn, "DROP VIEW IF EXISTS "+pgx.Identifier{view}.Sanitize()) })
	keyless := uniqueTable(t, dsn, "pgopen")
	exec1(t, dsn, fmt.Sprintf("CREATE TABLE %s (id bigint, price double precision)", pgx.Identifier{keyless}.Sanitize()))
	role := uniqueTable(t, dsn, "pgrole")
	exec1(t, dsn, "CREATE ROLE "+pgx.Identifier{role}.Sanitize()+" LOGIN")
	t.Cleanup(func() {
		exec1(t, dsn, "DROP OWNED BY "+pgx.Identifier{role}.Sanitize(), "DROP ROLE IF EXISTS "+pgx.Identifier{role}.Sanitize())
	})
	asRole := withParam("user=" + role)
	exec1(t, dsn, fmt.Sprintf("GRANT SELECT ON %s TO %s", pgx.Identifier{keyless}.Sanitize(), pgx.Identifier{role}.Sanitize()))

	for _, tc := range []struct {
		name      string
		cfg       map[string]any
		permanent bool
		want      string
	}{
		{"missing table", map[string]any{"dsn": dsn, "table": "no_such_table", "columns": cols}, true, "table no_such_table does not exist; create it, or set create_table: true"},
		{"missing schema", map[string]any{"dsn": dsn, "table": "no_such_schema.t", "columns": cols}, true, "table no_such_schema.t does not exist"},
		{"unknown database", map[string]any{"dsn": strings.Replace(dsn, "/postgres?", "/no_such_db?", 1), "table": existing, "columns": cols}, true, "no_such_db"},
		{"nobody listening", map[string]any{"dsn": fmt.Sprintf("postgres://postgres:secretpw@127.0.0.1:%d/postgres?sslmode=disable", closedPort), "table": existing, "columns": cols,
			"connect_timeout": 5 * time.Second}, false, "connect"},
		{"malformed keyword/value", map[string]any{"dsn": "host=127.0.0.1 password=secretpw port=notaport", "table": existing, "columns": cols}, true, "dsn: cannot parse"},
		{"read-only session", map[string]any{"dsn": withParam("options=-c%20default_transaction_read_only%3Don"), "table": existing, "columns": cols}, true, "read-only"},
		{"column missing", map[string]any{"dsn": dsn, "table": existing, "columns": map[string]any{"id": "bigint", "nope": "text", "note": "text"}}, true, `has no column "nope"`},
		{"type mismatch", map[string]any{"dsn": dsn, "table": existing, "columns": map[string]any{"id": "bigint", "price": "double precision", "note": "text"}}, true,
			`column "price" of public.` + existing + ` is numeric, but the configuration declares double precision`},
		{"not null left out", map[string]any{"dsn": dsn, "table": existing, "columns": map[string]any{"id": "bigint"}}, true, "NOT NULL column(s) note"},
		{"generated column", map[string]any{"dsn": dsn, "table": existing, "columns": map[string]any{"gen": "bigint", "note": "text"}}, true, "generated"},
		{"a view", map[string]any{"dsn": dsn, "table": view, "columns": map[string]any{"id": "bigint"}}, true, "is not a table"},
		{"upsert without unique index", map[string]any{"dsn": dsn, "table": keyless, "mode": "upsert", "key": []any{"id"}, "columns": cols}, true, "upsert needs a primary key or unique index on exactly (id)"},
		{"no insert grant", map[string]any{"dsn": asRole, "table": keyless, "columns": cols}, true, "may not insert into public." + keyless},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSink(t, tc.cfg)
			ctx := testContext(t, time.Minute)
			err := s.Open(ctx)
			defer s.Close(ctx)
			if err == nil {
				t.Fatal("Open succeeded; want an error")
			}
			t.Logf("%v", err)
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Open: %v; want it to say %q", err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "postgres sink: ") {
				t.Errorf("Open: %v; want it to name the postgres sink", err)
			}
			if got := errors.Is(err, connector.ErrPermanent); got != tc.permanent {
				t.Errorf("Open: %v: permanent = %v; want %v", err, got, tc.permanent)
			}
			if strings.Contains(err.Error(), "secretpw") {
				t.Errorf("Open: %v: shows the password", err)
			}
			if err := s.Close(ctx); err != nil {
				t.Errorf("Close after a failed Open: %v", err)
			}
		})
	}
}

// A wrong password and a missing role are permanent; a private server authenticates with
// passwords (the shared one trusts every local connection).
func TestOpenWrongPasswordIntegration(t *testing.T) {
	pg := startPrivatePG(t, "right-password")
	table := uniqueTable(t, pg.DSN, "pgauth")
	for _, tc := range []struct{ name, dsn, want string }{
		{"wrong password", strings.Replace(pg.DSN, "right-password", "wrong-password", 1), "password authentication failed"},
		{"unknown role", strings.Replace(pg.DSN, "postgres:right-password", "nobody:right-password", 1), "password authentication failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSink(t, map[string]any{"dsn": tc.dsn, "table": table, "create_table": true, "columns": map[string]any{"id": "bigint"}})
			ctx := testContext(t, time.Minute)
			err := s.Open(ctx)
			if err == nil || !errors.Is(err, connector.ErrPermanent) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open: %v; want a permanent error saying %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "-password") {
				t.Fatalf("Open: %v: shows the password", err)
			}
			s.Close(ctx)
		})
	}
	s := openSink(t, map[string]any{"dsn": pg.DSN, "table": table, "create_table": true, "columns": map[string]any{"id": "bigint"}})
	if err := s.Write(testContext(t, time.Minute), recs(`{"id":1}`)); err != nil {
		t.Fatalf("with the right password: %v", err)
	}
}

// A table dropped while the pipeline runs fails the write permanently.
func TestTableDroppedWhileRunningIntegration(t *testing.T) {
	dsn := pgDSN(t)
	table := uniqueTable(t, dsn, "pgdrop")
	s := openSink(t, map[string]any{"dsn": dsn, "table": table, "create_table": true, "columns": map[string]any{"id": "bigint"}})
	ctx := testContext(t, time.Minute)
	if err := s.Write(ctx, recs(`{"id":1}`)); err != nil {
		t.Fatal(err)
	}
	exec1(t, dsn, "DROP TABLE "+pgx.Identifier{table}.Sanitize())
	err := s.Write(ctx, recs(`{"id":2}`))
	if err == nil || !errors.Is(err, connector.ErrPermanent) || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("Write after the table was dropped: %v; want a permanent error saying it does not exist", err)
	}
}
