package iceberg

import (
	"fmt"
	"strconv"
	"strings"

	ice "github.com/apache/iceberg-go"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

// kind is the Iceberg type of a declared column, as the converter sees it.
type kind uint8

const (
	kBoolean kind = iota
	kInt
	kLong
	kFloat
	kDouble
	kDecimal
	kDate
	kTime
	kTimestamp
	kTimestampTz
	kString
	kUUID
	kBinary
)

// typeNames lists the column types a manifest may declare, for errors and docs.
const typeNames = "boolean, int, long, float, double, decimal(P,S), date, time, timestamp, timestamptz, string, uuid, binary"

// column is one declared column of the sink's schema.
type column struct {
	name      string
	typ       ice.Type
	kind      kind
	required  bool
	path      []string // where the value sits in the record's JSON value
	precision int      // decimal only
	scale     int      // decimal only
	doc       string
	// undeclared: a table column the manifest does not declare, written with evolve from the
	// field of its name (a string column then takes objects and arrays as their JSON text).
	undeclared bool
}

// columnConfig is one element of the schema field.
type columnConfig struct {
	Name     string `config:"name"`
	Type     string `config:"type"`
	Required bool   `config:"required"`
	From     string `config:"from"`
	Doc      string `config:"doc"`
}

// parseColumns checks the declared schema: names unique and non-empty, types known, paths
// well formed.
func parseColumns(cfgs []columnConfig, evolve bool) ([]column, error) {
	if len(cfgs) == 0 && !evolve {
		return nil, &connector.ConfigError{Field: "schema", Msg: "must declare at least one column", Hint: "or set evolve: true to take the columns from the records"}
	}
	seen := map[string]bool{}
	out := make([]column, 0, len(cfgs))
	for i, c := range cfgs {
		field := fmt.Sprintf("schema[%d]", i)
		if c.Name == "" {
			return nil, &connector.ConfigError{Field: field + ".name", Msg: "must not be empty"}
		}
		if seen[c.Name] {
			return nil, &connector.ConfigError{Field: field + ".name", Msg: fmt.Sprintf("column %q is declared twice", c.Name)}
		}
		seen[c.Name] = true
		col, err := parseType(c.Type)
		if err != nil {
			return nil, &connector.ConfigError{Field: field + ".type", Msg: err.Error(), Hint: "types: " + typeNames}
		}
		col.name, col.required, col.doc = c.Name, c.Required, c.Doc
		from := c.From
		if from == "" {
			col.path = []string{c.Name}
		} else {
			col.path = strings.Split(from, ".")
			for _, p := range col.path {
				if p == "" {
					return nil, &connector.ConfigError{Field: field + ".from", Msg: fmt.Sprintf("%q has an empty path segment", from), Hint: "a path names nested fields of the JSON value with dots, and array elements by number: quote.price, items.0.sku"}
				}
			}
		}
		out = append(out, col)
	}
	return out, nil
}

// parseType reads a column type as Iceberg spells it.
func parseType(s string) (column, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	switch t {
	case "boolean":
		return column{typ: ice.PrimitiveTypes.Bool, kind: kBoolean}, nil
	case "int":
		return column{typ: ice.PrimitiveTypes.Int32, kind: kInt}, nil
	case "long":
		return column{typ: ice.PrimitiveTypes.Int64, kind: kLong}, nil
	case "float":
		return column{typ: ice.PrimitiveTypes.Float32, kind: kFloat}, nil
	case "double":
		return column{typ: ice.PrimitiveTypes.Float64, kind: kDouble}, nil
	case "date":
		return column{typ: ice.PrimitiveTypes.Date, kind: kDate}, nil
	case "time":
		return column{typ: ice.PrimitiveTypes.Time, kind: kTime}, nil
	case "timestamp":
		return column{typ: ice.PrimitiveTypes.Timestamp, kind: kTimestamp}, nil
	case "timestamptz":
		return column{typ: ice.PrimitiveTypes.TimestampTz, kind: kTimestampTz}, nil
	case "string":
		return column{typ: ice.PrimitiveTypes.String, kind: kString}, nil
	case "uuid":
		return column{typ: ice.PrimitiveTypes.UUID, kind: kUUID}, nil
	case "binary":
		return column{typ: ice.PrimitiveTypes.Binary, kind: kBinary}, nil
	}
	if rest, ok := strings.CutPrefix(t, "decimal("); ok {
		inner, ok := strings.CutSuffix(rest, ")")
		ps := strings.Split(inner, ",")
		if !ok || len(ps) != 2 {
			return column{}, fmt.Errorf("%q: want decimal(PRECISION, SCALE)", s)
		}
		p, err1 := strconv.Atoi(strings.TrimSpace(ps[0]))
		sc, err2 := strconv.Atoi(strings.TrimSpace(ps[1]))
		if err1 != nil || err2 != nil {
			return column{}, fmt.Errorf("%q: want decimal(PRECISION, SCALE) with two integers", s)
		}
		if p < 1 || p > 38 {
			return column{}, fmt.Errorf("%q: precision must be between 1 and 38", s)
		}
		if sc < 0 || sc > p {
			return column{}, fmt.Errorf("%q: scale must be between 0 and the precision", s)
		}
		return column{typ: ice.DecimalTypeOf(p, sc), kind: kDecimal, precision: p, scale: sc}, nil
	}
	return column{}, fmt.Errorf("unknown type %q", s)
}

// icebergSchema is the schema of a table the sink creates: the declared columns in order, with
// field ids from 1.
func icebergSchema(cols []column) *ice.Schema {
	fields := make([]ice.NestedField, len(cols))
	for i, c := range cols {
		fields[i] = ice.NestedField{ID: i + 1, Name: c.name, Type: c.typ, Required: c.required, Doc: c.doc}
	}
	return ice.NewSchema(0, fields...)
}

// schemaChange is what Open must do to an existing table so it can take the declared columns.
type schemaChange struct {
	add     []column // columns the table lacks
	widen   []column // a promotion: int to long, float to double, a wider decimal
	relax   []column // required in the table, optional in the manifest
	missing []string // required table columns the manifest does not declare (refused)
}

func (c schemaChange) empty() bool { return len(c.add)+len(c.widen)+len(c.relax) == 0 }

// diffSchema compares the declared columns with a table's schema. Adding a column, widening a
// type along Iceberg's promotions and making a required column optional are changes the table
// can take without rewriting data; anything else (a narrowing or unrelated type change, an
// optional column becoming required, a new required column) is an error naming the column.
func diffSchema(table *ice.Schema, cols []column, evolve bool) (schemaChange, error) {
	var ch schemaChange
	declared := map[string]bool{}
	for _, c := range cols {
		declared[c.name] = true
		f, ok := table.FindFieldByName(c.name)
		if !ok {
			if c.required {
				return ch, &connector.ConfigError{Field: "schema", Msg: fmt.Sprintf("column %q is new to the table and declared required: the rows already in the table have no value for it", c.name), Hint: "add the column with required: false"}
			}
			ch.add = append(ch.add, c)
			continue
		}
		if !f.Type.Equals(c.typ) {
			if !promotable(f.Type, c.typ) {
				return ch, &connector.ConfigError{Field: "schema", Msg: fmt.Sprintf("column %q is %s in the table; the manifest declares %s, which the table cannot take without rewriting its data", c.name, f.Type, c.typ), Hint: "Iceberg widens int to long, float to double and decimal(P,S) to decimal(P2,S) with P2 > P; declare the column as " + f.Type.String() + " or a promotion of it"}
			}
			ch.widen = append(ch.widen, c)
		}
		switch {
		case c.required && !f.Required:
			return ch, &connector.ConfigError{Field: "schema", Msg: fmt.Sprintf("column %q is optional in the table; the manifest declares it required, and rows already in the table may lack it", c.name), Hint: "declare it with required: false"}
		case !c.required && f.Required:
			ch.relax = append(ch.relax, c)
		}
	}
	for _, f := range table.Fields() {
		if f.Required && !declared[f.Name] && !(evolve && adoptable(f)) {
			ch.missing = append(ch.missing, f.Name)
		}
	}
	if len(ch.missing) > 0 {
		return ch, &connector.ConfigError{Field: "schema", Msg: fmt.Sprintf("the table has required column(s) %s that the manifest does not declare", strings.Join(ch.missing, ", ")), Hint: "declare them in schema"}
	}
	return ch, nil
}

// promotable reports whether Iceberg lets a column of type from become type to in place.
func promotable(from, to ice.Type) bool {
	switch f := from.(type) {
	case ice.Int32Type:
		_, ok := to.(ice.Int64Type)
		return ok
	case ice.Float32Type:
		_, ok := to.(ice.Float64Type)
		return ok
	case ice.DecimalType:
		t, ok := to.(ice.DecimalType)
		return ok && t.Scale() == f.Scale() && t.Precision() > f.Precision()
	}
	return false
}

// adoptable reports whether a table column the manifest does not declare can be written from
// the record field of its name: a primitive type the sink converts to.
func adoptable(f ice.NestedField) bool {
	_, err := parseType(f.Type.String())
	return err == nil && f.Name != "" && !strings.Contains(f.Name, ".")
}

// undeclared returns the table columns that evolve writes besides the declared ones: those of a
// type the sink converts to, not declared, and not named like the first field of a declared
// column's path (that field is the declared column's).
func undeclared(table *ice.Schema, cols []column) []column {
	taken := map[string]bool{}
	for _, c := range cols {
		taken[c.name], taken[c.path[0]] = true, true
	}
	var out []column
	for _, f := range table.Fields() {
		if taken[f.Name] || !adoptable(f) {
			continue
		}
		c, _ := parseType(f.Type.String())
		c.name, c.required, c.doc, c.path, c.undeclared = f.Name, f.Required, f.Doc, []string{f.Name}, true
		out = append(out, c)
	}
	return out
}

// newColumn is a field of the records that evolve adds to the table.
type newColumn struct {
	name string
	kind kind // kString, kLong, kDouble or kBoolean
}

// inferKind is the column type evolve gives a field from one of its values: string for a string
// (also one that holds a time: its format says nothing certain), long for an integral number that
// fits, double for any other number, boolean, and string for an object or array (its JSON text).
func inferKind(sp span, raw []byte) kind {
	switch sp.kind {
	case jTrue, jFalse:
		return kBoolean
	case jNumber:
		if _, err := parseInt(raw, 64); err == nil {
			return kLong
		}
		return kDouble
	}
	return kString
}

// typeOfKind is the Iceberg type of an inferred column.
func typeOfKind(k kind) ice.Type {
	switch k {
	case kBoolean:
		return ice.PrimitiveTypes.Bool
	case kLong:
		return ice.PrimitiveTypes.Int64
	case kDouble:
		return ice.PrimitiveTypes.Float64
	}
	return ice.PrimitiveTypes.String
}
