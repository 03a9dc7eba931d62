package iceberg_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	ice "github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/catalog/rest"
	sqlcat "github.com/apache/iceberg-go/catalog/sql"
	"github.com/apache/iceberg-go/table"
	"github.com/uptrace/bun/driver/sqliteshim"

	"github.com/sluicehq/sluice/connectors/iceberg"
	"github.com/sluicehq/sluice/sdk/go/connector"
	"github.com/sluicehq/sluice/sdk/go/conntest"
)

var spec = iceberg.Components()[0].Spec

// dest is one catalog the tests write to: the sink's catalog config, and how to read it back.
type dest struct {
	catalog map[string]any
	open    func(t *testing.T) catalog.Catalog
	// py is the catalog name and properties PyIceberg opens.
	pyName  string
	pyProps map[string]string
}

// sqliteDest is a fresh SQLite catalog with a local warehouse in a temporary directory.
func sqliteDest(t *testing.T) dest {
	dir := t.TempDir()
	db := filepath.Join(dir, "catalog.db")
	wh := "file://" + filepath.Join(dir, "warehouse")
	return dest{
		catalog: map[string]any{"type": "sql", "uri": "sqlite:///" + db, "warehouse": wh, "name": "lake"},
		open: func(t *testing.T) catalog.Catalog {
			cat, err := catalog.Load(ctx(t), "lake", ice.Properties{
				"type": "sql", "uri": "file:" + db, sqlcat.DriverKey: sqliteshim.ShimName, sqlcat.DialectKey: string(sqlcat.SQLite), "warehouse": wh,
			})
			if err != nil {
				t.Fatalf("open sqlite catalog: %v", err)
			}
			return cat
		},
		pyName:  "lake",
		pyProps: map[string]string{"type": "sql", "uri": "sqlite:///" + db, "warehouse": wh},
	}
}

// pgDest is a SQL catalog in the test services' Postgres (dsn, a postgres:// URL), under a
// catalog name of its own, with a local warehouse in a temporary directory.
func pgDest(t *testing.T, dsn string) dest {
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("lake_%d", time.Now().UnixNano())
	wh := "file://" + filepath.Join(t.TempDir(), "warehouse")
	pg := *u
	pg.Scheme = "postgresql"
	py := *u
	py.Scheme, py.RawQuery = "postgresql+psycopg2", ""
	return dest{
		catalog: map[string]any{"type": "sql", "uri": pg.String(), "warehouse": wh, "name": name},
		open: func(t *testing.T) catalog.Catalog {
			cat, err := catalog.Load(ctx(t), name, ice.Properties{
				"type": "sql", "uri": dsn, sqlcat.DriverKey: "pgx", sqlcat.DialectKey: string(sqlcat.Postgres), "warehouse": wh,
			})
			if err != nil {
				t.Fatalf("open postgres catalog: %v", err)
			}
			return cat
		},
		pyName:  name,
		pyProps: map[string]string{"type": "sql", "uri": py.String(), "warehouse": wh},
	}
}

// restDest is the REST catalog of the test services.
func restDest(t *testing.T, uri string) dest {
	return dest{
		catalog: map[string]any{"type": "rest", "uri": uri},
		open: func(t *testing.T) catalog.Catalog {
			cat, err := rest.NewCatalog(ctx(t), "rest", uri)
			if err != nil {
				t.Fatalf("open rest catalog: %v", err)
			}
			return cat
		},
		pyName:  "rest",
		pyProps: map[string]string{"type": "rest", "uri": uri},
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

var nameSeq int

// uniqueTable names a table no other test uses (the REST catalog is shared), and drops it when
// the test ends.
func uniqueTable(t *testing.T, d dest) string {
	nameSeq++
	base := strings.ToLower(strings.NewReplacer("/", "_", "-", "_", "=", "_").Replace(t.Name()))
	name := fmt.Sprintf("sluice_test.%s_%d_%d", base, time.Now().UnixNano()%1e9, nameSeq)
	t.Cleanup(func() {
		c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cat := d.open(t)
		ident := strings.Split(name, ".")
		if p, ok := cat.(interface {
			PurgeTable(context.Context, table.Identifier) error
		}); ok { // the REST catalog's files lie in the shared warehouse
			_ = p.PurgeTable(c, ident)
			return
		}
		_ = cat.DropTable(c, ident)
	})
	return name
}

func env(pipeline string) connector.Env {
	return connector.Env{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Pipeline: pipeline, Component: "lake"}
}

// newSink builds a sink through the spec, as a manifest would.
func newSink(t *testing.T, values map[string]any, e connector.Env) *iceberg.Sink {
	t.Helper()
	s, err := iceberg.NewSink(conntest.Config(t, spec, values), e)
	if err != nil {
		t.Fatalf("NewSink: %v", err)
	}
	return s
}

// openSink builds and opens a sink, closed at the end of the test.
func openSink(t *testing.T, values map[string]any, e connector.Env) *iceberg.Sink {
	t.Helper()
	s := newSink(t, values, e)
	if err := s.Open(ctx(t)); err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

// loadTable reads a table back through iceberg-go.
func loadTable(t *testing.T, d dest, name string) *table.Table {
	t.Helper()
	cat := d.open(t)
	tbl, err := cat.LoadTable(ctx(t), strings.Split(name, "."))
	if err != nil {
		t.Fatalf("load table %s: %v", name, err)
	}
	return tbl
}

// readRows reads every row of the table as one JSON object per row (Arrow's JSON form).
func readRows(t *testing.T, d dest, name string) []string {
	t.Helper()
	tbl := loadTable(t, d, name)
	_, recs, err := tbl.Scan().ToArrowRecords(ctx(t))
	if err != nil {
		t.Fatalf("scan %s: %v", name, err)
	}
	var out []string
	for rec, err := range recs {
		if err != nil {
			t.Fatalf("scan %s: %v", name, err)
		}
		var buf bytes.Buffer
		if err := array.RecordToJSON(rec, &buf); err != nil {
			t.Fatal(err)
		}
		rec.Release()
		sc := bufio.NewScanner(&buf)
		for sc.Scan() {
			out = append(out, sc.Text())
		}
	}
	return out
}

func newSinkFromConfig(cfg connector.Config) (connector.Sink, error) {
	return iceberg.NewSink(cfg, env("conformance"))
}

func newSinkErr(cfg connector.Config) (*iceberg.Sink, error) {
	return iceberg.NewSink(cfg, env("config"))
}

func specConfig(t *testing.T, values map[string]any) connector.Config {
	return conntest.Config(t, spec, values)
}

// commitProxy stands between the sink and the REST catalog and can break the next commit of a
// table: refuse it (nothing reaches the catalog) or lose its answer (the catalog commits, the
// sink sees an error).
type commitProxy struct {
	srv   *httptest.Server
	table string       // the table whose commits are broken
	mode  atomic.Int32 // proxyPass, proxyRefuse, proxyLoseAnswer; reset after one commit
	hits  atomic.Int32 // commits broken so far
}

const (
	proxyPass int32 = iota
	proxyRefuse
	proxyLoseAnswer
)

func newCommitProxy(t *testing.T, target string) *commitProxy {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &commitProxy{}
	rp := httputil.NewSingleHostReverseProxy(u)
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		commit := r.Method == http.MethodPost && p.table != "" && strings.HasSuffix(r.URL.Path, "/tables/"+p.table)
		if !commit {
			rp.ServeHTTP(w, r)
			return
		}
		switch p.mode.Swap(proxyPass) {
		case proxyRefuse:
			p.hits.Add(1)
			http.Error(w, `{"error":{"message":"broken by the test","type":"ServiceFailureException","code":500}}`, http.StatusInternalServerError)
		case proxyLoseAnswer:
			p.hits.Add(1)
			rec := httptest.NewRecorder()
			rp.ServeHTTP(rec, r)
			http.Error(w, `{"error":{"message":"answer lost by the test","type":"BadGatewayException","code":502}}`, http.StatusBadGateway)
		default:
			rp.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(p.srv.Close)
	return p
}
