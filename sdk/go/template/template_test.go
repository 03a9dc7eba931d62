package template

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

func record() *connector.Record {
	return &connector.Record{
		Key:      []byte("k-1"),
		Value:    []byte(`{"commodity":"corn","price":4.25,"ok":true,"nested":{"a":{"b":"deep"}},"items":[{"sku":"x1"},{"sku":"x2"}],"esc":"a\"b\u00e9","null":null,"obj":{ "x" : [1, 2] },"key":"field-named-key"}`),
		Headers:  []connector.Header{{Key: "trace-id", Value: []byte("t9")}, {Key: "trace-id", Value: []byte("second")}},
		Time:     time.Date(2026, 3, 4, 5, 6, 7, 891_000_000, time.FixedZone("x", 3600)),
		Position: connector.Position{Partition: "prices/3", Offset: 42},
	}
}

func TestRender(t *testing.T) {
	cases := []struct{ tmpl, want string }{
		{"price:{{commodity}}", "price:corn"},
		{"{{ commodity }}-{{price}}", "corn-4.25"},
		{"{{value.nested.a.b}}", "deep"},
		{"{{nested.a.b}}", "deep"},
		{"{{items.1.sku}}", "x2"},
		{"{{ok}}", "true"},
		{"{{esc}}", `a"bé`},
		{"{{obj}}", `{"x":[1,2]}`},
		{"{{key}}", "k-1"},
		{"{{value.key}}", "field-named-key"},
		{"{{header.trace-id}}", "t9"},
		{"{{partition}}@{{offset}}", "prices/3@42"},
		{"{{time}}", "2026-03-04T04:06:07.891Z"},
		{"{{time_ms}}", "1772597167891"},
		{`lit {{"{{"}}x{{"}}"}}`, "lit {{x}}"},
		{"plain", "plain"},
		{"", ""},
	}
	r := record()
	for _, c := range cases {
		tm, err := Parse(c.tmpl)
		if err != nil {
			t.Errorf("Parse(%q): %v", c.tmpl, err)
			continue
		}
		got, err := tm.Render(r)
		if err != nil || got != c.want {
			t.Errorf("Render(%q) = %q, %v; want %q", c.tmpl, got, err, c.want)
		}
	}
}

func TestWholeValue(t *testing.T) {
	r := &connector.Record{Value: []byte(`  {"a": 1}  `)}
	got, err := MustParse("{{value}}").Render(r)
	if err != nil || got != `{"a":1}` {
		t.Fatalf("got %q, %v", got, err)
	}
	r.Value = []byte(`"text"`)
	if got, _ := MustParse("{{value}}").Render(r); got != "text" {
		t.Fatalf("string value: got %q", got)
	}
}

func TestStatic(t *testing.T) {
	if s, ok := MustParse("prices").Static(); !ok || s != "prices" {
		t.Fatalf("Static = %q, %v", s, ok)
	}
	if s, ok := MustParse(`a{{"{{"}}b`).Static(); !ok || s != "a{{b" {
		t.Fatalf("Static with a quoted literal = %q, %v", s, ok)
	}
	if _, ok := MustParse("p-{{key}}").Static(); ok {
		t.Fatal("a template with a placeholder is not static")
	}
}

func TestReadsHeaders(t *testing.T) {
	for text, want := range map[string]bool{"prices": false, "p-{{key}}-{{partition}}-{{a.b}}": false, `{{"{{header.x}}"}}`: false,
		"p-{{header.trace}}": true, "{{value}}{{header.kafka_offset}}": true} {
		if got := MustParse(text).ReadsHeaders(); got != want {
			t.Errorf("%q: ReadsHeaders = %v, want %v", text, got, want)
		}
	}
}

func TestRenderErrors(t *testing.T) {
	r := record()
	cases := []struct{ tmpl, want string }{
		{"{{missing}}", "field missing missing in the value"},
		{"{{nested.a.c}}", "field nested.a.c missing"},
		{"{{null}}", "field null missing"},
		{"{{items.5.sku}}", "missing"},
		{"{{commodity.x}}", "missing"},
		{"{{header.nope}}", `no header "nope"`},
	}
	for _, c := range cases {
		_, err := MustParse(c.tmpl).Render(r)
		var re *RenderError
		if !errors.As(err, &re) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Render(%q) error = %v; want a RenderError containing %q", c.tmpl, err, c.want)
		}
	}
	bad := []string{`{"a":`, `{"a" 1}`, `not json`, `{"a":tru}`, `{"x":01,"a":1}`, `{"x":"\u0001` + "\x01" + `","a":1}`}
	for _, v := range bad {
		_, err := MustParse("{{a}}").Render(&connector.Record{Value: []byte(v)})
		if err == nil || !strings.Contains(err.Error(), "not JSON") {
			t.Errorf("value %q: error = %v; want not JSON", v, err)
		}
	}
	if _, err := MustParse("{{time}}").Render(&connector.Record{}); err == nil {
		t.Error("{{time}} of a record without time must fail")
	}
	if _, err := MustParse("{{key}}").Render(&connector.Record{}); err == nil {
		t.Error("{{key}} of a record without key must fail")
	}
}

func TestSyntaxErrors(t *testing.T) {
	cases := []struct {
		tmpl   string
		offset int
		want   string
	}{
		{"a{{b", 1, "not closed"},
		{"a}}b", 1, "without a matching"},
		{"{{}}", 2, "empty placeholder"},
		{"{{a b}}", 2, "is not a placeholder"},
		{"{{key.x}}", 2, "{{value.key.x}}"},
		{"{{header}}", 2, "header needs a name"},
		{"{{a..b}}", 2, "empty field name"},
		{"{{a{{b}}", 3, "do not nest"},
		{`{{"x}}`, 2, "unterminated quoted"},
		{`{{"x" y}}`, 6, `expected "}}"`},
	}
	for _, c := range cases {
		_, err := Parse(c.tmpl)
		var se *SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("Parse(%q) = %v; want a SyntaxError", c.tmpl, err)
			continue
		}
		if se.Offset != c.offset || !strings.Contains(se.Msg, c.want) {
			t.Errorf("Parse(%q) = offset %d %q; want offset %d containing %q", c.tmpl, se.Offset, se.Msg, c.offset, c.want)
		}
	}
}

func TestParseField(t *testing.T) {
	_, err := ParseField("key", "price:{{")
	var ce *connector.ConfigError
	if !errors.As(err, &ce) || ce.Field != "key" || ce.Hint == "" {
		t.Fatalf("ParseField error = %#v", err)
	}
	if _, err := ParseField("key", "price:{{commodity}}"); err != nil {
		t.Fatal(err)
	}
}

// TestLookupAgreesWithEncodingJSON checks Lookup against a full decode on documents with every
// kind of value in front of the field looked up.
func TestLookupAgreesWithEncodingJSON(t *testing.T) {
	docs := []string{
		`{"s":"x\"}{[","n":-1.5e+3,"t":true,"f":false,"z":null,"o":{"p":[1,{"q":"}"}]},"a":[[],{}],"target":{"k":"v"}}`,
		"{\n \"target\" :\t[1 , 2]\n}",
		`{"a\u0062":1,"target":"\u00e9\n"}`,
		`{"target":0}`,
	}
	for _, d := range docs {
		raw, ok, err := Lookup([]byte(d), []string{"target"})
		if err != nil || !ok {
			t.Fatalf("Lookup(%s) = %v, %v", d, ok, err)
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal([]byte(d), &m); err != nil {
			t.Fatal(err)
		}
		if string(raw) != string(m["target"]) {
			t.Errorf("Lookup(%s) = %s; encoding/json says %s", d, raw, m["target"])
		}
	}
	if raw, ok, _ := Lookup([]byte(`{"a\u0062":7}`), []string{"ab"}); !ok || string(raw) != "7" {
		t.Errorf("escaped member name: %s %v", raw, ok)
	}
}

func TestAppendDoesNotAllocate(t *testing.T) {
	tm := MustParse("price:{{commodity}}:{{partition}}")
	r := record()
	buf := make([]byte, 0, 256)
	allocs := testing.AllocsPerRun(100, func() {
		var err error
		buf, err = tm.Append(buf[:0], r)
		if err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("Append allocates %v times per record", allocs)
	}
}

func FuzzLookup(f *testing.F) {
	f.Add([]byte(`{"a":{"b":[1,"x"]}}`), "a.b.1")
	f.Add([]byte(`{"a":"\u00e9"}`), "a")
	f.Fuzz(func(t *testing.T, doc []byte, path string) {
		raw, ok, err := Lookup(doc, strings.Split(path, "."))
		if err == nil && ok && !json.Valid(raw) && json.Valid(doc) {
			t.Fatalf("Lookup returned invalid JSON %q from a valid document", raw)
		}
	})
}

func BenchmarkRender(b *testing.B) {
	tm := MustParse("price:{{commodity}}")
	r := &connector.Record{Value: []byte(`{"ts":1767225600000,"price":4.2512,"unit":"USD/bu","commodity":"corn","source":"cbot"}`)}
	buf := make([]byte, 0, 64)
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = tm.Append(buf[:0], r)
	}
}
