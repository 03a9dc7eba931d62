package postgres

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

func TestParseType(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		bad      bool
	}{
		{in: "text", want: "text"},
		{in: "Double  Precision", want: "double precision"},
		{in: "float8", want: "double precision"},
		{in: "varchar(32)", want: "varchar(32)"},
		{in: "character varying (8)", want: "varchar(8)"},
		{in: "numeric(12, 4)", want: "numeric(12,4)"},
		{in: "decimal", want: "numeric"},
		{in: "timestamp with time zone", want: "timestamptz"},
		{in: "timestamptz(3)", want: "timestamptz(3)"},
		{in: "int", want: "integer"},
		{in: "bool", want: "boolean"},
		{in: "jsonb", want: "jsonb"},
		{in: "interval", bad: true},
		{in: "text(3)", bad: true},
		{in: "numeric(1,2,3)", bad: true},
		{in: "text; drop table x", bad: true},
		{in: "", bad: true},
	} {
		got, err := parseType(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("parseType(%q) = %v; want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got.String() != tc.want {
			t.Errorf("parseType(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

// field converts one JSON value (or metadata input) to t and returns the field's bytes without
// the length, nil for NULL.
func field(t *testing.T, typ string, in input) ([]byte, error) {
	t.Helper()
	st, err := parseType(typ)
	if err != nil {
		t.Fatal(err)
	}
	out, err := st.appendField(nil, &in, pgtype.NewMap())
	if err != nil {
		return nil, err
	}
	n := int32(binary.BigEndian.Uint32(out))
	if n == -1 {
		return nil, nil
	}
	if int(n) != len(out)-4 {
		t.Fatalf("length %d, %d bytes follow", n, len(out)-4)
	}
	return out[4:], nil
}

// jsonInput reads a JSON value as the extractor would.
func jsonInput(t *testing.T, j string) input {
	t.Helper()
	var x extractor
	x.add([]string{"v"}, 0)
	ins := make([]input, 1)
	if err := x.extract([]byte(`{"v":`+j+`}`), ins); err != nil {
		t.Fatalf("extract %s: %v", j, err)
	}
	return ins[0]
}

func TestConvert(t *testing.T) {
	u64 := func(b []byte) uint64 { return binary.BigEndian.Uint64(b) }
	micros := func(s string) int64 {
		tm, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm.Sub(pgEpoch).Microseconds()
	}
	for _, tc := range []struct {
		typ, json string
		check     func([]byte) bool
		bad       string // part of the error, when the conversion must fail
	}{
		{typ: "text", json: `"gold"`, check: func(b []byte) bool { return string(b) == "gold" }},
		{typ: "text", json: `"caf\u00e9 \"x\""`, check: func(b []byte) bool { return string(b) == `café "x"` }},
		{typ: "text", json: `12.50`, check: func(b []byte) bool { return string(b) == "12.50" }},
		{typ: "text", json: `{"a": 1}`, check: func(b []byte) bool { return string(b) == `{"a": 1}` }},
		{typ: "text", json: `"a\u0000b"`, bad: "NUL"},
		{typ: "varchar(3)", json: `"abcd"`, bad: "more than varchar(3)"},
		{typ: "varchar(3)", json: `"äöü"`, check: func(b []byte) bool { return string(b) == "äöü" }},
		{typ: "text", json: `null`, check: func(b []byte) bool { return b == nil }},
		{typ: "bigint", json: `42`, check: func(b []byte) bool { return u64(b) == 42 }},
		{typ: "bigint", json: `-7`, check: func(b []byte) bool { return int64(u64(b)) == -7 }},
		{typ: "bigint", json: `"1234"`, check: func(b []byte) bool { return u64(b) == 1234 }},
		{typ: "bigint", json: `1e3`, check: func(b []byte) bool { return u64(b) == 1000 }},
		{typ: "bigint", json: `9223372036854775807`, check: func(b []byte) bool { return u64(b) == math.MaxInt64 }},
		{typ: "bigint", json: `1.5`, bad: "not an integer"},
		{typ: "bigint", json: `"abc"`, bad: "not an integer"},
		{typ: "bigint", json: `true`, bad: "not an integer"},
		{typ: "integer", json: `3000000000`, bad: "out of range for integer"},
		{typ: "smallint", json: `-32768`, check: func(b []byte) bool { return int16(binary.BigEndian.Uint16(b)) == -32768 }},
		{typ: "double precision", json: `12.5`, check: func(b []byte) bool { return math.Float64frombits(u64(b)) == 12.5 }},
		{typ: "double precision", json: `"NaN"`, check: func(b []byte) bool { return math.IsNaN(math.Float64frombits(u64(b))) }},
		{typ: "double precision", json: `"twelve"`, bad: "not a number"},
		{typ: "real", json: `1e300`, bad: "out of range"},
		{typ: "numeric(12,4)", json: `12.3456`, check: func(b []byte) bool { return len(b) > 8 }},
		{typ: "numeric", json: `"1e-3"`, check: func(b []byte) bool { return len(b) > 8 }},
		{typ: "numeric", json: `"x"`, bad: "not a number"},
		{typ: "boolean", json: `true`, check: func(b []byte) bool { return len(b) == 1 && b[0] == 1 }},
		{typ: "boolean", json: `"off"`, check: func(b []byte) bool { return len(b) == 1 && b[0] == 0 }},
		{typ: "boolean", json: `2`, bad: "not a boolean"},
		{typ: "timestamptz", json: `"2024-05-01T12:00:00.123Z"`, check: func(b []byte) bool { return int64(u64(b)) == micros("2024-05-01T12:00:00.123Z") }},
		{typ: "timestamptz", json: `"2024-05-01T14:00:00+02:00"`, check: func(b []byte) bool { return int64(u64(b)) == micros("2024-05-01T12:00:00Z") }},
		{typ: "timestamptz", json: `"2024-05-01 12:00:00"`, check: func(b []byte) bool { return int64(u64(b)) == micros("2024-05-01T12:00:00Z") }},
		{typ: "timestamptz", json: `1714564800123`, check: func(b []byte) bool { return int64(u64(b)) == micros("2024-05-01T12:00:00.123Z") }},
		{typ: "timestamptz", json: `"1714564800123"`, check: func(b []byte) bool { return int64(u64(b)) == micros("2024-05-01T12:00:00.123Z") }},
		{typ: "timestamptz", json: `"infinity"`, check: func(b []byte) bool { return int64(u64(b)) == math.MaxInt64 }},
		{typ: "timestamptz", json: `"yesterday"`, bad: "not a time"},
		{typ: "timestamptz", json: `"2024-13-01T00:00:00Z"`, bad: "not a time"},
		{typ: "date", json: `"2000-01-02"`, check: func(b []byte) bool { return binary.BigEndian.Uint32(b) == 1 }},
		{typ: "date", json: `"2000-01-02T23:30:00-05:00"`, check: func(b []byte) bool { return binary.BigEndian.Uint32(b) == 1 }},
		{typ: "date", json: `"1999-12-31"`, check: func(b []byte) bool { return int32(binary.BigEndian.Uint32(b)) == -1 }},
		{typ: "date", json: `"soon"`, bad: "not a date"},
		{typ: "jsonb", json: `{"a": [1, 2]}`, check: func(b []byte) bool { return string(b) == "\x01"+`{"a": [1, 2]}` }},
		{typ: "jsonb", json: `"s"`, check: func(b []byte) bool { return string(b) == "\x01"+`"s"` }},
		{typ: "json", json: `[1]`, check: func(b []byte) bool { return string(b) == `[1]` }},
		{typ: "uuid", json: `"6ba7b810-9dad-11d1-80b4-00c04fd430c8"`, check: func(b []byte) bool { return len(b) == 16 && b[0] == 0x6b && b[15] == 0xc8 }},
		{typ: "uuid", json: `"6ba7b810"`, bad: "not a UUID"},
		{typ: "bytea", json: `"aGVsbG8="`, check: func(b []byte) bool { return string(b) == "hello" }},
		{typ: "bytea", json: `"\\x68656c6c6f"`, check: func(b []byte) bool { return string(b) == "hello" }},
		{typ: "bytea", json: `"!!"`, bad: "not base64"},
	} {
		got, err := field(t, tc.typ, jsonInput(t, tc.json))
		if tc.bad != "" {
			if err == nil || !strings.Contains(err.Error(), tc.bad) {
				t.Errorf("%s from %s: got %q, %v; want an error containing %q", tc.typ, tc.json, got, err, tc.bad)
			}
			continue
		}
		if err != nil || !tc.check(got) {
			t.Errorf("%s from %s: got %x, %v", tc.typ, tc.json, got, err)
		}
	}
}

func TestConvertMetadata(t *testing.T) {
	// Bytes that are not JSON: text as they are, jsonb only when they are JSON, bytea as they are.
	if got, err := field(t, "text", input{kind: inBytes, s: []byte("k-1")}); err != nil || string(got) != "k-1" {
		t.Errorf("text from bytes: %q, %v", got, err)
	}
	if _, err := field(t, "jsonb", input{kind: inBytes, s: []byte("not json")}); err == nil || !strings.Contains(err.Error(), "not JSON") {
		t.Errorf("jsonb from non-JSON bytes: %v; want an error", err)
	}
	if got, err := field(t, "bytea", input{kind: inBytes, s: []byte{0, 1, 2}}); err != nil || string(got) != "\x00\x01\x02" {
		t.Errorf("bytea from bytes: %q, %v", got, err)
	}
	if _, err := field(t, "text", input{kind: inBytes, s: []byte{0xff}}); err == nil || !strings.Contains(err.Error(), "UTF-8") {
		t.Errorf("text from invalid UTF-8: %v; want an error", err)
	}
	ts := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	if got, err := field(t, "timestamptz", input{kind: inTime, t: ts}); err != nil || int64(binary.BigEndian.Uint64(got)) != ts.Sub(pgEpoch).Microseconds() {
		t.Errorf("timestamptz from a time: %x, %v", got, err)
	}
}

func TestExtract(t *testing.T) {
	var x extractor
	x.add([]string{"a"}, 0)
	x.add([]string{"q", "price"}, 1)
	x.add([]string{"q"}, 2)
	x.add([]string{"we\"ird"}, 3)
	x.add([]string{"z", "1", "a"}, 4)
	x.add([]string{"z", "0"}, 5)
	x.add([]string{"z", "7"}, 6)
	ins := make([]input, 7)
	value := `{ "z": [1, {"a": 9}], "a": "x\ny", "q": {"price": 1.5e2, "other": null}, "we\"ird": true, "a": "last" }`
	if err := x.extract([]byte(value), ins); err != nil {
		t.Fatal(err)
	}
	if ins[0].kind != inString || string(ins[0].s) != "last" {
		t.Errorf("a = %+v; want the last occurrence, \"last\"", ins[0])
	}
	if ins[1].kind != inNumber || string(ins[1].s) != "1.5e2" {
		t.Errorf("q.price = %+v", ins[1])
	}
	if ins[2].kind != inObject || string(ins[2].raw) != `{"price": 1.5e2, "other": null}` {
		t.Errorf("q = %q", ins[2].raw)
	}
	if ins[3].kind != inBool || !ins[3].b {
		t.Errorf("we\"ird = %+v", ins[3])
	}
	if ins[4].kind != inNumber || string(ins[4].s) != "9" || ins[5].kind != inNumber || string(ins[5].s) != "1" || ins[6].kind != inNull {
		t.Errorf("z.1.a, z.0, z.7 = %+v, %+v, %+v; want 9, 1 and nothing", ins[4], ins[5], ins[6])
	}
	for _, bad := range []string{``, `[]`, `"s"`, `{`, `{"a"}`, `{"a":1,}`, `{"a":01}`, `{"a":"\x"}`, `{"a":tru}`, `{"a":1} x`, `{"a":[1,]}`,
		`{"a":"` + "\x01" + `"}`, strings.Repeat(`{"a":`, 2000) + "1" + strings.Repeat("}", 2000)} {
		clear(ins)
		if err := x.extract([]byte(bad), ins); err == nil {
			t.Errorf("extract(%.40q) succeeded; want an error", bad)
		}
	}
}

// The extractor accepts what encoding/json accepts and decodes strings the same way.
func TestExtractAgreesWithEncodingJSON(t *testing.T) {
	for _, v := range []string{
		`"plain"`, `"esc \" \\ \/ \b \f \n \r \t"`, `"\u00e9\u4e2d"`, `"\ud83d\ude00"`, `"\ud83d"`, `"\udc00x"`, `"\ud83dx\u0041"`,
		`""`, `"caf\u00E9"`,
	} {
		var want string
		if err := json.Unmarshal([]byte(v), &want); err != nil {
			t.Fatal(err)
		}
		in := jsonInput(t, v)
		if string(in.s) != want {
			t.Errorf("%s decodes to %q; encoding/json says %q", v, in.s, want)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	base := func() map[string]any {
		return map[string]any{"dsn": "postgres://u@h/db", "table": "prices", "columns": map[string]any{"id": "bigint", "price": "double precision"}}
	}
	for _, tc := range []struct {
		name  string
		edit  func(m map[string]any)
		field string
	}{
		{"no columns", func(m map[string]any) { delete(m, "columns") }, "columns"},
		{"unknown type", func(m map[string]any) { m["columns"] = map[string]any{"x": "interval"} }, "columns.x"},
		{"column without type", func(m map[string]any) { m["columns"] = map[string]any{"x": map[string]any{"from": "a"}} }, "columns.x.type"},
		{"column unknown field", func(m map[string]any) { m["columns"] = map[string]any{"x": map[string]any{"type": "text", "as": "a"}} }, "columns.x.as"},
		{"bad from", func(m map[string]any) {
			m["columns"] = map[string]any{"x": map[string]any{"type": "text", "from": "a..b"}}
		}, "columns.x.from"},
		{"unknown metadata", func(m map[string]any) {
			m["columns"] = map[string]any{"x": map[string]any{"type": "text", "from": "@nope"}}
		}, "columns.x.from"},
		{"column a number", func(m map[string]any) { m["columns"] = map[string]any{"x": 3} }, "columns.x"},
		{"long column name", func(m map[string]any) { m["columns"] = map[string]any{strings.Repeat("c", 64): "text"} }, "columns." + strings.Repeat("c", 64)},
		{"reserved column", func(m map[string]any) { m["columns"] = map[string]any{seqColumn: "bigint"} }, "columns." + seqColumn},
		{"upsert without key", func(m map[string]any) { m["mode"] = "upsert" }, "key"},
		{"key not a column", func(m map[string]any) { m["key"] = []any{"nope"} }, "key[0]"},
		{"key twice", func(m map[string]any) { m["key"] = []any{"id", "id"} }, "key[1]"},
		{"bad table", func(m map[string]any) { m["table"] = "a.b.c" }, "table"},
		{"empty table part", func(m map[string]any) { m["table"] = "a." }, "table"},
		{"value_column also a column", func(m map[string]any) { m["value_column"] = "price" }, "value_column"},
		{"dead_letter with columns", func(m map[string]any) { m["layout"] = "dead_letter" }, "columns"},
		{"bad URL", func(m map[string]any) { m["dsn"] = "postgres://u:p@h:port/db" }, "dsn"},
		{"wrong scheme", func(m map[string]any) { m["dsn"] = "mysql://u@h/db" }, "dsn"},
		{"zero write_timeout", func(m map[string]any) { m["write_timeout"] = time.Duration(0) }, "write_timeout"},
		{"bad mode", func(m map[string]any) { m["mode"] = "merge" }, "mode"},
		{"evolve without create_table", func(m map[string]any) { m["evolve"] = true }, "evolve"},
		{"evolve with dead_letter", func(m map[string]any) {
			delete(m, "columns")
			m["layout"], m["evolve"], m["create_table"] = "dead_letter", true, true
		}, "evolve"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := base()
			tc.edit(m)
			cfg, err := sinkSpec.Config(m)
			if err == nil {
				_, err = NewSink(cfg, connector.Env{})
			}
			ce, ok := err.(*connector.ConfigError)
			if !ok {
				t.Fatalf("got %v (%T); want a *connector.ConfigError", err, err)
			}
			if ce.Field != tc.field {
				t.Fatalf("error names field %q (%v); want %q", ce.Field, ce, tc.field)
			}
			if strings.Contains(ce.Error(), "u:p@") {
				t.Fatalf("the error shows the dsn: %v", ce)
			}
		})
	}
}

func TestColumnOrderAndStatements(t *testing.T) {
	cfg, err := sinkSpec.Config(map[string]any{"dsn": "postgres://u@h/db", "table": "market.prices", "mode": "upsert", "key": []any{"id"},
		"columns": map[string]any{"price": "double precision", "id": "bigint", "commodity": map[string]any{"type": "text", "from": "c.name"}}, "value_column": "payload"})
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSink(cfg, connector.Env{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range s.cfg.cols {
		names = append(names, c.name)
	}
	if got := strings.Join(names, ","); got != "id,commodity,price,payload" {
		t.Errorf("column order %s; want key first, then by name, then the value column", got)
	}
	want := `INSERT INTO "market"."prices" ("id", "commodity", "price", "payload") SELECT DISTINCT ON ("id") "id", "commodity", "price", "payload" FROM pg_temp.sluice_stage ORDER BY "id", sluice_batch_seq DESC ON CONFLICT ("id") DO UPDATE SET "commodity" = EXCLUDED."commodity", "price" = EXCLUDED."price", "payload" = EXCLUDED."payload"`
	if s.sql.upsert != want {
		t.Errorf("upsert statement\n%s\nwant\n%s", s.sql.upsert, want)
	}
	if s.cfg.positions.String() != "market.sluice_positions" {
		t.Errorf("positions table %s; want it in the table's schema", s.cfg.positions)
	}
}

func TestSplit(t *testing.T) {
	for _, tc := range []struct {
		sp   span
		line int
		want []span
	}{
		{span{0, 10}, 4, []span{{4, 10}, {3, 4}, {0, 3}}},
		{span{5, 10}, 1, []span{{6, 10}, {5, 6}}},
		{span{5, 10}, 5, []span{{9, 10}, {5, 9}}},
		{span{0, 10}, 0, []span{{5, 10}, {0, 5}}},
		{span{0, 10}, 11, []span{{5, 10}, {0, 5}}},
		{span{3, 4}, 1, []span{{3, 4}}},
	} {
		got := split(tc.sp, tc.line)
		if len(got) != len(tc.want) {
			t.Errorf("split(%v, %d) = %v; want %v", tc.sp, tc.line, got, tc.want)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("split(%v, %d) = %v; want %v", tc.sp, tc.line, got, tc.want)
			}
		}
	}
}
