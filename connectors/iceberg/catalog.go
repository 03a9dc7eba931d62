package iceberg

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	ice "github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/catalog"
	"github.com/apache/iceberg-go/catalog/rest"
	sqlcat "github.com/apache/iceberg-go/catalog/sql"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver for Postgres catalogs
	"github.com/uptrace/bun/driver/sqliteshim"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

// catalogConfig is the catalog field.
type catalogConfig struct {
	Type       string            `config:"type"`
	URI        string            `config:"uri"`
	Warehouse  string            `config:"warehouse"`
	Name       string            `config:"name"`
	Credential string            `config:"credential"`
	Token      string            `config:"token"`
	Properties map[string]string `config:"properties"`
}

// catalogPlan is how Open reaches the catalog, worked out without I/O by checkCatalog.
type catalogPlan struct {
	typ            string
	name           string
	props          ice.Properties // sql: the iceberg-go catalog properties
	sqlitePath     string         // sql on SQLite: the database file, whose directory Open creates
	localWarehouse string         // a file:// warehouse, whose directory Open creates
	restURI        string
	restOpts       []rest.Option
	display        string // the catalog as errors name it, without secrets
}

// checkCatalog validates the catalog field and prepares what Open needs.
func checkCatalog(c catalogConfig) (catalogPlan, error) {
	p := catalogPlan{typ: c.Type, name: c.Name}
	if p.name == "" {
		return p, &connector.ConfigError{Field: "catalog.name", Msg: "must not be empty"}
	}
	if c.Warehouse != "" {
		// Only the local file IO is compiled in; object stores would need iceberg-go's gocloud IO.
		u, err := url.Parse(c.Warehouse)
		if err != nil || u.Scheme != "file" || !filepath.IsAbs(u.Path) {
			return p, &connector.ConfigError{Field: "catalog.warehouse", Msg: fmt.Sprintf("%q is not an absolute file:// URL", c.Warehouse),
				Hint: "file:///var/lib/sluice/warehouse (the local file system is the only storage this build writes to)"}
		}
		p.localWarehouse = u.Path
	}
	switch c.Type {
	case "sql":
		if c.URI == "" {
			return p, &connector.ConfigError{Field: "catalog.uri", Msg: "is required for a sql catalog", Hint: "sqlite:///relative/catalog.db, sqlite:////absolute/catalog.db or postgresql://user@host/db"}
		}
		if c.Warehouse == "" {
			return p, &connector.ConfigError{Field: "catalog.warehouse", Msg: "is required for a sql catalog", Hint: "where data and metadata files go, e.g. file:///var/lib/sluice/warehouse"}
		}
		if c.Credential != "" || c.Token != "" {
			return p, &connector.ConfigError{Field: "catalog.credential", Msg: "applies to rest catalogs only; a sql catalog's credentials go in its uri"}
		}
		props := ice.Properties{"type": "sql", "warehouse": c.Warehouse, "init_catalog_tables": "true"}
		for k, v := range c.Properties {
			props[k] = v
		}
		scheme, rest, ok := strings.Cut(c.URI, "://")
		scheme, _, _ = strings.Cut(scheme, "+") // postgresql+psycopg2:// as SQLAlchemy writes it
		switch {
		case ok && scheme == "sqlite":
			// As SQLAlchemy (and so PyIceberg) reads it: sqlite:///rel.db is relative,
			// sqlite:////abs.db absolute; the part after the third slash is the path.
			path, query, _ := strings.Cut(strings.TrimPrefix(rest, "/"), "?")
			if path == "" || rest == path || path == ":memory:" {
				return p, &connector.ConfigError{Field: "catalog.uri", Msg: fmt.Sprintf("%q names no database file", c.URI), Hint: "sqlite:///relative/catalog.db or sqlite:////absolute/catalog.db"}
			}
			dsn := "file:" + path + "?_pragma=busy_timeout(30000)"
			if query != "" {
				dsn += "&" + query
			}
			props["uri"] = dsn
			props[sqlcat.DriverKey] = sqliteshim.ShimName
			props[sqlcat.DialectKey] = string(sqlcat.SQLite)
			p.sqlitePath = path
			p.display = "sqlite:///" + path
		case ok && (scheme == "postgresql" || scheme == "postgres"):
			u, err := url.Parse("postgres://" + rest)
			if err != nil {
				return p, &connector.ConfigError{Field: "catalog.uri", Msg: "is not a valid postgres URL"}
			}
			props["uri"] = u.String()
			props[sqlcat.DriverKey] = "pgx"
			props[sqlcat.DialectKey] = string(sqlcat.Postgres)
			u.User = nil
			p.display = u.String()
		default:
			return p, &connector.ConfigError{Field: "catalog.uri", Msg: fmt.Sprintf("%q is not a sqlite:// or postgresql:// URI", redactURL(c.URI)), Hint: "sqlite:///relative/catalog.db, sqlite:////absolute/catalog.db or postgresql://user@host/db"}
		}
		p.props = props
	case "rest":
		u, err := url.Parse(c.URI)
		if c.URI == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return p, &connector.ConfigError{Field: "catalog.uri", Msg: fmt.Sprintf("%q is not an http(s) URL", redactURL(c.URI)), Hint: "the REST catalog's base URL, e.g. https://catalog.example.com"}
		}
		if c.Credential != "" && c.Token != "" {
			return p, &connector.ConfigError{Field: "catalog.token", Msg: "set either credential or token, not both"}
		}
		p.restURI = c.URI
		if c.Credential != "" {
			p.restOpts = append(p.restOpts, rest.WithCredential(c.Credential))
		}
		if c.Token != "" {
			p.restOpts = append(p.restOpts, rest.WithOAuthToken(c.Token))
		}
		if c.Warehouse != "" {
			p.restOpts = append(p.restOpts, rest.WithWarehouseLocation(c.Warehouse))
		}
		if len(c.Properties) > 0 {
			p.restOpts = append(p.restOpts, rest.WithAdditionalProps(ice.Properties(c.Properties)))
		}
		u.User = nil
		p.display = u.String()
	default:
		return p, &connector.ConfigError{Field: "catalog.type", Msg: fmt.Sprintf("%q is not sql or rest", c.Type)}
	}
	return p, nil
}

// redactURL drops the password of a URL for an error message.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		if err != nil {
			return "(unparsable URL)"
		}
		return s
	}
	u.User = url.User(u.User.Username())
	return u.String()
}

// open connects to the catalog.
func (p catalogPlan) open(ctx context.Context) (catalog.Catalog, error) {
	if p.sqlitePath != "" {
		if err := os.MkdirAll(filepath.Dir(p.sqlitePath), 0o755); err != nil {
			return nil, fmt.Errorf("create the catalog's directory: %w", err)
		}
	}
	if p.localWarehouse != "" {
		if err := os.MkdirAll(p.localWarehouse, 0o755); err != nil {
			return nil, fmt.Errorf("create the warehouse directory: %w", err)
		}
	}
	switch p.typ {
	case "sql":
		return catalog.Load(ctx, p.name, p.props)
	default:
		return rest.NewCatalog(ctx, p.name, p.restURI, p.restOpts...)
	}
}

// closeCatalog releases a catalog's connections, when it holds any.
func closeCatalog(c catalog.Catalog) error {
	if cl, ok := c.(interface{ Close() error }); ok {
		return cl.Close()
	}
	return nil
}
