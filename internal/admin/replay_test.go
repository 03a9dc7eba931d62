package admin_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/internal/admin"
	"github.com/sluicehq/sluice/runtime/supervisor"
)

// ReplayDeadLetters of the fake notes the selection it got and answers as if each selected
// letter was delivered.
func (f *fakeRuntime) ReplayDeadLetters(_ context.Context, name string, sel supervisor.ReplaySelection) (supervisor.ReplayResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.find(name); err != nil {
		return supervisor.ReplayResult{}, err
	}
	if f.dlq[name] == "" {
		return supervisor.ReplayResult{}, fmt.Errorf("pipeline %q: %w", name, supervisor.ErrNoDeadLetterFile)
	}
	f.calls = append(f.calls, fmt.Sprintf("replay %s %v all=%t force=%t", name, sel.Indexes, sel.All, sel.Force))
	if !sel.Force && len(sel.Indexes) > 0 && sel.Indexes[0] == 7 {
		return supervisor.ReplayResult{}, fmt.Errorf("%w: dead letters 7 were replayed before; send force: true to replay them again", supervisor.ErrAlreadyReplayed)
	}
	n := len(sel.Indexes)
	return supervisor.ReplayResult{Pipeline: name, File: f.dlq[name], Selected: n, Replayed: n, Delivered: n,
		NewDeadLetters: []int{}, Skipped: []supervisor.SkippedLetter{}}, nil
}

// Bad replay requests are refused with a status and a message that says what to send; good ones
// reach the runtime with their selection.
func TestReplayRequests(t *testing.T) {
	rt := newFake()
	rt.dlq = map[string]string{"orders": filepath.Join(t.TempDir(), "dlq.jsonl")}
	base := newServer(t, rt, "s3cret").URL + "/api/v1/pipelines/"
	for _, tc := range []struct {
		name, pipeline, token, body string
		code                        int
		msg                         string
	}{
		{"no token", "orders", "", `{"all": true}`, 401, "bearer token"},
		{"wrong token", "orders", "nope", `{"all": true}`, 401, "bearer token"},
		{"unknown pipeline", "nope", "s3cret", `{"all": true}`, 404, "no such pipeline"},
		{"no file dead-letter sink", "broken", "s3cret", `{"all": true}`, 409, "dead_letter sink of type file"},
		{"empty body", "orders", "s3cret", ``, 400, `{"indexes": [0, 4]}`},
		{"not JSON", "orders", "s3cret", `indexes=1`, 400, "JSON object"},
		{"unknown field", "orders", "s3cret", `{"offsets": [1]}`, 400, `unknown field "offsets"`},
		{"no selection", "orders", "s3cret", `{}`, 400, "select the dead letters one way"},
		{"two selections", "orders", "s3cret", `{"indexes": [1], "all": true}`, 400, "one way"},
		{"half a range", "orders", "s3cret", `{"from": 3}`, 400, `both "from" and "to"`},
		{"empty range", "orders", "s3cret", `{"from": 3, "to": 3}`, 400, "0 <= from < to"},
		{"negative index", "orders", "s3cret", `{"indexes": [-1]}`, 400, "start at 0"},
		{"huge range", "orders", "s3cret", `{"from": 0, "to": 1000000}`, 400, "at most 10000"},
		{"replayed before", "orders", "s3cret", `{"indexes": [7]}`, 409, "force"},
		{"range", "orders", "s3cret", `{"from": 2, "to": 5}`, 200, `"replayed": 3`},
		{"indexes, forced", "orders", "s3cret", `{"indexes": [7, 1, 7], "force": true}`, 200, `"replayed": 2`},
		{"all", "orders", "s3cret", `{"all": true}`, 200, `"replayed": 0`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := do(t, "POST", base+tc.pipeline+"/dead-letters/replay", tc.token, tc.body)
			text := body
			if code != 200 {
				var e admin.Error
				if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error == "" {
					t.Fatalf("= %d, a body that is not an Error: %s", code, body)
				}
				text = e.Error
			}
			if code != tc.code || !strings.Contains(text, tc.msg) {
				t.Fatalf("= %d %s, want %d with %q", code, text, tc.code, tc.msg)
			}
		})
	}
	want := []string{"replay orders [7] all=false force=false", "replay orders [2 3 4] all=false force=false",
		"replay orders [7 1] all=false force=true", "replay orders [] all=true force=false"}
	if fmt.Sprint(rt.calls) != fmt.Sprint(want) {
		t.Fatalf("runtime calls:\n  %s\nwant\n  %s", strings.Join(rt.calls, "\n  "), strings.Join(want, "\n  "))
	}
}

// The browse shows the mark of a replayed dead letter, and only on the line it was made for.
func TestDeadLettersShowReplayMarks(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "dlq.jsonl")
	lines := []string{
		`{"pipeline":"orders","stage":"validate","kind":"rejected","reason":"r0","offset":1,"value":"a"}`,
		`{"pipeline":"orders","stage":"validate","kind":"rejected","reason":"r1","offset":2,"value":"b"}`,
		`{"pipeline":"orders","stage":"validate","kind":"rejected","reason":"r2","offset":3,"value":"c"}`,
	}
	if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	digest := func(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:16]) }
	marks := []supervisor.ReplayMark{
		{Index: 0, SHA256: digest(lines[0]), Replay: "r-1", Outcome: "delivered"},
		{Index: 2, SHA256: digest("another line once at index 2"), Replay: "r-1", Outcome: "delivered"},
	}
	var idx strings.Builder
	for _, mk := range marks {
		b, _ := json.Marshal(mk)
		idx.Write(b)
		idx.WriteByte('\n')
	}
	idx.WriteString(`{"index": 1, "sha2`) // torn by a crash: not a mark
	if err := os.WriteFile(supervisor.ReplayIndexPath(file), []byte(idx.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	rt := newFake()
	rt.dlq = map[string]string{"orders": file}
	code, body := do(t, "GET", newServer(t, rt, "").URL+"/api/v1/pipelines/orders/dead-letters", "", "")
	var page admin.DeadLetterPage
	if code != 200 || json.Unmarshal([]byte(body), &page) != nil || len(page.DeadLetters) != 3 {
		t.Fatalf("browse = %d %s", code, body)
	}
	for i, d := range page.DeadLetters {
		if marked := d.Replayed != nil; marked != (i == 0) {
			t.Errorf("dead letter %d: replayed mark %+v", i, d.Replayed)
		}
	}
	if mk := page.DeadLetters[0].Replayed; mk == nil || mk.Replay != "r-1" || mk.Outcome != "delivered" {
		t.Fatalf("mark = %+v", mk)
	}
}
