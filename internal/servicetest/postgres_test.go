package servicetest

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sluicehq/sluice/internal/testenv"
)

func TestPostgresSmokeIntegration(t *testing.T) {
	dsn := testenv.Require(t, "PG_DSN")
	ctx := testContext(t, 30*time.Second)

	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	table := uniqueName(t, "smoke")
	if _, err := conn.Exec(ctx, "create table "+pgx.Identifier{table}.Sanitize()+" (id bigint primary key, name text not null)"); err != nil {
		t.Fatalf("create table: %v", err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(testContext(t, 10*time.Second), dsn)
		if err == nil {
			_, _ = c.Exec(testContext(t, 10*time.Second), "drop table if exists "+pgx.Identifier{table}.Sanitize())
			_ = c.Close(testContext(t, 10*time.Second))
		}
	})
	rows := [][]any{{int64(1), "one"}, {int64(2), "two"}, {int64(3), "three"}}
	n, err := conn.CopyFrom(ctx, pgx.Identifier{table}, []string{"id", "name"}, pgx.CopyFromRows(rows))
	if err != nil || n != 3 {
		t.Fatalf("copy 3 rows: n=%d err=%v", n, err)
	}
	var count int64
	var names string
	err = conn.QueryRow(ctx, "select count(*), string_agg(name, ',' order by id) from "+pgx.Identifier{table}.Sanitize()+
		" where id >= $1", 2).Scan(&count, &names)
	if err != nil {
		t.Fatalf("query: %v", err)
	}
	if count != 2 || names != "two,three" {
		t.Fatalf("query = %d %q, want 2 \"two,three\"", count, names)
	}
	var walLevel string
	if err := conn.QueryRow(ctx, "show wal_level").Scan(&walLevel); err != nil || walLevel != "logical" {
		t.Fatalf("wal_level = %q (err %v), want logical (change data capture tests need it)", walLevel, err)
	}
}
