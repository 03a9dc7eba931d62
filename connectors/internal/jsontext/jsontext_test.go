package jsontext

import (
	"encoding/json"
	"fmt"
	"testing"
)

func TestSplitArrayAgreesWithEncodingJSON(t *testing.T) {
	for _, in := range []string{
		`[]`, ` [ ] `, `[1]`, `[1,2,3]`, ` [ {"a":[1,2]} , "x,]\"" ,[3,{"b":[]}], null, true, -1.5e3 ] `,
		`[{"s":"{[\\"},{"t":"\u005d"}]`, `[[],[[]],{}]`,
	} {
		var want []json.RawMessage
		if err := json.Unmarshal([]byte(in), &want); err != nil {
			t.Fatal(err)
		}
		got := SplitArray([]byte(in))
		if fmt.Sprintf("%s", got) != fmt.Sprintf("%s", want) {
			t.Errorf("SplitArray(%s) = %s, want %s", in, got, want)
		}
	}
}

func FuzzSplitArray(f *testing.F) {
	for _, s := range []string{`[1,"a",{"b":[2]}]`, `["\\",","]`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		var want []json.RawMessage
		if json.Unmarshal([]byte(in), &want) != nil {
			return
		}
		got := SplitArray([]byte(in))
		if len(got) != len(want) {
			t.Fatalf("SplitArray(%q): %d elements, want %d", in, len(got), len(want))
		}
		for i := range got {
			if string(got[i]) != string(want[i]) {
				t.Fatalf("SplitArray(%q)[%d] = %q, want %q", in, i, got[i], want[i])
			}
		}
	})
}

func TestLines(t *testing.T) {
	var got []string
	Lines([]byte("a\n\n  b \r\nc"), func(l []byte, n int) bool { got = append(got, fmt.Sprintf("%d:%s", n, l)); return true })
	if fmt.Sprint(got) != "[1:a 3:b 4:c]" {
		t.Fatal(got)
	}
}
