package main_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/testenv"
)

// replayResult is the body of POST .../dead-letters/replay, in the fields the test reads.
type replayResult struct {
	Selected       int    `json:"selected"`
	Replayed       int    `json:"replayed"`
	Delivered      int    `json:"delivered"`
	DeadLettered   int    `json:"dead_lettered"`
	NotDelivered   int    `json:"not_delivered"`
	NewDeadLetters []int  `json:"new_dead_letters"`
	Error          string `json:"error"`
}

// deadLetterPage is the browse of the dead letters, in the fields the test reads.
type deadLetterPage struct {
	Total       int `json:"total"`
	DeadLetters []struct {
		Index    int `json:"index"`
		Envelope struct {
			Stage, Kind, Reason, Value string
		} `json:"envelope"`
		Replayed *struct {
			Outcome    string `json:"outcome"`
			DeadLetter *int   `json:"dead_letter"`
		} `json:"replayed"`
	} `json:"dead_letters"`
}

// TestReplayDeadLettersPostgresIntegration: orders flow from a followed file into a Postgres
// table whose foreign key needs their customer to exist. The orders of customers not yet known
// are refused by the database and go to a file dead-letter sink. Once customer 2 exists, a replay
// through the admin API writes its orders into the table, once; the order of customer 3, still
// unknown, goes to the dead letters again with the database's reason. A second replay of the
// same letters answers 409; after customer 3 appears, a replay of all (those not replayed yet)
// delivers the new letter alone;
// the pipeline keeps running between replays; every order is in the table exactly once.
func TestReplayDeadLettersPostgresIntegration(t *testing.T) {
	dsn := testenv.Require(t, "PG_DSN")
	suffix := strconv.FormatInt(time.Now().UnixNano(), 36)
	customers, orders := "replay_customers_"+suffix, "replay_orders_"+suffix
	psqlRun(t, dsn, fmt.Sprintf(`CREATE TABLE %s (id bigint PRIMARY KEY); INSERT INTO %s VALUES (1);
CREATE TABLE %s (id bigint, customer bigint REFERENCES %s (id))`, customers, customers, orders, customers))
	t.Cleanup(func() { psqlRun(t, dsn, fmt.Sprintf("DROP TABLE IF EXISTS %s, %s", orders, customers)) })

	dir := t.TempDir()
	in := filepath.Join(dir, "orders.jsonl")
	var text strings.Builder
	for id, customer := range []int{1, 2, 1, 3, 2, 1} {
		fmt.Fprintf(&text, `{"id": %d, "customer": %d}`+"\n", id+1, customer)
	}
	writeFile(t, in, text.String())
	dlq := filepath.Join(dir, "dead.jsonl")
	manifest := writeFile(t, filepath.Join(dir, "orders.yaml"), fmt.Sprintf(`apiVersion: sluice.dev/v1
kind: Pipeline
metadata: {name: orders}
spec:
  source: {type: file, config: {path: %q, follow: true}}
  sinks:
    - {name: db, type: postgres, config: {dsn: %q, table: %s, columns: {id: bigint, customer: bigint}}}
  dead_letter: {type: file, config: {path: %q}}
`, in, dsn, orders, dlq))
	addr, token := freeAddr(t), "replay-token"
	r := startSluice(t, []string{"SLUICE_ADMIN_TOKEN=" + token}, "run", "--data-dir", filepath.Join(dir, "data"), "--admin-addr", addr, manifest)
	base := "http://" + addr + "/api/v1/pipelines/orders/dead-letters"
	ids := func() string {
		return psqlRun(t, dsn, fmt.Sprintf("SELECT coalesce(string_agg(id::text, ',' ORDER BY id), '') FROM %s", orders))
	}
	browse := func() deadLetterPage {
		t.Helper()
		code, body := call(t, "GET", base, token, "")
		var p deadLetterPage
		if code != 200 || json.Unmarshal([]byte(body), &p) != nil {
			t.Fatalf("browse = %d %s", code, body)
		}
		return p
	}
	replay := func(body string, wantCode int) (replayResult, string) {
		t.Helper()
		code, resp := call(t, "POST", base+"/replay", token, body)
		if code != wantCode {
			t.Fatalf("replay %s = %d %s, want %d; stderr:\n%s", body, code, resp, wantCode, r.stderr)
		}
		var res replayResult
		if code == 200 {
			if err := json.Unmarshal([]byte(resp), &res); err != nil {
				t.Fatalf("replay %s: %v: %s", body, err, resp)
			}
		}
		return res, resp
	}

	until(t, "three orders stored and three refused", r.done, r.stderr, func() bool {
		code, body := call(t, "GET", base, token, "")
		var p deadLetterPage
		return code == 200 && json.Unmarshal([]byte(body), &p) == nil && p.Total == 3 && ids() == "1,3,6"
	})
	for i, d := range browse().DeadLetters {
		if d.Envelope.Kind != "sink_failed" || d.Envelope.Stage != "db" || !strings.Contains(d.Envelope.Reason, "foreign key") || d.Replayed != nil {
			t.Fatalf("dead letter %d = %+v: want a foreign key refusal by db, not replayed", i, d)
		}
	}
	if code, _ := call(t, "POST", base+"/replay", "", `{"all": true}`); code != 401 {
		t.Fatalf("a replay without the token = %d, want 401", code)
	}

	psqlRun(t, dsn, fmt.Sprintf("INSERT INTO %s VALUES (2)", customers))
	res, body := replay(`{"all": true}`, 200)
	if res.Selected != 3 || res.Replayed != 3 || res.Delivered != 2 || res.DeadLettered != 1 || res.NotDelivered != 0 ||
		fmt.Sprint(res.NewDeadLetters) != "[3]" || res.Error != "" {
		t.Fatalf("replay of all = %s; want 3 replayed, 2 delivered, 1 dead-lettered again as letter 3", body)
	}
	if got := ids(); got != "1,2,3,5,6" {
		t.Fatalf("orders after the replay: %s, want 1,2,3,5,6 (each once)", got)
	}
	p := browse()
	if p.Total != 4 {
		t.Fatalf("dead letters after the replay: %d, want 4", p.Total)
	}
	for i, d := range p.DeadLetters {
		switch {
		case i == 3:
			if d.Replayed != nil || !strings.Contains(d.Envelope.Reason, "foreign key") || !strings.Contains(d.Envelope.Value, `"id": 4`) {
				t.Fatalf("new dead letter = %+v, want order 4 refused again, not replayed", d)
			}
		case d.Replayed == nil:
			t.Fatalf("dead letter %d is not marked replayed", i)
		case strings.Contains(d.Envelope.Value, `"id": 4`):
			if d.Replayed.Outcome != "dead_lettered" || d.Replayed.DeadLetter == nil || *d.Replayed.DeadLetter != 3 {
				t.Fatalf("dead letter %d (order 4): mark %+v, want dead_lettered as letter 3", i, *d.Replayed)
			}
		case d.Replayed.Outcome != "delivered":
			t.Fatalf("dead letter %d: mark %+v, want delivered", i, *d.Replayed)
		}
	}

	if _, body := replay(`{"indexes": [0, 1]}`, 409); !strings.Contains(body, "force") {
		t.Fatalf("a second replay answers %s; want it to name force", body)
	}
	if _, body := replay(`{"from": 4, "to": 6}`, 400); !strings.Contains(body, "holds 4 dead letters") {
		t.Fatalf("a replay past the end answers %s", body)
	}
	if got := ids(); got != "1,2,3,5,6" {
		t.Fatalf("orders after the refused replays: %s", got)
	}

	// The pipeline runs again after a replay: new orders flow.
	f, err := os.OpenFile(in, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(f, `{"id": 7, "customer": 1}`)
	f.Close()
	until(t, "order 7 stored", r.done, r.stderr, func() bool { return ids() == "1,2,3,5,6,7" })

	psqlRun(t, dsn, fmt.Sprintf("INSERT INTO %s VALUES (3)", customers))
	// all: the letters not replayed yet, here letter 3 alone.
	if res, body := replay(`{"all": true}`, 200); res.Selected != 1 || res.Replayed != 1 || res.Delivered != 1 || res.DeadLettered != 0 {
		t.Fatalf("replay of all = %s; want letter 3 alone, delivered", body)
	}
	if res, body := replay(`{"all": true}`, 200); res.Selected != 0 || res.Replayed != 0 {
		t.Fatalf("a replay of all with nothing left = %s; want nothing replayed", body)
	}
	if got := ids(); got != "1,2,3,4,5,6,7" {
		t.Fatalf("orders at the end: %s, want 1 to 7, each once", got)
	}
	if p := browse(); p.Total != 4 {
		t.Fatalf("dead letters at the end: %d, want 4", p.Total)
	}
	r.cmd.Process.Signal(syscall.SIGTERM)
	<-r.done
	if r.err != nil {
		t.Fatalf("graceful stop: %v\n%s", r.err, r.stderr)
	}
}
