package iceberg

import (
	"fmt"
	"strconv"
	"strings"

	ice "github.com/apache/iceberg-go"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

// partitionField is one entry of the partition field: a transform of a declared column.
type partitionField struct {
	expr      string // as written
	source    string // the column
	transform ice.Transform
	name      string // the partition field's name, as Java and PyIceberg name it
}

// parsePartition reads the partition expressions: a column name (identity), year(c), month(c),
// day(c), hour(c), bucket(N, c), truncate(W, c). Each column must be declared and of a type the
// transform applies to.
func parsePartition(exprs []string, cols []column) ([]partitionField, error) {
	out := make([]partitionField, 0, len(exprs))
	for i, e := range exprs {
		field := fmt.Sprintf("partition[%d]", i)
		p, err := parsePartitionExpr(e)
		if err != nil {
			return nil, &connector.ConfigError{Field: field, Msg: err.Error(),
				Hint: "write a column name, year(col), month(col), day(col), hour(col), bucket(N, col) or truncate(W, col)"}
		}
		col, ok := findColumn(cols, p.source)
		if !ok {
			return nil, &connector.ConfigError{Field: field, Msg: fmt.Sprintf("%q: column %q is not in schema", e, p.source)}
		}
		if !p.transform.CanTransform(col.typ) {
			return nil, &connector.ConfigError{Field: field, Msg: fmt.Sprintf("%q: transform %s does not apply to column %q of type %s", e, p.transform, p.source, col.typ)}
		}
		for _, q := range out {
			if q.name == p.name {
				return nil, &connector.ConfigError{Field: field, Msg: fmt.Sprintf("%q repeats partition field %s (from %q)", e, p.name, q.expr)}
			}
		}
		out = append(out, p)
	}
	return out, nil
}

func parsePartitionExpr(e string) (partitionField, error) {
	s := strings.TrimSpace(e)
	fn, rest, call := strings.Cut(s, "(")
	if !call {
		if s == "" || strings.ContainsAny(s, " ,)") {
			return partitionField{}, fmt.Errorf("%q is not a column name or a transform", e)
		}
		return partitionField{expr: e, source: s, transform: ice.IdentityTransform{}, name: s}, nil
	}
	args, ok := strings.CutSuffix(strings.TrimSpace(rest), ")")
	if !ok {
		return partitionField{}, fmt.Errorf("%q: missing closing parenthesis", e)
	}
	parts := strings.Split(args, ",")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	fn = strings.ToLower(strings.TrimSpace(fn))
	p := partitionField{expr: e}
	switch fn {
	case "identity", "year", "month", "day", "hour":
		if len(parts) != 1 || parts[0] == "" {
			return p, fmt.Errorf("%q: %s takes one column", e, fn)
		}
		p.source = parts[0]
		switch fn {
		case "identity":
			p.transform, p.name = ice.IdentityTransform{}, p.source
		case "year":
			p.transform, p.name = ice.YearTransform{}, p.source+"_year"
		case "month":
			p.transform, p.name = ice.MonthTransform{}, p.source+"_month"
		case "day":
			p.transform, p.name = ice.DayTransform{}, p.source+"_day"
		case "hour":
			p.transform, p.name = ice.HourTransform{}, p.source+"_hour"
		}
	case "bucket", "truncate":
		if len(parts) != 2 || parts[1] == "" {
			return p, fmt.Errorf("%q: %s takes a number and a column: %s(16, id)", e, fn, fn)
		}
		n, err := strconv.Atoi(parts[0])
		if err != nil || n < 1 {
			return p, fmt.Errorf("%q: %q is not a positive integer", e, parts[0])
		}
		p.source = parts[1]
		if fn == "bucket" {
			p.transform, p.name = ice.BucketTransform{NumBuckets: n}, p.source+"_bucket"
		} else {
			p.transform, p.name = ice.TruncateTransform{Width: n}, p.source+"_trunc"
		}
	default:
		return p, fmt.Errorf("%q: unknown transform %q", e, fn)
	}
	return p, nil
}

func findColumn(cols []column, name string) (column, bool) {
	for _, c := range cols {
		if c.name == name {
			return c, true
		}
	}
	return column{}, false
}

// partitionSpec builds the spec of a table the sink creates, bound to its schema.
func partitionSpec(fields []partitionField, sc *ice.Schema) (*ice.PartitionSpec, error) {
	opts := make([]ice.PartitionOption, len(fields))
	for i, f := range fields {
		opts[i] = ice.AddPartitionFieldByName(f.source, f.name, f.transform, sc, nil)
	}
	spec, err := ice.NewPartitionSpecOpts(opts...)
	if err != nil {
		return nil, err
	}
	return &spec, nil
}

// samePartitioning reports whether a table's spec partitions by exactly the declared fields, in
// order; when it does not, it says how the table is partitioned.
func samePartitioning(spec ice.PartitionSpec, sc *ice.Schema, fields []partitionField) (bool, string) {
	var have []string
	same := spec.NumFields() == len(fields)
	for i, f := range spec.Fields() {
		src, _ := sc.FindColumnName(f.SourceID())
		have = append(have, describeField(f.Transform, src))
		if same && (src != fields[i].source || !f.Transform.Equals(fields[i].transform)) {
			same = false
		}
	}
	return same, "[" + strings.Join(have, ", ") + "]"
}

// describeField writes a partition field the way the manifest does.
func describeField(t ice.Transform, src string) string {
	switch t := t.(type) {
	case ice.IdentityTransform:
		return src
	case ice.BucketTransform:
		return fmt.Sprintf("bucket(%d, %s)", t.NumBuckets, src)
	case ice.TruncateTransform:
		return fmt.Sprintf("truncate(%d, %s)", t.Width, src)
	}
	return t.String() + "(" + src + ")"
}
