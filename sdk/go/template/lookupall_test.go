package template

import (
	"bytes"
	"fmt"
	"testing"
)

// LookupAll must give, for each path, exactly what Lookup gives: the raw text, ok, and the same
// error (message and byte) on broken documents, including every truncation of valid ones.
func TestLookupAllAgreesWithLookup(t *testing.T) {
	docs := []string{
		`{"seq":1,"commodity":"k000123","price":12.34,"ts":1767225600000,"venue":"XCME"}`,
		`  {"ts" : "2026-01-01T00:00:00Z" , "commodity" : {"a":[1,2,{"b":null}]}, "x":true}  `,
		`{"commodity":null,"ts":5}`,
		`{"commodity":"a","commodity":"b","ts":1,"ts":2}`,
		`{"comm\u006fdity":"esc","t\u0073":7}`,
		`{"a":{"commodity":"nested"},"ts":[1,2]}`,
		`{}`, `{ }`, `[]`, `[1,2]`, `"text"`, `12`, `null`, ``, `   `,
		`{"commodity":"a" "ts":1}`, `{"commodity" "a"}`, `{commodity:1}`, `{"ts":1,}`,
		`{"commodity":tru,"ts":1}`, `{"commodity":01,"ts":1}`, `{"commodity":"a\x01","ts":1}`,
		`{"commodity":"a","ts":-1.5e3}`, `{"x":"}{","commodity":"]","ts":"\"q\""}`,
		`{"commodity":[1,{"ts":2}],"ts":3}`, `{"a":1}garbage`, `{"commodity":1}{"ts":2}`,
	}
	// Every prefix of the valid ones, and a byte broken at each position of the first.
	base := docs[0]
	for i := range len(base) {
		docs = append(docs, base[:i])
		b := []byte(base)
		b[i] = '#'
		docs = append(docs, string(b))
	}
	pathSets := [][][]string{
		{{"commodity"}, {"ts"}},
		{{"ts"}, {"commodity"}},
		{{"commodity"}, {"commodity"}},
		{{"missing"}, {"ts"}},
		{{"seq"}},
		{},
		{{"commodity"}, {"ts"}, {"venue"}, {"price"}, {"nope"}},
		{{"a", "commodity"}, {"ts"}},        // a nested path: one Lookup per path
		{{"commodity", "0"}, {"ts"}, {"x"}}, // array index
	}
	out := make([]Field, 8)
	for _, doc := range docs {
		for _, paths := range pathSets {
			got := out[:len(paths)]
			LookupAll([]byte(doc), paths, got)
			for k, p := range paths {
				raw, ok, err := Lookup([]byte(doc), p)
				g := got[k]
				if !bytes.Equal(g.Raw, raw) || g.OK != ok || fmt.Sprint(g.Err) != fmt.Sprint(err) {
					t.Errorf("doc %q, paths %q, path %q: LookupAll gave (%q, %v, %v), Lookup (%q, %v, %v)",
						doc, paths, p, g.Raw, g.OK, g.Err, raw, ok, err)
				}
			}
		}
	}
}

func TestLookupAllReusesOut(t *testing.T) {
	out := make([]Field, 2)
	paths := [][]string{{"k"}, {"t"}}
	LookupAll([]byte(`{"k":"a","t":1}`), paths, out)
	if !out[0].OK || !out[1].OK {
		t.Fatalf("first lookup: %+v", out)
	}
	LookupAll([]byte(`{"x":1}`), paths, out)
	if out[0].OK || out[1].OK || out[0].Raw != nil || out[0].Err != nil {
		t.Fatalf("second lookup kept the first's results: %+v", out)
	}
	doc := []byte(`{"k":"a","t":1}`)
	if n := testing.AllocsPerRun(100, func() { LookupAll(doc, paths, out) }); n != 0 {
		t.Fatalf("LookupAll allocates %v times per call", n)
	}
}
