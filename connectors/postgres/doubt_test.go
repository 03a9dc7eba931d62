package postgres

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sluicehq/sluice/internal/testenv"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// A connection lost while a transaction commits leaves its outcome unknown. The next WriteTx
// (the runtime's retry) finds out from the stored positions: when the commit went through, the
// records it stored are skipped; when it did not, they are written.
func TestCommitWithoutAnswerIntegration(t *testing.T) {
	dsn := testenv.Require(t, "PG_DSN")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	table := "pgdoubt_" + strconv.FormatInt(time.Now().UnixNano(), 36)
	positions := table + "_pos"
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	t.Cleanup(func() {
		conn.Exec(context.Background(), "DROP TABLE IF EXISTS "+quote(table)+", "+quote(positions))
	})
	cfg, err := sinkSpec.Config(map[string]any{"dsn": dsn, "table": table, "create_table": true, "positions_table": positions, "columns": map[string]any{"id": "bigint"}})
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSink(cfg, connector.Env{Pipeline: "p", Component: "pg"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	if _, err := s.StoredPositions(ctx); err != nil {
		t.Fatal(err)
	}
	batch := func(from, to int) []connector.Record {
		var out []connector.Record
		for i := from; i < to; i++ {
			out = append(out, connector.Record{Value: fmt.Appendf(nil, `{"id":%d}`, i), Position: connector.Position{Partition: "p", Offset: int64(i)}})
		}
		return out
	}
	count := func() string {
		var n, sum int64
		if err := conn.QueryRow(ctx, "SELECT count(*), coalesce(sum(id), 0) FROM "+quote(table)).Scan(&n, &sum); err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("%d rows, sum %d", n, sum)
	}
	if err := s.WriteTx(ctx, batch(0, 10), []connector.Position{{Partition: "p", Offset: 9}}); err != nil {
		t.Fatal(err)
	}

	// The commit of records 10..19 went through, but its answer was lost with the connection.
	if err := s.WriteTx(ctx, batch(10, 20), []connector.Position{{Partition: "p", Offset: 19}}); err != nil {
		t.Fatal(err)
	}
	s.eo.last = map[string]connector.Position{"p": {Partition: "p", Offset: 9}}
	s.eo.doubt([]connector.Position{{Partition: "p", Offset: 19}})
	s.conn.Close(ctx)
	// The runtime retries the batch, coalesced with the next one.
	if err := s.WriteTx(ctx, batch(10, 30), []connector.Position{{Partition: "p", Offset: 29}}); err != nil {
		t.Fatal(err)
	}
	if got, want := count(), fmt.Sprintf("30 rows, sum %d", 29*30/2); got != want {
		t.Fatalf("after a commit that went through: %s; want %s (each record once)", got, want)
	}

	// The commit of records 30..39 did not go through.
	s.eo.doubt([]connector.Position{{Partition: "p", Offset: 39}})
	s.conn.Close(ctx)
	if err := s.WriteTx(ctx, batch(30, 40), []connector.Position{{Partition: "p", Offset: 39}}); err != nil {
		t.Fatal(err)
	}
	if got, want := count(), fmt.Sprintf("40 rows, sum %d", 39*40/2); got != want {
		t.Fatalf("after a commit that did not go through: %s; want %s", got, want)
	}
	var stored int64
	if err := conn.QueryRow(ctx, `SELECT "offset" FROM `+quote(positions)+" WHERE pipeline = 'p' AND sink = 'pg'").Scan(&stored); err != nil || stored != 39 {
		t.Fatalf("stored offset %d, %v; want 39", stored, err)
	}
}
