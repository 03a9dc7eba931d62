package servicetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/catalog/rest"
	sqlcat "github.com/apache/iceberg-go/catalog/sql"
	"github.com/apache/iceberg-go/table"
	"github.com/sluicehq/sluice/internal/testenv"
	_ "github.com/uptrace/bun/driver/sqliteshim" // registers the "sqliteshim" database/sql driver
)

const offsetsProp = "sluice.offsets"

// TestIcebergSQLSmokeIntegration writes a table with iceberg-go into a SQL catalog on SQLite and
// reads it back with PyIceberg from the same catalog.
func TestIcebergSQLSmokeIntegration(t *testing.T) {
	python := testenv.Require(t, "PYICEBERG_PYTHON")
	ctx := testContext(t, 2*time.Minute)
	dir := t.TempDir()
	const name = "sluice_smoke" // the catalog_name column: writer and reader must agree
	cat, err := catalog.Load(ctx, name, iceberg.Properties{
		"type":                "sql",
		"uri":                 "file:" + filepath.Join(dir, "catalog.db"),
		sqlcat.DriverKey:      "sqliteshim",
		sqlcat.DialectKey:     string(sqlcat.SQLite),
		"warehouse":           "file://" + filepath.Join(dir, "warehouse"),
		"init_catalog_tables": "true",
	})
	if err != nil {
		t.Fatalf("load sql catalog: %v", err)
	}
	writeAndVerify(ctx, t, cat, python, name, map[string]string{
		"type":      "sql",
		"uri":       "sqlite:///" + filepath.Join(dir, "catalog.db"),
		"warehouse": "file://" + filepath.Join(dir, "warehouse"),
	})
}

// TestIcebergRESTSmokeIntegration does the same through the Iceberg REST catalog test server.
func TestIcebergRESTSmokeIntegration(t *testing.T) {
	uri := testenv.Require(t, "ICEBERG_REST_URI")
	python := testenv.Require(t, "PYICEBERG_PYTHON")
	ctx := testContext(t, 2*time.Minute)
	cat, err := rest.NewCatalog(ctx, "rest", uri)
	if err != nil {
		t.Fatalf("connect rest catalog: %v", err)
	}
	writeAndVerify(ctx, t, cat, python, "rest", map[string]string{"type": "rest", "uri": uri})
}

type icebergRow struct {
	ID     int64   `json:"id"`
	Name   string  `json:"name"`
	Amount float64 `json:"amount"`
}

// writeAndVerify creates a namespace and table, appends rows in two commits (the second with a
// snapshot summary property), then asserts what PyIceberg reads.
func writeAndVerify(ctx context.Context, t *testing.T, cat catalog.Catalog, python, catName string, pyProps map[string]string) {
	t.Helper()
	ns := uniqueName(t, "ns")
	ident := catalog.ToIdentifier(ns, "events")
	if err := cat.CreateNamespace(ctx, catalog.ToIdentifier(ns), nil); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	sc := iceberg.NewSchemaWithIdentifiers(0, []int{1},
		iceberg.NestedField{ID: 1, Name: "id", Type: iceberg.PrimitiveTypes.Int64, Required: true},
		iceberg.NestedField{ID: 2, Name: "name", Type: iceberg.PrimitiveTypes.String},
		iceberg.NestedField{ID: 3, Name: "amount", Type: iceberg.PrimitiveTypes.Float64})
	tbl, err := cat.CreateTable(ctx, ident, sc)
	if err != nil {
		t.Fatalf("create table: %v", err)
	}
	t.Cleanup(func() {
		c := testContext(t, 30*time.Second)
		_ = cat.DropTable(c, ident)
		_ = cat.DropNamespace(c, catalog.ToIdentifier(ns))
	})

	want := []icebergRow{{1, "one", 1.5}, {2, "two", 2.5}, {3, "three", 3.5}}
	tbl = appendRows(ctx, t, tbl, want[:2], nil)
	tbl = appendRows(ctx, t, tbl, want[2:], iceberg.Properties{offsetsProp: `{"orders/0":3}`})
	if got := tbl.CurrentSnapshot().Summary.Properties[offsetsProp]; got != `{"orders/0":3}` {
		t.Fatalf("iceberg-go snapshot summary %s = %q", offsetsProp, got)
	}

	props, _ := json.Marshal(pyProps)
	cmd := exec.CommandContext(ctx, python, filepath.Join("testdata", "read_iceberg.py"), catName, string(props), ns+".events")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("pyiceberg read: %v\n%s", err, stderr.String())
	}
	var got struct {
		Rows      []icebergRow      `json:"rows"`
		Summary   map[string]string `json:"summary"`
		Snapshots int               `json:"snapshots"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("decode pyiceberg output %q: %v", out, err)
	}
	if !reflect.DeepEqual(got.Rows, want) {
		t.Errorf("pyiceberg rows = %+v, want %+v", got.Rows, want)
	}
	if got.Summary[offsetsProp] != `{"orders/0":3}` || got.Summary["operation"] != "append" {
		t.Errorf("pyiceberg summary = %v, want %s={\"orders/0\":3} and operation=append", got.Summary, offsetsProp)
	}
	if got.Snapshots != 2 {
		t.Errorf("pyiceberg sees %d snapshots, want 2", got.Snapshots)
	}
}

// appendRows commits rows as one append and returns the updated table.
func appendRows(ctx context.Context, t *testing.T, tbl *table.Table, rows []icebergRow, props iceberg.Properties) *table.Table {
	t.Helper()
	schema, err := table.SchemaToArrowSchema(tbl.Schema(), nil, false, false)
	if err != nil {
		t.Fatalf("arrow schema: %v", err)
	}
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	for _, r := range rows {
		b.Field(0).(*array.Int64Builder).Append(r.ID)
		b.Field(1).(*array.StringBuilder).Append(r.Name)
		b.Field(2).(*array.Float64Builder).Append(r.Amount)
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	rdr, err := array.NewRecordReader(schema, []arrow.RecordBatch{rec})
	if err != nil {
		t.Fatalf("record reader: %v", err)
	}
	defer rdr.Release()
	tx := tbl.NewTransaction()
	if err := tx.Append(ctx, rdr, props); err != nil {
		t.Fatalf("append: %v", err)
	}
	out, err := tx.Commit(ctx)
	if errors.Is(err, table.ErrCommitFailed) {
		t.Fatalf("commit conflicted: %v", err)
	}
	if err != nil {
		t.Fatalf("commit: %v", err)
	}
	return out
}
