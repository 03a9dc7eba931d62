package schema

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"unicode/utf8"
)

// plain turns parseJSON's values into encoding/json's (objects as maps, the last of a repeated key).
func plain(v any) any {
	switch x := v.(type) {
	case jsonObject:
		m := map[string]any{}
		for _, kv := range x {
			m[kv.key] = plain(kv.val)
		}
		return m
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = plain(e)
		}
		return out
	}
	return v
}

func checkParse(t *testing.T, b []byte) {
	got, err := parseJSON(b)
	if valid := json.Valid(b); (err == nil) != valid {
		t.Fatalf("parseJSON(%q): err = %v, but json.Valid = %v", b, err, valid)
	}
	if err != nil || !utf8.Valid(b) {
		return
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var want any
	if err := d.Decode(&want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(plain(got), want) {
		t.Fatalf("parseJSON(%q) = %#v, encoding/json reads %#v", b, plain(got), want)
	}
}

var parseCases = []string{
	`null`, ` true `, `false`, `0`, `-0`, `-12.5e+3`, `1E2`, `"x"`, `""`, `"a\"b\\c\/d\b\f\n\r\t"`, `"\u00e9\ud83d\ude00"`,
	`"\ud83d"`, `"\udc00x"`, `{}`, `[]`, `{"a":1,"a":2}`, `[1,[2,[3,{}]]]`, `{"k":{"n":null}}`, "\"caf\u00e9\"",
	`01`, `1.`, `.5`, `-`, `+1`, `1e`, `tru`, `nul`, `[1,]`, `{"a":1,}`, `{"a"}`, `{a:1}`, `"\x"`, "\"a\tb\"", `"\u12"`,
	`[1] [2]`, `{"a":1}x`, ``, `   `, `"unterminated`, `[`, `{"a":`, `"\`,
}

func TestParseJSONAgreesWithEncodingJSON(t *testing.T) {
	for _, c := range parseCases {
		checkParse(t, []byte(c))
	}
}

func FuzzParseJSON(f *testing.F) {
	for _, c := range parseCases {
		f.Add([]byte(c))
	}
	f.Fuzz(checkParse)
}
