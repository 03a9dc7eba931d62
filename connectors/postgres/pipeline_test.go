package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sluicehq/sluice/connectors/file"
	"github.com/sluicehq/sluice/connectors/generate"
	"github.com/sluicehq/sluice/connectors/postgres"
	"github.com/sluicehq/sluice/internal/checkpoint"
	"github.com/sluicehq/sluice/internal/engine"
	"github.com/sluicehq/sluice/runtime/catalog"
	"github.com/sluicehq/sluice/runtime/pipeline"
	"github.com/sluicehq/sluice/sdk/go/connector"
	"github.com/sluicehq/sluice/sdk/go/conntest"
)

func testCatalog(t *testing.T) *catalog.Catalog {
	t.Helper()
	c, err := catalog.New(append(file.Components(), generate.Component(), postgres.Component())...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// runPipeline runs p through the engine until it ends, with checkpoints under dir.
func runPipeline(t *testing.T, ctx context.Context, p *pipeline.Pipeline, dir string) error {
	t.Helper()
	store, err := checkpoint.Open(filepath.Join(dir, "checkpoints"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	e, err := engine.New(p, engine.Options{Catalog: testCatalog(t), Checkpoints: store, DataDir: dir})
	if err != nil {
		t.Fatalf("engine.New: %v", err)
	}
	return e.Run(ctx)
}

func pgComponent(t *testing.T, values map[string]any) pipeline.Component {
	t.Helper()
	return pipeline.Component{Type: "postgres", Config: conntest.Config(t, spec, values), Secrets: []string{values["dsn"].(string)}}
}

// The dead letters of a pipeline land in a Postgres table of the dead-letter layout: a row the
// sink cannot convert, and a line the file source cannot read.
func TestDeadLetterTableIntegration(t *testing.T) {
	dsn := pgDSN(t)
	table := uniqueTable(t, dsn, "pgmain")
	dlq := uniqueTable(t, dsn, "pgdlq")
	dir := t.TempDir()
	in := filepath.Join(dir, "in.jsonl")
	long := `{"commodity":"gold","price":1,"pad":"` + strings.Repeat("x", 200) + `"}`
	lines := []string{`{"commodity":"gold","price":1}`, `{"commodity":"oil","price":"n/a"}`, long, `{"commodity":"a\u0000b","price":3}`, `{"commodity":"wheat","price":2}`}
	if err := os.WriteFile(in, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &pipeline.Pipeline{
		Name:   "dlq-test",
		Source: pipeline.Component{Type: "file", Config: conntest.Config(t, file.Components()[0].Spec, map[string]any{"path": in, "max_line_bytes": int64(128)})},
		Sinks: []pipeline.Sink{{Name: "pg", Component: pgComponent(t, map[string]any{"dsn": dsn, "table": table, "create_table": true,
			"columns": map[string]any{"commodity": "text", "price": "double precision"}})}},
		DeadLetter: ptr(pgComponent(t, map[string]any{"dsn": dsn, "table": dlq, "create_table": true, "layout": "dead_letter"})),
	}
	if err := runPipeline(t, testContext(t, 2*time.Minute), p, dir); err != nil {
		t.Fatalf("run: %v", err)
	}
	if got := psql(t, dsn, fmt.Sprintf("SELECT string_agg(commodity, ',' ORDER BY price) FROM %s", pgx.Identifier{table}.Sanitize())); got != "gold,wheat" {
		t.Fatalf("main table holds %q; want gold,wheat", got)
	}
	got := psql(t, dsn, fmt.Sprintf(`SELECT pipeline, stage, kind, source_partition = %s, source_offset, coalesce(record_key, 'NULL'), headers::text,
		left(coalesce(value, 'NULL'), 40), coalesce(length(value_bytes)::text, 'NULL'), failed_at > now() - interval '1 hour', reason
		FROM %s ORDER BY source_offset`, quoteLiteral(in), pgx.Identifier{dlq}.Sanitize()))
	rows := strings.Split(got, "\n")
	var ends []int // the position of each line: the offset after it
	end := 0
	for _, l := range lines {
		end += len(l) + 1
		ends = append(ends, end)
	}
	offsets := ends[1:4]
	want := []string{
		fmt.Sprintf(`dlq-test|pg|sink_failed|t|%d|NULL|[]|{"commodity":"oil","price":"n/a"}|NULL|t|column "price" (double precision, from price): the string "n/a" is not a number`, offsets[0]),
		fmt.Sprintf(`dlq-test|source|malformed|t|%d|NULL|[]|{"commodity":"gold","price":1,"pad":"xxx|NULL|t|`, offsets[1]),
		fmt.Sprintf(`dlq-test|pg|sink_failed|t|%d|NULL|[]|{"commodity":"a\u0000b","price":3}|NULL|t|column "commodity" (text, from commodity): contains a NUL character, which Postgres text cannot hold`, offsets[2]),
	}
	if len(rows) != len(want) {
		t.Fatalf("dead-letter table:\n%s\nwant %d rows", got, len(want))
	}
	for i := range want {
		if !strings.HasPrefix(rows[i], want[i]) {
			t.Errorf("dead letter %d:\n%s\nwant (prefix)\n%s", i, rows[i], want[i])
		}
	}
}

func ptr[T any](v T) *T { return &v }

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// Dead-letter envelopes carrying binary values, keys and headers are stored without loss.
func TestDeadLetterLayoutBinaryIntegration(t *testing.T) {
	dsn := pgDSN(t)
	dlq := uniqueTable(t, dsn, "pgdlq")
	s := openSink(t, map[string]any{"dsn": dsn, "table": dlq, "create_table": true, "layout": "dead_letter"})
	at := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	env := engine.Envelope{Pipeline: "p", Stage: "validate", Kind: "rejected", Code: 7, Reason: "price below zero", Partition: "topic/3", Offset: 42,
		Key: "k", ValueBase64: "AAH/", Time: at, FailedAt: at.Add(time.Second)}
	value, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	ctx := testContext(t, time.Minute)
	err = s.Write(ctx, []connector.Record{
		{Value: value, Headers: []connector.Header{{Key: "trace", Value: []byte("abc")}, {Key: "bin", Value: []byte{0, 0xff}}}},
		{Value: []byte(`{"not":"an envelope"}`)},
	})
	if err == nil || !strings.Contains(err.Error(), "not a dead-letter envelope") {
		t.Fatalf("Write: %v; want the second record refused as not an envelope", err)
	}
	got := psql(t, dsn, fmt.Sprintf(`SELECT pipeline, stage, kind, code, reason, source_partition, source_offset, record_key, record_time AT TIME ZONE 'UTC',
		failed_at AT TIME ZONE 'UTC', headers::text, coalesce(value, 'NULL'), encode(value_bytes, 'hex') FROM %s`, pgx.Identifier{dlq}.Sanitize()))
	want := `p|validate|rejected|7|price below zero|topic/3|42|k|2024-05-01 12:00:00|2024-05-01 12:00:01|[{"key": "trace", "value": "abc"}, {"key": "bin", "value_base64": "AP8="}]|NULL|0001ff`
	if got != want {
		t.Fatalf("row:\n%s\nwant\n%s", got, want)
	}
}
