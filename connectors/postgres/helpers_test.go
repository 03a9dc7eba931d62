package postgres_test

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sluicehq/sluice/connectors/postgres"
	"github.com/sluicehq/sluice/internal/testenv"
	"github.com/sluicehq/sluice/sdk/go/connector"
	"github.com/sluicehq/sluice/sdk/go/conntest"
)

var spec = postgres.Component().Spec

// uniqueTable returns a table name no other test run uses, dropped when the test ends.
func uniqueTable(t *testing.T, dsn, prefix string) string {
	t.Helper()
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, strings.ToLower(t.Name()))
	if len(name) > 30 {
		name = name[len(name)-30:]
	}
	table := fmt.Sprintf("%s_%s_%s", prefix, name, strconv.FormatInt(time.Now().UnixNano(), 36))
	t.Cleanup(func() { exec1(t, dsn, "DROP TABLE IF EXISTS "+pgx.Identifier{table}.Sanitize()) })
	return table
}

func testContext(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// connect opens a connection of the test's own, closed when the test ends.
func connect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	ctx := testContext(t, 30*time.Second)
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// exec1 runs statements on a connection of its own.
func exec1(t *testing.T, dsn string, sql ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Errorf("connect: %v", err)
		return
	}
	defer conn.Close(ctx)
	for _, s := range sql {
		if _, err := conn.Exec(ctx, s); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
}

// psql runs a query with the psql client and returns its unaligned output: an independent
// reader of what the sink wrote.
func psql(t *testing.T, dsn, query string) string {
	t.Helper()
	out, err := exec.Command("psql", dsn, "-X", "-At", "-v", "ON_ERROR_STOP=1", "-c", query).CombinedOutput()
	if err != nil {
		t.Fatalf("psql -c %q: %v\n%s", query, err, out)
	}
	return strings.TrimSpace(string(out))
}

// newSink builds a sink through the spec, as a manifest would.
func newSink(t *testing.T, values map[string]any) *postgres.Sink {
	t.Helper()
	return newSinkEnv(t, values, connector.Env{Pipeline: "test", Component: "pg"})
}

func newSinkEnv(t *testing.T, values map[string]any, env connector.Env) *postgres.Sink {
	t.Helper()
	s, err := postgres.NewSink(conntest.Config(t, spec, values), env)
	if err != nil {
		t.Fatalf("NewSink: %v", err)
	}
	return s
}

// openSink builds and opens a sink, closed when the test ends.
func openSink(t *testing.T, values map[string]any) *postgres.Sink {
	t.Helper()
	return openSinkEnv(t, values, connector.Env{Pipeline: "test", Component: "pg"})
}

func openSinkEnv(t *testing.T, values map[string]any, env connector.Env) *postgres.Sink {
	t.Helper()
	s := newSinkEnv(t, values, env)
	ctx := testContext(t, 60*time.Second)
	if err := s.Open(ctx); err != nil {
		s.Close(ctx)
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

func rec(value string) connector.Record { return connector.Record{Value: []byte(value)} }

func recs(values ...string) []connector.Record {
	out := make([]connector.Record, len(values))
	for i, v := range values {
		out[i] = rec(v)
	}
	return out
}

// commodityRecord is record i of the commodity stream the tests write.
func commodityRecord(i int) connector.Record {
	commodities := []string{"gold", "silver", "copper", "oil", "wheat"}
	v := fmt.Sprintf(`{"id":%d,"commodity":%q,"price":%d.%02d,"ts":"2024-05-01T12:%02d:%02d.%03dZ"}`,
		i, commodities[i%len(commodities)], 10+i%90, i%100, (i/60)%60, i%60, i%1000)
	return connector.Record{Value: []byte(v), Position: connector.Position{Partition: "p", Offset: int64(i)}}
}

func pgDSN(t *testing.T) string { return testenv.Require(t, "PG_DSN") }
