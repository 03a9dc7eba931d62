package iceberg

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/iceberg-go/table"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

func benchColumns(t testing.TB) []column {
	cols, err := parseColumns([]columnConfig{
		{Name: "seq", Type: "long", Required: true},
		{Name: "commodity", Type: "string", Required: true},
		{Name: "price", Type: "double", Required: true},
		{Name: "ts", Type: "timestamptz", Required: true},
		{Name: "pad", Type: "string"},
	}, false)
	if err != nil {
		t.Fatal(err)
	}
	return cols
}

func newTestConverter(t testing.TB, cols []column) *converter {
	sc, err := table.SchemaToArrowSchema(icebergSchema(cols), nil, true, false)
	if err != nil {
		t.Fatal(err)
	}
	c, err := newConverter(cols, sc, memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.release)
	return c
}

// benchRecords are 100-byte commodity records.
func benchRecords(n int) []connector.Record {
	recs := make([]connector.Record, n)
	base := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	names := []string{"gold", "silver", "copper", "wheat", "coffee"}
	for i := range recs {
		c := names[i%5]
		recs[i].Value = fmt.Appendf(nil, `{"seq":%d,"commodity":%q,"price":%d.%02d,"ts":%q,"pad":%q}`, 1_000_000+i, c, 10+i%90, i%100,
			base.Add(time.Duration(i)*time.Second).Format("2006-01-02T15:04:05.000Z"), strings.Repeat("x", 30-len(c)))
	}
	return recs
}

func TestConvertNested(t *testing.T) {
	cols, err := parseColumns([]columnConfig{
		{Name: "id", Type: "uuid", Required: true},
		{Name: "bid", Type: "decimal(9,3)", From: "quote.bid"},
		{Name: "ask", Type: "float", From: "quote.ask"},
		{Name: "quote", Type: "string", From: "quote.venue.name"},
		{Name: "day", Type: "date"},
		{Name: "at", Type: "time"},
		{Name: "raw", Type: "binary"},
		{Name: "ok", Type: "boolean"},
		{Name: "note", Type: "string"},
		{Name: "local", Type: "timestamp"},
		{Name: "small", Type: "int"},
	}, false)
	if err != nil {
		t.Fatal(err)
	}
	c := newTestConverter(t, cols)
	recs := []connector.Record{
		{Value: []byte(` {"id":"123e4567-e89b-12d3-a456-426614174000","quote":{"bid":1.5,"ask":2,"venue":{"name":"L\u004dE","x":[1,2]}},` +
			`"day":"2026-12-01","at":"10:11:12.5","raw":"aGk=","ok":true,"note":"tab\tq\"","local":1700000000000,"small":-5} `)},
		{Value: []byte(`{"id":"123e4567e89b12d3a456426614174001","quote":null,"note":null}`)},
	}
	batch, failed := c.convert(recs, nil)
	if len(failed) > 0 {
		t.Fatalf("failed: %v", failed[0].Err)
	}
	defer batch.Release()
	b, _ := json.Marshal(batch)
	got := string(b)
	want := `[{"id":"123e4567-e89b-12d3-a456-426614174000","bid":"1.5","ask":2,"quote":"LME","day":"2026-12-01","at":"10:11:12.5","raw":"aGk=","ok":true,"note":"tab\tq\"","local":"2023-11-14T22:13:20","small":-5},` +
		`{"id":"123e4567-e89b-12d3-a456-426614174001","bid":null,"ask":null,"quote":null,"day":null,"at":null,"raw":null,"ok":null,"note":null,"local":null,"small":null}]`
	if !jsonSame(got, want) {
		t.Errorf("batch = %s\nwant    %s", got, want)
	}
}

// A from path indexes arrays by number, as record templates and the postgres sink's paths do:
// "items.0.sku" is the sku of the first item. A missing element is null; a number segment also
// names an object key of that name.
func TestConvertArrayIndexes(t *testing.T) {
	cols, err := parseColumns([]columnConfig{
		{Name: "first", Type: "string", From: "items.0.sku"},
		{Name: "second_qty", Type: "int", From: "items.1.qty"},
		{Name: "third", Type: "string", From: "items.2.sku"},
		{Name: "tag", Type: "string", From: "tags.1"},
		{Name: "matrix", Type: "long", From: "m.1.0"},
		{Name: "n", Type: "long"},
	}, false)
	if err != nil {
		t.Fatal(err)
	}
	c := newTestConverter(t, cols)
	recs := []connector.Record{
		{Value: []byte(`{"items":[{"sku":"a","qty":1},{"sku":"b","qty":2,"x":[{"y":1}]}],"tags":["x","y","z"],"m":[[1,2],[3,4]],"n":7}`)},
		{Value: []byte(`{"items":{"0":{"sku":"key0"}},"tags":[],"m":[],"n":8}`)},
		{Value: []byte(`{"items":"not an array","n":9}`)},
	}
	batch, failed := c.convert(recs, nil)
	if len(failed) > 0 {
		t.Fatalf("failed: %v", failed[0].Err)
	}
	defer batch.Release()
	b, _ := json.Marshal(batch)
	want := `[{"first":"a","second_qty":2,"third":null,"tag":"y","matrix":3,"n":7},` +
		`{"first":"key0","second_qty":null,"third":null,"tag":null,"matrix":null,"n":8},` +
		`{"first":null,"second_qty":null,"third":null,"tag":null,"matrix":null,"n":9}]`
	if !jsonSame(string(b), want) {
		t.Errorf("batch = %s\nwant    %s", b, want)
	}
	// Malformed JSON inside an array that a path walks into is still reported.
	if _, failed := c.convert([]connector.Record{{Value: []byte(`{"items":[{"sku":"a"},}`)}}, nil); len(failed) != 1 {
		t.Errorf("a malformed array was accepted: %v", failed)
	}
}

func jsonSame(a, b string) bool {
	var x, y any
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return false
	}
	return fmt.Sprint(x) == fmt.Sprint(y)
}

// BenchmarkConvert compares the converter with the obvious alternative: encoding/json into a
// map[string]any per record, then the builders.
func BenchmarkConvert(b *testing.B) {
	recs := benchRecords(100_000)
	size := 0
	for _, r := range recs {
		size += len(r.Value)
	}
	cols := benchColumns(b)
	b.Run("scanner", func(b *testing.B) {
		c := newTestConverter(b, cols)
		b.SetBytes(int64(size))
		b.ReportAllocs()
		for b.Loop() {
			batch, failed := c.convert(recs, nil)
			if len(failed) > 0 {
				b.Fatal(failed[0].Err)
			}
			batch.Release()
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(recs)), "ns/record")
	})
	// With evolve on and every field a column: what evolve costs once the table has caught up.
	b.Run("scanner-evolve", func(b *testing.B) {
		c := newTestConverter(b, cols)
		var known []string
		for _, col := range cols {
			known = append(known, col.name)
		}
		c.evolving(known)
		b.SetBytes(int64(size))
		b.ReportAllocs()
		for b.Loop() {
			batch, failed := c.convert(recs, nil)
			if len(failed) > 0 || len(c.found) > 0 {
				b.Fatal(failed, c.found)
			}
			batch.Release()
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(recs)), "ns/record")
	})
	b.Run("encoding-json", func(b *testing.B) {
		c := newTestConverter(b, cols)
		b.SetBytes(int64(size))
		b.ReportAllocs()
		for b.Loop() {
			batch := mapConvert(b, c.bld, recs)
			batch.Release()
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(recs)), "ns/record")
	})
}

// mapConvert is the alternative the converter replaces.
func mapConvert(b *testing.B, bld *array.RecordBuilder, recs []connector.Record) arrow.RecordBatch {
	seq := bld.Field(0).(*array.Int64Builder)
	com := bld.Field(1).(*array.StringBuilder)
	price := bld.Field(2).(*array.Float64Builder)
	ts := bld.Field(3).(*array.TimestampBuilder)
	pad := bld.Field(4).(*array.StringBuilder)
	for _, r := range recs {
		var m map[string]any
		if err := json.Unmarshal(r.Value, &m); err != nil {
			b.Fatal(err)
		}
		seq.Append(int64(m["seq"].(float64)))
		com.Append(m["commodity"].(string))
		price.Append(m["price"].(float64))
		tm, err := time.Parse(time.RFC3339Nano, m["ts"].(string))
		if err != nil {
			b.Fatal(err)
		}
		ts.Append(arrow.Timestamp(tm.UnixMicro()))
		pad.Append(m["pad"].(string))
	}
	return bld.NewRecordBatch()
}

// TestConvertFindsNewFields: with evolve, the converter lists the top-level fields no column
// reads, typed from their values in the batch, and leaves out nulls, the fields of refused
// records, the first fields of `from` paths, other known names and keys that cannot be names.
func TestConvertFindsNewFields(t *testing.T) {
	cols, err := parseColumns([]columnConfig{
		{Name: "seq", Type: "long", Required: true},
		{Name: "price", Type: "double", From: "quote.price"},
	}, true)
	if err != nil {
		t.Fatal(err)
	}
	c := newTestConverter(t, cols)
	c.evolving([]string{"seq", "price", "legacy"})
	recs := []connector.Record{
		{Value: []byte(`{"seq":1,"quote":{"price":1.5,"venue":"x"},"n":1,"s":"a","b":true,"o":{"k":[1]},"z":null,"legacy":5}`)},
		{Value: []byte(`{"seq":2,"n":2.5,"a":[],"ts":"2026-12-01T00:00:00Z","big":123456789012345678901,"only_null":null}`)},
		{Value: []byte(`{"seq":"bad","refused":1}`)},
		{Value: []byte(`{"seq":3,"":1,"a.b":2,"n":3,"s":4,"z":false,"\u0063":"escaped"}`)},
	}
	batch, failed := c.convert(recs, nil)
	if batch == nil || len(failed) != 1 || failed[0].Index != 2 {
		t.Fatalf("failed = %v; want record 2 only", failed)
	}
	batch.Release()
	var got []string
	for _, f := range c.found {
		got = append(got, f.name+" "+typeOfKind(f.kind).String())
	}
	want := "n double, s string, b boolean, o string, a string, ts string, big double, z boolean, c string"
	if strings.Join(got, ", ") != want {
		t.Errorf("found %s\nwant  %s", strings.Join(got, ", "), want)
	}
	// Once the fields are known (columns of the table), nothing is found.
	c.evolving([]string{"n", "s", "b", "o", "z"})
	if batch, _ := c.convert(recs[:1], nil); batch != nil {
		batch.Release()
	}
	if len(c.found) != 0 {
		t.Errorf("found %v after every field became known", c.found)
	}
}
