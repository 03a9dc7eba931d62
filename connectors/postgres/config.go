package postgres

import (
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

// Modes and layouts.
const (
	modeAppend = "append"
	modeUpsert = "upsert"

	layoutColumns    = "columns"
	layoutDeadLetter = "dead_letter"
)

// seqColumn is the column of the upsert staging table holding each row's index in the batch.
const seqColumn = "sluice_batch_seq"

// Metadata sources a column may read with `from`, besides a path into the JSON value.
const (
	fromKey       = "@key"
	fromValue     = "@value"
	fromTime      = "@time"
	fromPartition = "@partition"
	fromOffset    = "@offset"
	fromHeaders   = "@headers"
	fromHeader    = "@header." // followed by the header's key
)

// source says where a column's value comes from.
type source uint8

const (
	srcPath source = iota
	srcKey
	srcValue
	srcTime
	srcPartition
	srcOffset
	srcHeaders
	srcHeader
)

// column is one column the sink writes.
type column struct {
	name   string
	typ    sqlType
	src    source
	path   []string // srcPath: the field path in the JSON value
	header string   // srcHeader: the header key
	from   string   // as configured, for messages
	key    bool     // a key column: never null
}

// config is the sink's configuration after checks.
type config struct {
	DSN            string         `config:"dsn"`
	Table          string         `config:"table"`
	CreateTable    bool           `config:"create_table"`
	Mode           string         `config:"mode"`
	Key            []string       `config:"key"`
	Columns        map[string]any `config:"columns"`
	ValueColumn    string         `config:"value_column"`
	Layout         string         `config:"layout"`
	PositionsTable string         `config:"positions_table"`
	ConnectTimeout time.Duration  `config:"connect_timeout"`
	WriteTimeout   time.Duration  `config:"write_timeout"`
	Evolve         bool           `config:"evolve"`

	table     ident    // the target table
	positions ident    // the positions table
	cols      []column // in table order: key columns first, then by name, then value_column
}

// undeclared returns the table's columns that evolve writes besides the declared ones: those
// of a type the sink converts to that no declared column names or reads the first field of, and
// that are not generated.
func undeclared(declared []column, info *tableInfo) []column {
	taken := map[string]bool{}
	for _, col := range declared {
		taken[col.name] = true
		if col.src == srcPath {
			taken[col.path[0]] = true
		}
	}
	var out []column
	for _, name := range info.order {
		tc := info.columns[name]
		if taken[name] || tc.generated || name == seqColumn {
			continue
		}
		t, err := parseType(tc.typ)
		if err != nil || !t.compatible(tc.base) {
			continue
		}
		out = append(out, column{name: name, typ: t, src: srcPath, path: []string{name}, from: name})
	}
	return out
}

// ident is a possibly schema-qualified table name; Schema is empty when unqualified.
type ident struct{ Schema, Name string }

// parseTable reads "name" or "schema.name". Names are used as written (as if double-quoted).
func parseTable(field, s string) (ident, error) {
	parts := strings.Split(s, ".")
	if len(parts) > 2 {
		return ident{}, &connector.ConfigError{Field: field, Msg: fmt.Sprintf("%q has more than two parts; want table or schema.table", s)}
	}
	for _, p := range parts {
		if err := checkName(p); err != nil {
			return ident{}, &connector.ConfigError{Field: field, Msg: fmt.Sprintf("%q: %v", s, err)}
		}
	}
	if len(parts) == 2 {
		return ident{Schema: parts[0], Name: parts[1]}, nil
	}
	return ident{Name: parts[0]}, nil
}

// checkName refuses identifiers Postgres would reject or silently truncate.
func checkName(s string) error {
	switch {
	case s == "":
		return fmt.Errorf("an empty name")
	case len(s) > 63:
		return fmt.Errorf("name %q is longer than Postgres' 63 bytes", s)
	case strings.ContainsRune(s, 0):
		return fmt.Errorf("name contains a NUL character")
	}
	return nil
}

// checkDSN catches what can be known of a URL-form connection string without I/O. A keyword/value
// string is parsed by Open, which knows the environment it completes it from.
func checkDSN(dsn string) error {
	if dsn == "" {
		return &connector.ConfigError{Field: "dsn", Msg: "must not be empty"}
	}
	if !strings.HasPrefix(dsn, "postgres://") && !strings.HasPrefix(dsn, "postgresql://") {
		if strings.Contains(dsn, "://") {
			return &connector.ConfigError{Field: "dsn", Msg: "a URL must start with postgres:// or postgresql://"}
		}
		return nil
	}
	if _, err := url.Parse(dsn); err != nil {
		msg := "is not a valid URL"
		if ue, ok := err.(*url.Error); ok {
			msg += ": " + ue.Err.Error() // without the URL itself, which may hold a password
		}
		return &connector.ConfigError{Field: "dsn", Msg: msg, Hint: "special characters in the password must be percent-encoded"}
	}
	return nil
}

// parseConfig decodes and checks a configuration. It does no I/O.
func parseConfig(cfg connector.Config) (*config, error) {
	var c config
	if err := sinkSpec.Decode(cfg, &c); err != nil {
		return nil, err
	}
	if err := checkDSN(c.DSN); err != nil {
		return nil, err
	}
	var err error
	if c.table, err = parseTable("table", c.Table); err != nil {
		return nil, err
	}
	if c.positions, err = parseTable("positions_table", c.PositionsTable); err != nil {
		return nil, err
	}
	if c.positions.Schema == "" {
		c.positions.Schema = c.table.Schema
	}
	if c.ConnectTimeout <= 0 {
		return nil, &connector.ConfigError{Field: "connect_timeout", Msg: "must be greater than 0"}
	}
	if c.WriteTimeout <= 0 {
		return nil, &connector.ConfigError{Field: "write_timeout", Msg: "must be greater than 0"}
	}
	if c.Evolve && c.Layout == layoutDeadLetter {
		return nil, &connector.ConfigError{Field: "evolve", Msg: "must not be set with layout: dead_letter, whose columns are fixed"}
	}
	if c.Evolve && !c.CreateTable {
		return nil, &connector.ConfigError{Field: "evolve", Msg: "needs create_table: true: the sink adds columns only to a table it may create",
			Hint: "set create_table: true (an existing table is used as it is, and gains the columns)"}
	}
	if c.Layout == layoutDeadLetter {
		return &c, c.deadLetterLayout()
	}
	return &c, c.columnsLayout()
}

func (c *config) deadLetterLayout() error {
	switch {
	case len(c.Columns) > 0:
		return &connector.ConfigError{Field: "columns", Msg: "must not be set with layout: dead_letter, whose columns are fixed"}
	case c.ValueColumn != "":
		return &connector.ConfigError{Field: "value_column", Msg: "must not be set with layout: dead_letter, whose columns are fixed"}
	case len(c.Key) > 0:
		return &connector.ConfigError{Field: "key", Msg: "must not be set with layout: dead_letter, whose columns are fixed"}
	case c.Mode != modeAppend:
		return &connector.ConfigError{Field: "mode", Msg: "must be append with layout: dead_letter"}
	}
	c.cols = deadLetterColumns()
	return nil
}

func (c *config) columnsLayout() error {
	if len(c.Columns) == 0 && c.ValueColumn == "" && !c.Evolve {
		return &connector.ConfigError{Field: "columns", Msg: "is required: name the columns to fill (or set value_column to store each value whole, or evolve to take them from the records)",
			Hint: "columns: {commodity: text, price: double precision, ts: timestamptz}"}
	}
	names := make([]string, 0, len(c.Columns))
	for name := range c.Columns {
		names = append(names, name)
	}
	sort.Strings(names)
	for i, k := range c.Key {
		if _, ok := c.Columns[k]; !ok {
			return &connector.ConfigError{Field: fmt.Sprintf("key[%d]", i), Msg: fmt.Sprintf("%q is not one of the columns", k)}
		}
		if slices.Index(c.Key, k) != i {
			return &connector.ConfigError{Field: fmt.Sprintf("key[%d]", i), Msg: fmt.Sprintf("%q is named twice", k)}
		}
	}
	order := append([]string(nil), c.Key...)
	for _, n := range names {
		if !slices.Contains(c.Key, n) {
			order = append(order, n)
		}
	}
	for _, name := range order {
		if name == c.ValueColumn {
			continue
		}
		col, err := parseColumn(name, c.Columns[name])
		if err != nil {
			return err
		}
		col.key = slices.Contains(c.Key, name)
		c.cols = append(c.cols, col)
	}
	if c.ValueColumn != "" {
		if err := checkName(c.ValueColumn); err != nil {
			return &connector.ConfigError{Field: "value_column", Msg: err.Error()}
		}
		if _, ok := c.Columns[c.ValueColumn]; ok {
			return &connector.ConfigError{Field: "value_column", Msg: fmt.Sprintf("%q is also in columns; name it once", c.ValueColumn)}
		}
		c.cols = append(c.cols, column{name: c.ValueColumn, typ: sqlType{kind: kJSONB}, src: srcValue, from: fromValue})
	}
	if c.Mode == modeUpsert && len(c.Key) == 0 {
		return &connector.ConfigError{Field: "key", Msg: "is required with mode: upsert: name the columns of the table's primary key or unique index", Hint: "key: [id]"}
	}
	return nil
}

// parseColumn reads a column entry: a type name, or {type: ..., from: ...}.
func parseColumn(name string, v any) (column, error) {
	field := "columns." + name
	if err := checkName(name); err != nil {
		return column{}, &connector.ConfigError{Field: field, Msg: err.Error()}
	}
	if name == seqColumn {
		return column{}, &connector.ConfigError{Field: field, Msg: fmt.Sprintf("%q is reserved for the sink's staging table", seqColumn)}
	}
	col := column{name: name, from: name, path: []string{name}}
	var typ string
	switch e := v.(type) {
	case string:
		typ = e
	case map[string]any:
		for k := range e {
			if k != "type" && k != "from" {
				return column{}, &connector.ConfigError{Field: field + "." + k, Msg: "unknown field; a column takes type and from"}
			}
		}
		t, ok := e["type"].(string)
		if !ok {
			return column{}, &connector.ConfigError{Field: field + ".type", Msg: "is required: the column's SQL type", Hint: "{type: double precision, from: quote.price}"}
		}
		typ = t
		if f, set := e["from"]; set {
			s, ok := f.(string)
			if !ok || s == "" {
				return column{}, &connector.ConfigError{Field: field + ".from", Msg: "must be a field path such as quote.price, or @key, @value, @time, @partition, @offset, @headers, @header.NAME"}
			}
			if err := col.setFrom(s); err != nil {
				return column{}, &connector.ConfigError{Field: field + ".from", Msg: err.Error()}
			}
		}
	default:
		return column{}, &connector.ConfigError{Field: field, Msg: fmt.Sprintf("want a type name or {type, from}, got %T", v)}
	}
	t, err := parseType(typ)
	if err != nil {
		return column{}, &connector.ConfigError{Field: field, Msg: err.Error()}
	}
	col.typ = t
	return col, nil
}

func (c *column) setFrom(s string) error {
	c.from, c.path = s, nil
	switch {
	case s == fromKey:
		c.src = srcKey
	case s == fromValue:
		c.src = srcValue
	case s == fromTime:
		c.src = srcTime
	case s == fromPartition:
		c.src = srcPartition
	case s == fromOffset:
		c.src = srcOffset
	case s == fromHeaders:
		c.src = srcHeaders
	case strings.HasPrefix(s, fromHeader) && len(s) > len(fromHeader):
		c.src, c.header = srcHeader, s[len(fromHeader):]
	case strings.HasPrefix(s, "@"):
		return fmt.Errorf("%q is not a record field; use @key, @value, @time, @partition, @offset, @headers or @header.NAME", s)
	default:
		c.src, c.path = srcPath, strings.Split(s, ".")
		if slices.Contains(c.path, "") {
			return fmt.Errorf("%q has an empty field name; want a dotted path such as quote.price", s)
		}
	}
	return nil
}
