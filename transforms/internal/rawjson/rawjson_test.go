package rawjson

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestValid(t *testing.T) {
	tests := []struct {
		doc  string
		want bool
	}{
		{`{}`, true},
		{` {"a":[1,-2.5e3,"x\u00e9",true,false,null,{}]} `, true},
		{`"s"`, true},
		{`{"a":1,}`, false},
		{`{"a":01}`, false},
		{`{"a":"\x"}`, false},
		{"{\"a\":\"\x01\"}", false},
		{"{\"a\":\"\xff\"}", false}, // invalid UTF-8
		{`{"a":1} {}`, false},
		{``, false},
		{strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth), true},
		{strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1), false},
	}
	for _, tc := range tests {
		t.Run(tc.doc, func(t *testing.T) {
			if got := Valid([]byte(tc.doc)); got != tc.want {
				t.Fatalf("Valid = %v, want %v", got, tc.want)
			}
			// encoding/json agrees, except that it accepts invalid UTF-8 and any depth.
			if std := json.Valid([]byte(tc.doc)); std != tc.want && len(tc.doc) < 100 && !strings.Contains(tc.doc, "\xff") {
				t.Fatalf("encoding/json says %v", std)
			}
		})
	}
}

func TestFindAll(t *testing.T) {
	doc := []byte(`{"user":{"email":"a@x","phone":"1"},"email":"top","us\u0065r":{"phone":2},"list":[{"email":"no"}]}`)
	tests := []struct {
		path string
		want []string
	}{
		{"email", []string{`"top"`}},
		{"user.phone", []string{`"1"`, `2`}},
		{"user", []string{`{"email":"a@x","phone":"1"}`, `{"phone":2}`}},
		{"list.email", nil},
		{"missing", nil},
		{"email.deeper", nil},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			var got []string
			for _, s := range FindAll(doc, strings.Split(tc.path, "."), nil) {
				got = append(got, string(doc[s.Start:s.End]))
			}
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestElementsAndStrings(t *testing.T) {
	arr := []byte(`[ 1 , {"a":[2]} ,"x" ]`)
	var got []string
	if err := Elements(arr, func(s, e int) bool { got = append(got, string(arr[s:e])); return true }); err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, "|") != `1|{"a":[2]}|"x"` {
		t.Fatalf("elements %q", got)
	}
	s := "q\"\\\n\t\x01é<>"
	enc := AppendString(nil, s)
	if back, ok := Unquote(enc); !ok || back != s {
		t.Fatalf("round trip %q -> %s -> %q", s, enc, back)
	}
	if u, ok := Unquote([]byte(`"a\u0062c"`)); !ok || u != "abc" {
		t.Fatalf("Unquote = %q", u)
	}
}
