package iceberg

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/extensions"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

// cell is one column's value of the record being converted, before it is appended.
type cell struct {
	null  bool
	i     int64 // boolean (0/1), int, long, date, time, timestamps
	f     float64
	d     decimal128.Num
	u     [16]byte
	b     []byte // string, binary: into the record's value, or (inBuf) into converter.buf
	inBuf bool
	off   int
}

// converter turns JSON record values into Arrow record batches of a table's schema. It is used
// by one goroutine at a time and reuses its buffers across batches.
type converter struct {
	cols    []column
	root    pathNode
	schema  *arrow.Schema
	bld     *array.RecordBuilder
	fieldOf []int           // per declared column: its field in the Arrow schema
	unset   []int           // Arrow fields no column declares: always null
	apps    []func(c *cell) // per declared column
	spans   []span
	cells   []cell
	scratch []byte // unescaped keys
	buf     []byte // unescaped strings and decoded binaries of the current record

	// With evolve: the fields of the current record no column reads, and those of the batch
	// (in order of first appearance) that should become columns.
	evolve  bool
	unread  []unread
	found   []newColumn
	foundAt map[string]int
	keyBuf  []byte
}

// newConverter builds the converter of the declared columns into sc, the Arrow schema of the
// table (whose columns may be more than those declared; those are written as nulls).
func newConverter(cols []column, sc *arrow.Schema, mem memory.Allocator) (*converter, error) {
	c := &converter{cols: cols, schema: sc, spans: make([]span, len(cols)), cells: make([]cell, len(cols))}
	for i, col := range cols {
		n := &c.root
		for _, p := range col.path {
			n = n.child(p)
		}
		n.cols = append(n.cols, i)
	}
	c.bld = array.NewRecordBuilder(mem, sc)
	c.fieldOf = make([]int, len(cols))
	declared := make([]bool, sc.NumFields())
	for i, col := range cols {
		idx := sc.FieldIndices(col.name)
		if len(idx) != 1 {
			c.bld.Release()
			return nil, fmt.Errorf("column %q is not in the table's schema", col.name)
		}
		c.fieldOf[i] = idx[0]
		declared[idx[0]] = true
		app, err := appender(col, c.bld.Field(idx[0]), &c.buf)
		if err != nil {
			c.bld.Release()
			return nil, fmt.Errorf("column %q: %w", col.name, err)
		}
		c.apps = append(c.apps, app)
	}
	for i, d := range declared {
		if !d {
			c.unset = append(c.unset, i)
		}
	}
	return c, nil
}

// evolving makes the converter note the top-level fields that no column reads and that are not
// among known (the table's columns), for convert to return.
func (c *converter) evolving(known []string) {
	c.evolve = true
	c.foundAt = map[string]int{}
	for _, k := range known {
		c.root.child(k)
	}
}

// release frees the builders.
func (c *converter) release() {
	if c.bld != nil {
		c.bld.Release()
		c.bld = nil
	}
}

// appender returns the function appending a column's converted cell to its builder.
func appender(col column, b array.Builder, buf *[]byte) (func(*cell), error) {
	bytesOf := func(x *cell) []byte {
		if x.inBuf {
			return (*buf)[x.off : x.off+len(x.b)]
		}
		return x.b
	}
	mismatch := fmt.Errorf("the table's Arrow type %s does not match %s", b.Type(), col.typ)
	switch col.kind {
	case kBoolean:
		if bb, ok := b.(*array.BooleanBuilder); ok {
			return func(x *cell) { bb.Append(x.i != 0) }, nil
		}
	case kInt:
		if bb, ok := b.(*array.Int32Builder); ok {
			return func(x *cell) { bb.Append(int32(x.i)) }, nil
		}
	case kLong:
		if bb, ok := b.(*array.Int64Builder); ok {
			return func(x *cell) { bb.Append(x.i) }, nil
		}
	case kFloat:
		if bb, ok := b.(*array.Float32Builder); ok {
			return func(x *cell) { bb.Append(float32(x.f)) }, nil
		}
	case kDouble:
		if bb, ok := b.(*array.Float64Builder); ok {
			return func(x *cell) { bb.Append(x.f) }, nil
		}
	case kDecimal:
		if bb, ok := b.(*array.Decimal128Builder); ok {
			return func(x *cell) { bb.Append(x.d) }, nil
		}
	case kDate:
		if bb, ok := b.(*array.Date32Builder); ok {
			return func(x *cell) { bb.Append(arrow.Date32(x.i)) }, nil
		}
	case kTime:
		if bb, ok := b.(*array.Time64Builder); ok {
			return func(x *cell) { bb.Append(arrow.Time64(x.i)) }, nil
		}
	case kTimestamp, kTimestampTz:
		if bb, ok := b.(*array.TimestampBuilder); ok {
			return func(x *cell) { bb.Append(arrow.Timestamp(x.i)) }, nil
		}
	case kString:
		switch bb := b.(type) {
		case *array.StringBuilder:
			return func(x *cell) { bb.BinaryBuilder.Append(bytesOf(x)) }, nil
		case *array.LargeStringBuilder:
			return func(x *cell) { bb.BinaryBuilder.Append(bytesOf(x)) }, nil
		}
	case kBinary:
		if bb, ok := b.(*array.BinaryBuilder); ok {
			return func(x *cell) { bb.Append(bytesOf(x)) }, nil
		}
	case kUUID:
		switch bb := b.(type) {
		case *extensions.UUIDBuilder:
			return func(x *cell) { bb.AppendBytes(x.u) }, nil
		case *array.FixedSizeBinaryBuilder:
			return func(x *cell) { bb.Append(x.u[:]) }, nil
		}
	}
	return nil, mismatch
}

// convert turns the records into one record batch of the table's schema. Records for which skip
// returns true are left out; records that do not fit the schema are left out and reported in
// failed, by index. The batch is nil when no record is kept. With evolve, c.found lists
// afterwards the fields of the kept records that no column reads, each with the type its values
// call for.
func (c *converter) convert(records []connector.Record, skip func(i int) bool) (batch arrow.RecordBatch, failed []connector.RecordError) {
	c.bld.Reserve(len(records))
	if c.evolve {
		c.found = c.found[:0]
		clear(c.foundAt)
	}
	n := 0
	for i := range records {
		if skip != nil && skip(i) {
			continue
		}
		if err := c.decode(records[i].Value); err != nil {
			failed = append(failed, connector.RecordError{Index: i, Err: err})
			continue
		}
		if len(c.unread) > 0 {
			c.note(records[i].Value)
		}
		if len(c.cols) == 0 {
			failed = append(failed, connector.RecordError{Index: i, Err: errors.New("the table has no columns yet, and the value has no field that is not null to add one from")})
			continue
		}
		for j, app := range c.apps {
			x := &c.cells[j]
			if x.null {
				c.bld.Field(c.fieldOf[j]).AppendNull()
				continue
			}
			app(x)
		}
		for _, f := range c.unset {
			c.bld.Field(f).AppendNull()
		}
		n++
	}
	batch = c.bld.NewRecordBatch() // resets the builders
	if n == 0 {
		batch.Release()
		return nil, failed
	}
	if cap(c.buf) > 16<<20 {
		c.buf = nil
	}
	return batch, failed
}

// decode reads one record's value into c.cells, or says why it does not fit.
func (c *converter) decode(v []byte) error {
	for i := range c.spans {
		c.spans[i] = span{}
	}
	c.buf = c.buf[:0]
	i := skipSpace(v, 0)
	if i >= len(v) || v[i] != '{' {
		if i >= len(v) {
			return errors.New("the value is empty, not a JSON object")
		}
		return errors.New("the value is not a JSON object")
	}
	var extra *[]unread
	if c.evolve {
		c.unread = c.unread[:0]
		extra = &c.unread
	}
	end, err := walkObject(v, i, &c.root, c.spans, &c.scratch, 0, extra)
	if err != nil {
		return err
	}
	if skipSpace(v, end) != len(v) {
		return &syntaxError{end, "data after the object"}
	}
	for j := range c.cols {
		if err := c.cell(j, v); err != nil {
			if col := &c.cols[j]; col.undeclared {
				return fmt.Errorf("column %s (%s in the table, not declared in schema): %w", col.name, col.typ, err)
			}
			return fmt.Errorf("column %s: %w", c.cols[j].name, err)
		}
	}
	return nil
}

// note adds the unread fields of the record v to c.found. A field's type comes from its first
// value in the batch, except that integral and fractional numbers together make a double. A key
// that is empty, holds a dot or is not valid UTF-8 cannot name a column and is left out.
func (c *converter) note(v []byte) {
	for _, u := range c.unread {
		key := v[u.key.start:u.key.end]
		if u.key.esc {
			var err error
			if c.keyBuf, err = unescape(c.keyBuf[:0], key); err != nil {
				continue
			}
			key = c.keyBuf
		}
		k := inferKind(u.val, v[u.val.start:u.val.end])
		if at, ok := c.foundAt[string(key)]; ok {
			if f := &c.found[at]; f.kind == kLong && k == kDouble {
				f.kind = kDouble
			}
			continue
		}
		if len(key) == 0 || bytes.IndexByte(key, '.') >= 0 || !utf8.Valid(key) {
			continue
		}
		c.foundAt[string(key)] = len(c.found)
		c.found = append(c.found, newColumn{name: string(key), kind: k})
	}
}

// cell converts column j's span of the value v into c.cells[j].
func (c *converter) cell(j int, v []byte) error {
	col := &c.cols[j]
	sp := c.spans[j]
	x := &c.cells[j]
	*x = cell{}
	if sp.kind == jAbsent || sp.kind == jNull {
		if col.required {
			if sp.kind == jNull {
				return errors.New("required, but null")
			}
			return errors.New("required, but missing")
		}
		x.null = true
		return nil
	}
	raw := v[sp.start:sp.end]
	want := func(what string) error { return fmt.Errorf("want %s, got %s", what, sp.kind) }
	// the content of a string, unescaped when needed (into c.buf, noted by inBuf/off)
	str := func() ([]byte, error) {
		if !sp.esc {
			return raw, nil
		}
		off := len(c.buf)
		var err error
		c.buf, err = unescape(c.buf, raw)
		if err != nil {
			return nil, err
		}
		x.inBuf, x.off = true, off
		return c.buf[off:], nil
	}
	var err error
	switch col.kind {
	case kBoolean:
		switch sp.kind {
		case jTrue:
			x.i = 1
		case jFalse:
		default:
			return want("a boolean")
		}
	case kInt, kLong:
		if sp.kind != jNumber {
			return want("an integer")
		}
		bits := 64
		if col.kind == kInt {
			bits = 32
		}
		if x.i, err = parseInt(raw, bits); err != nil {
			return fmt.Errorf("%s: %w for %s", raw, err, col.typ)
		}
	case kFloat, kDouble:
		if sp.kind != jNumber {
			return want("a number")
		}
		bits := 64
		if col.kind == kFloat {
			bits = 32
		}
		if x.f, err = parseFloat(raw, bits); err != nil {
			return fmt.Errorf("%s: %w for %s", raw, err, col.typ)
		}
	case kDecimal:
		if sp.kind != jNumber && sp.kind != jString {
			return want("a number")
		}
		if x.d, err = parseDecimal(raw, col.precision, col.scale); err != nil {
			return fmt.Errorf("%q %w", raw, err)
		}
	case kDate:
		switch sp.kind {
		case jString:
			if raw, err = str(); err == nil {
				x.i, err = parseDate(raw)
			}
		case jNumber:
			x.i, err = parseInt(raw, 32)
		default:
			return want("a date string")
		}
		if err == nil && (x.i > math.MaxInt32 || x.i < math.MinInt32) {
			err = errRange
		}
		if err != nil {
			return fmt.Errorf("%q: %w", raw, err)
		}
	case kTime:
		if sp.kind != jString {
			return want("a time string")
		}
		if raw, err = str(); err == nil {
			x.i, err = parseTime(raw)
		}
		if err != nil {
			return fmt.Errorf("%q: %w", raw, err)
		}
	case kTimestamp, kTimestampTz:
		switch sp.kind {
		case jString:
			if raw, err = str(); err == nil {
				x.i, err = parseTimestamp(raw)
			}
		case jNumber: // epoch milliseconds
			x.i, err = parseInt(raw, 64)
			if err == nil && (x.i > math.MaxInt64/1000 || x.i < math.MinInt64/1000) {
				err = errRange
			}
			x.i *= 1000
		default:
			return want("a timestamp string or epoch milliseconds")
		}
		if err != nil {
			return fmt.Errorf("%q: %w", raw, err)
		}
	case kString:
		if sp.kind != jString {
			if col.undeclared && (sp.kind == jObject || sp.kind == jArray) {
				if !utf8.Valid(raw) {
					return errors.New("the JSON text is not valid UTF-8")
				}
				x.b = raw // its JSON text, whose structure the scan checked
				break
			}
			return want("a string")
		}
		b, err := str()
		if err != nil {
			return err
		}
		if !utf8.Valid(b) {
			return errors.New("the string is not valid UTF-8")
		}
		x.b = b
	case kUUID:
		if sp.kind != jString {
			return want("a UUID string")
		}
		b, err := str()
		if err != nil {
			return err
		}
		if x.u, err = parseUUID(b); err != nil {
			return fmt.Errorf("%q: %w", b, err)
		}
		x.inBuf = false
	case kBinary:
		if sp.kind != jString {
			return want("a base64 string")
		}
		b, err := str()
		if err != nil {
			return err
		}
		off := len(c.buf)
		if c.buf, err = appendBase64(c.buf, b); err != nil {
			return err
		}
		x.b, x.inBuf, x.off = c.buf[off:], true, off
	}
	return nil
}
