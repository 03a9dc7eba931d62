package iceberg_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

func col(name, typ string, required bool) map[string]any {
	return map[string]any{"name": name, "type": typ, "required": required}
}

func writeN(t *testing.T, s connector.Sink, from, n int, format string) {
	t.Helper()
	recs := make([]connector.Record, n)
	for i := range recs {
		recs[i] = connector.Record{Value: fmt.Appendf(nil, format, from+i)}
	}
	if err := s.Write(ctx(t), recs); err != nil {
		t.Fatalf("Write: %v", err)
	}
}

// TestSchemaEvolution: columns added to the manifest are added to the table, types widen and
// columns relax without rewriting data; narrowing and incompatible changes are refused naming the
// column. PyIceberg reads rows from before and after.
func TestSchemaEvolutionIntegration(t *testing.T) {
	d := sqliteDest(t)
	name := uniqueTable(t, d)
	v1 := []any{col("commodity", "string", true), col("price", "float", false), col("qty", "int", false), col("seq", "long", true)}
	s1 := openSink(t, map[string]any{"catalog": d.catalog, "table": name, "schema": v1}, env("evolve"))
	writeN(t, s1, 0, 10, `{"commodity":"gold","price":1.5,"qty":%[1]d,"seq":%[1]d}`)
	_ = s1.Close(ctx(t))

	v2 := []any{col("commodity", "string", false), col("price", "double", false), col("qty", "long", false),
		col("seq", "long", true), col("venue", "string", false), col("lot", "decimal(12,3)", false)}
	s2 := openSink(t, map[string]any{"catalog": d.catalog, "table": name, "schema": v2}, env("evolve"))
	writeN(t, s2, 10, 10, `{"price":2.25,"qty":%[1]d000000000,"seq":%[1]d,"venue":"LME","lot":"1.125"}`)
	_ = s2.Close(ctx(t))

	got := readWithPyIceberg(t, d, name, "seq")
	wantSchema := []pyColumn{{"commodity", "string", false}, {"price", "double", false}, {"qty", "long", false},
		{"seq", "long", true}, {"venue", "string", false}, {"lot", "decimal(12, 3)", false}}
	if fmt.Sprint(got.Schema) != fmt.Sprint(wantSchema) {
		t.Errorf("schema = %v, want %v", got.Schema, wantSchema)
	}
	if len(got.Rows) != 20 {
		t.Fatalf("pyiceberg reads %d rows, want 20", len(got.Rows))
	}
	for i, r := range got.Rows {
		old := i < 10
		if (r["venue"] == nil) != old || (r["commodity"] == nil) == old || (r["lot"] == nil) != old {
			t.Errorf("row %d = %v", i, r)
		}
		if !old && fmt.Sprint(r["qty"]) != fmt.Sprintf("%d000000000", i) {
			t.Errorf("row %d: qty = %v, want %d000000000", i, r["qty"], i)
		}
	}
	last := got.Summaries[len(got.Summaries)-1]
	if last["total-data-files"] != "2" || last["deleted-data-files"] != "" {
		t.Errorf("after evolution the table has data files %q (deleted %q); want 2, none rewritten", last["total-data-files"], last["deleted-data-files"])
	}

	for _, tc := range []struct {
		name   string
		schema []any
		want   string
	}{
		{"narrowing", replace(v2, col("qty", "int", false)), `column "qty" is long in the table`},
		{"incompatible", replace(v2, col("price", "string", false)), `column "price" is double in the table`},
		{"decimal scale", replace(v2, col("lot", "decimal(14,2)", false)), `column "lot" is decimal(12, 3) in the table`},
		{"optional to required", replace(v2, col("venue", "string", true)), `column "venue" is optional in the table`},
		{"new required", append(v2[:len(v2):len(v2)], col("exchange", "string", true)), `column "exchange" is new to the table`},
		{"required left out", v2[:3], `required column(s) seq that the manifest does not declare`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSink(t, map[string]any{"catalog": d.catalog, "table": name, "schema": tc.schema}, env("evolve"))
			defer s.Close(ctx(t))
			err := s.Open(ctx(t))
			t.Logf("Open: %v", err)
			var ce *connector.ConfigError
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.As(err, &ce) || ce.Field != "schema" || !errors.Is(err, connector.ErrPermanent) {
				t.Fatalf("Open = %v; want a permanent *connector.ConfigError on schema with %q", err, tc.want)
			}
		})
	}
	t.Run("partitioning", func(t *testing.T) {
		s := newSink(t, map[string]any{"catalog": d.catalog, "table": name, "schema": v2, "partition": []any{"commodity"}}, env("evolve"))
		defer s.Close(ctx(t))
		err := s.Open(ctx(t))
		if err == nil || !strings.Contains(err.Error(), "the table is partitioned by [], not by the declared [commodity]") {
			t.Fatalf("Open = %v; want a refusal of the partitioning", err)
		}
	})
}

// replace returns schema with the column of c's name replaced by c.
func replace(schema []any, c map[string]any) []any {
	out := make([]any, len(schema))
	for i, x := range schema {
		out[i] = x
		if x.(map[string]any)["name"] == c["name"] {
			out[i] = c
		}
	}
	return out
}

// TestBadConfig: what can be known without I/O is a *connector.ConfigError naming the field.
func TestBadConfig(t *testing.T) {
	good := func() map[string]any {
		return map[string]any{
			"catalog": map[string]any{"type": "sql", "uri": "sqlite:////tmp/x/catalog.db", "warehouse": "file:///tmp/x/wh"},
			"table":   "market.prices",
			"schema":  []any{col("commodity", "string", true), col("price", "double", true), col("ts", "timestamptz", false), col("id", "long", false)},
		}
	}
	for _, tc := range []struct {
		name  string
		edit  func(m map[string]any)
		field string
		msg   string
	}{
		{"table without namespace", func(m map[string]any) { m["table"] = "prices" }, "table", "not namespace.table"},
		{"unknown type", func(m map[string]any) { m["schema"] = []any{col("a", "varchar", false)} }, "schema[0].type", `unknown type "varchar"`},
		{"bad decimal", func(m map[string]any) { m["schema"] = []any{col("a", "decimal(40,2)", false)} }, "schema[0].type", "precision"},
		{"duplicate column", func(m map[string]any) { m["schema"] = []any{col("a", "int", false), col("a", "long", false)} }, "schema[1].name", "declared twice"},
		{"empty schema", func(m map[string]any) { m["schema"] = []any{} }, "schema", "at least one column"},
		{"bad from", func(m map[string]any) {
			m["schema"] = []any{map[string]any{"name": "a", "type": "int", "from": "x..y"}}
		}, "schema[0].from", "empty path segment"},
		{"partition on unknown column", func(m map[string]any) { m["partition"] = []any{"day(when)"} }, "partition[0]", `column "when" is not in schema`},
		{"day of a string", func(m map[string]any) { m["partition"] = []any{"day(commodity)"} }, "partition[0]", "does not apply"},
		{"bucket of a double", func(m map[string]any) { m["partition"] = []any{"bucket(16, price)"} }, "partition[0]", "does not apply"},
		{"unknown transform", func(m map[string]any) { m["partition"] = []any{"week(ts)"} }, "partition[0]", `unknown transform "week"`},
		{"bucket without width", func(m map[string]any) { m["partition"] = []any{"bucket(id)"} }, "partition[0]", "takes a number and a column"},
		{"repeated partition", func(m map[string]any) { m["partition"] = []any{"day(ts)", "day(ts)"} }, "partition[1]", "repeats"},
		{"sqlite without path", func(m map[string]any) { m["catalog"].(map[string]any)["uri"] = "sqlite://" }, "catalog.uri", "names no database file"},
		{"unknown sql scheme", func(m map[string]any) { m["catalog"].(map[string]any)["uri"] = "mysql://x@y/z" }, "catalog.uri", "not a sqlite:// or postgresql://"},
		{"sql without warehouse", func(m map[string]any) { delete(m["catalog"].(map[string]any), "warehouse") }, "catalog.warehouse", "required for a sql catalog"},
		{"object store warehouse", func(m map[string]any) { m["catalog"].(map[string]any)["warehouse"] = "s3://bucket/wh" }, "catalog.warehouse", "not an absolute file:// URL"},
		{"rest without http", func(m map[string]any) { m["catalog"] = map[string]any{"type": "rest", "uri": "localhost:8181"} }, "catalog.uri", "not an http(s) URL"},
		{"rest with both auths", func(m map[string]any) {
			m["catalog"] = map[string]any{"type": "rest", "uri": "http://localhost:8181", "credential": "a:b", "token": "t"}
		}, "catalog.token", "either credential or token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := good()
			tc.edit(m)
			cfg, err := spec.Config(m)
			if err == nil {
				_, err = newSinkErr(cfg)
			}
			var ce *connector.ConfigError
			if !errors.As(err, &ce) || ce.Field != tc.field || !strings.Contains(ce.Msg, tc.msg) {
				t.Fatalf("got %v; want a *connector.ConfigError on %s with %q", err, tc.field, tc.msg)
			}
		})
	}
	if _, err := newSinkErr(specConfig(t, good())); err != nil {
		t.Fatalf("the good config is refused: %v", err)
	}
}

// TestUnreachableCatalog: Open fails with an error naming the sink's catalog, and Close after it
// is fine.
func TestUnreachableCatalog(t *testing.T) {
	for _, tc := range []struct {
		name    string
		catalog map[string]any
		want    string
	}{
		{"rest", map[string]any{"type": "rest", "uri": "http://127.0.0.1:1"}, "iceberg sink: catalog http://127.0.0.1:1"},
		{"postgres", map[string]any{"type": "sql", "uri": "postgresql://sluice:secret@127.0.0.1:1/lake", "warehouse": "file://" + t.TempDir()}, "iceberg sink: catalog postgres://127.0.0.1:1/lake"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSink(t, map[string]any{"catalog": tc.catalog, "table": "market.prices", "schema": []any{col("a", "int", false)}}, env("down"))
			err := s.Open(ctx(t))
			t.Logf("Open: %v", err)
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "secret") {
				t.Errorf("Open = %v; want an error with %q and no password", err, tc.want)
			}
			if err := s.Close(ctx(t)); err != nil {
				t.Errorf("Close after a failed Open: %v", err)
			}
		})
	}
}
