package postgres

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sluicehq/sluice/internal/testenv"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// answerCutter relays connections to a Postgres server. Once armed, it closes the client's
// connection in place of passing on the server's answer to a COMMIT: the transaction committed,
// the client never hears of it.
type answerCutter struct {
	l      net.Listener
	target string
	armed  atomic.Bool
	cuts   atomic.Int64
}

// startAnswerCutter relays to the server of dsn and returns the cutter and a DSN through it.
func startAnswerCutter(t *testing.T, dsn string) (*answerCutter, string) {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil || u.Host == "" {
		t.Fatalf("PG_DSN must be a postgres:// URL for this test (got one that does not parse as such: %v)", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &answerCutter{l: l, target: u.Host}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go p.relay(c)
		}
	}()
	u.Host = l.Addr().String()
	q := u.Query()
	q.Set("sslmode", "disable") // the relay reads the server's messages, so they must be plain
	u.RawQuery = q.Encode()
	return p, u.String()
}

func (p *answerCutter) relay(client net.Conn) {
	defer client.Close()
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer server.Close()
	go func() {
		_, _ = io.Copy(server, client)
		server.Close()
	}()
	r := bufio.NewReader(server)
	for {
		var head [5]byte
		if _, err := io.ReadFull(r, head[:]); err != nil {
			return
		}
		body := make([]byte, int(binary.BigEndian.Uint32(head[1:]))-4)
		if _, err := io.ReadFull(r, body); err != nil {
			return
		}
		if head[0] == 'C' && bytes.HasPrefix(body, []byte("COMMIT")) && p.armed.CompareAndSwap(true, false) {
			p.cuts.Add(1)
			return
		}
		if _, err := client.Write(append(head[:], body...)); err != nil {
			return
		}
	}
}

// A connection lost while a transaction commits leaves its outcome unknown to the sink. The next
// WriteTx (the runtime's retry) finds out from the positions it locks: when the commit went
// through, the records it stored are left out; when it did not, they are written.
func TestCommitWithoutAnswerIntegration(t *testing.T) {
	dsn := testenv.Require(t, "PG_DSN")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	table := "pgdoubt_" + strconv.FormatInt(time.Now().UnixNano(), 36)
	positions := table + "_pos"
	fn := table + "_fn"
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	t.Cleanup(func() {
		conn.Exec(context.Background(), "DROP TABLE IF EXISTS "+quote(table)+", "+quote(positions))
		conn.Exec(context.Background(), "DROP FUNCTION IF EXISTS "+quote(fn)+" CASCADE")
	})
	cutter, viaCutter := startAnswerCutter(t, dsn)
	cfg, err := sinkSpec.Config(map[string]any{"dsn": viaCutter + "&application_name=" + table, "table": table, "create_table": true,
		"positions_table": positions, "columns": map[string]any{"id": "bigint"}})
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

	// The commit of records 10..19 goes through, but its answer is lost with the connection.
	cutter.armed.Store(true)
	err = s.WriteTx(ctx, batch(10, 20), []connector.Position{{Partition: "p", Offset: 19}})
	if err == nil || errors.Is(err, connector.ErrPermanent) || cutter.cuts.Load() != 1 {
		t.Fatalf("WriteTx whose commit answer was cut: %v (cuts %d); want a retryable error", err, cutter.cuts.Load())
	}
	if got, want := count(), fmt.Sprintf("20 rows, sum %d", 19*20/2); got != want {
		t.Fatalf("after the commit whose answer was lost: %s; want %s (it committed)", got, want)
	}
	// The runtime retries the batch, coalesced with the next one.
	if err := s.WriteTx(ctx, batch(10, 30), []connector.Position{{Partition: "p", Offset: 29}}); err != nil {
		t.Fatal(err)
	}
	if got, want := count(), fmt.Sprintf("30 rows, sum %d", 29*30/2); got != want {
		t.Fatalf("after a commit that went through: %s; want %s (each record once)", got, want)
	}

	// The commit of records 30..39 does not go through: the server ends the session while the
	// commit runs a deferred trigger on the positions.
	for _, sql := range []string{
		`CREATE FUNCTION ` + quote(fn) + `() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
			IF NEW."offset" = 39 THEN PERFORM pg_sleep(300); END IF; RETURN NEW; END $$`,
		`CREATE CONSTRAINT TRIGGER slow_commit AFTER UPDATE ON ` + quote(positions) + ` DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ` + quote(fn) + `()`,
	} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan error, 1)
	go func() { done <- s.WriteTx(ctx, batch(30, 40), []connector.Position{{Partition: "p", Offset: 39}}) }()
	for terminated := false; !terminated; {
		if err := conn.QueryRow(ctx, `SELECT coalesce(bool_or(pg_terminate_backend(pid)), false) FROM pg_stat_activity
			WHERE application_name = $1 AND wait_event = 'PgSleep'`, table).Scan(&terminated); err != nil {
			t.Fatal(err)
		}
		if !terminated {
			select {
			case err := <-done:
				t.Fatalf("WriteTx returned %v before its commit was interrupted", err)
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	if err := <-done; err == nil || errors.Is(err, connector.ErrPermanent) {
		t.Fatalf("WriteTx whose session ended during the commit: %v; want a retryable error", err)
	}
	if _, err := conn.Exec(ctx, "DROP TRIGGER slow_commit ON "+quote(positions)); err != nil {
		t.Fatal(err)
	}
	if got, want := count(), fmt.Sprintf("30 rows, sum %d", 29*30/2); got != want {
		t.Fatalf("after a commit that did not go through: %s; want %s", got, want)
	}
	if err := s.WriteTx(ctx, batch(30, 40), []connector.Position{{Partition: "p", Offset: 39}}); err != nil {
		t.Fatal(err)
	}
	if got, want := count(), fmt.Sprintf("40 rows, sum %d", 39*40/2); got != want {
		t.Fatalf("after the retry of a commit that did not go through: %s; want %s", got, want)
	}
	var stored int64
	if err := conn.QueryRow(ctx, `SELECT "offset" FROM `+quote(positions)+" WHERE pipeline = 'p' AND sink = 'pg'").Scan(&stored); err != nil || stored != 39 {
		t.Fatalf("stored offset %d, %v; want 39", stored, err)
	}
}
