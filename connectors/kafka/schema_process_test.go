package kafka

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/internal/testenv"
)

// schemaClient runs the independent schema-registry client (infra/schemaclient/client.py:
// Confluent's Python client and serializers) and returns its standard output.
func schemaClient(t *testing.T, stdin []byte, args ...string) []byte {
	t.Helper()
	py := testenv.Require(t, "SCHEMA_CLIENT_PYTHON")
	script, err := filepath.Abs("../../infra/schemaclient/client.py")
	if err != nil {
		t.Fatal(err)
	}
	// A request the registry never answers must fail the test, not hang the package: the client
	// gives each registry request 20 s (and retries), and the whole command a few minutes.
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, append([]string{script}, args...)...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("schema client %s: %v\n%s", strings.Join(args[:1], " "), err, stderr.String())
	}
	return out
}

// priceRow is one input row: the fields of testdata/schema/price.avsc (price.proto has ts as RFC
// 3339 text).
func priceRow(i int, proto bool) map[string]any {
	commodities := []string{"corn", "wheat", "soybeans", "gold", "crude oil", "café ☕"}
	row := map[string]any{
		"commodity": commodities[i%len(commodities)],
		"price":     0.1 + float64(i)*1.37,
		"qty":       int64(i%7) * 1000,
		"tags":      []any{},
		"side":      []string{"BUY", "SELL"}[i%2],
	}
	ts := int64(1767225600000) + int64(i)*1000
	if proto {
		row["ts"] = time.UnixMilli(ts).UTC().Format(time.RFC3339Nano)
	} else {
		row["ts"] = ts
	}
	if i%3 == 0 {
		row["tags"] = []any{"spot", fmt.Sprintf("lot-%d", i)}
	}
	switch {
	case i%4 == 1:
		row["venue"] = "CBOT"
	case !proto:
		row["venue"] = nil
	}
	return row
}

// canonical re-encodes a JSON value with sorted keys and numbers as float64, so two renderings of
// the same values compare equal.
func canonical(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var x any
	if err := json.Unmarshal(b, &x); err != nil {
		t.Fatal(err)
	}
	b, _ = json.Marshal(x)
	return string(b)
}

// Records written by an independent client (Confluent's Python serializers) in Avro and in
// Protobuf through the registry are decoded by a Kafka source, validated by validate_price, and
// land in a file as JSON with the exact field values; the same records re-encoded by a Kafka sink
// are read back by the independent client with the same values. A value without the wire
// header, one naming a schema id the registry does not know and one validate_price rejects go to
// the dead letters with their reasons.
func TestSchemaRegistryRoundTripIntegration(t *testing.T) {
	url := testenv.Require(t, "SCHEMA_REGISTRY_URL")
	testenv.Require(t, "SCHEMA_CLIENT_PYTHON")
	b := sharedBroker(t)
	bin := sluiceBinary(t)
	validate, err := filepath.Abs("../../transforms/validate_price/c/validate_price.wasm")
	if err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{"avro", "protobuf"} {
		t.Run(format, func(t *testing.T) {
			proto := format == "protobuf"
			schemaFile, _ := filepath.Abs("testdata/schema/price.avsc")
			extra := ""
			if proto {
				schemaFile, _ = filepath.Abs("testdata/schema/price.proto")
				extra = ", message: market.v1.Price"
			}
			in, out := b.topic(t, 3, nil), b.topic(t, 3, nil)
			const n = 3000
			var rows bytes.Buffer
			want := map[string]int{} // canonical row → how many times
			for i := range n {
				row := priceRow(i, proto)
				if i == 1234 {
					row["price"] = -1.0 // validate_price rejects it
				} else {
					want[canonical(t, row)]++
				}
				line, _ := json.Marshal(row)
				rows.Write(line)
				rows.WriteByte('\n')
			}
			schemaClient(t, rows.Bytes(), "produce", "--bootstrap", b.addr, "--registry", url, "--topic", in, "--format", format, "--schema", schemaFile)
			// Two values the registry cannot explain, written by a plain producer.
			unknown := []byte{0, 0x7f, 0xff, 0xff, 0x00, 2, 'x'}
			if err := b.cl.ProduceSync(testContext(t, 30*time.Second),
				&kgo.Record{Topic: in, Value: []byte(`{"commodity":"corn","price":1,"ts":1}`)},
				&kgo.Record{Topic: in, Value: unknown}).FirstErr(); err != nil {
				t.Fatal(err)
			}

			dir := t.TempDir()
			file, dlq := filepath.Join(dir, "out.jsonl"), filepath.Join(dir, "dlq.jsonl")
			manifest := fmt.Sprintf(`apiVersion: sluice.dev/v1
kind: Pipeline
metadata: {name: schemas}
spec:
  source:
    type: kafka
    config: {brokers: [%[1]q], topics: [%[2]s], group: %[2]s-g, start: earliest}
    decode: {format: %[3]s, registry: {url: %[4]q}}
  transforms:
    - {name: validate, wasm: %[5]q}
  sinks:
    - {name: file, type: file, config: {path: %[6]q}}
    - name: kafka
      type: kafka
      config: {brokers: [%[1]q], topic: %[7]s}
      encode: {format: %[3]s, registry: {url: %[4]q}, subject: %[7]s-value, schema_file: %[8]q, auto_register: true%[9]s}
  dead_letter: {type: file, config: {path: %[10]q}}
`, b.addr, in, format, url, validate, file, out, schemaFile, extra, dlq)
			path := filepath.Join(dir, "schemas.yaml")
			if err := os.WriteFile(path, []byte(manifest), 0o644); err != nil {
				t.Fatal(err)
			}
			p := startSluice(t, bin, dir, "schemas", path)
			deadline := time.Now().Add(2 * time.Minute)
			for countLines(file) < n-1 || countLines(dlq) < 3 {
				if p.exited() {
					t.Fatalf("sluice exited:\n%s", p.logTail())
				}
				if time.Now().After(deadline) {
					t.Fatalf("after 2m the file has %d of %d records and the dead letters %d of 3:\n%s\n%s", countLines(file), n-1, countLines(dlq), p.logTail(), tail(mustReadFile(t, dlq), 5))
				}
				time.Sleep(100 * time.Millisecond)
			}
			p.terminate()

			// The file: every valid row once, with its exact values.
			got := map[string]int{}
			for _, l := range strings.Split(strings.TrimSpace(mustReadFile(t, file)), "\n") {
				var v any
				if err := json.Unmarshal([]byte(l), &v); err != nil {
					t.Fatalf("file line is not JSON: %s", l)
				}
				got[canonical(t, v)]++
			}
			compareRows(t, "file", got, want)

			// The dead letters: the reasons say what is wrong.
			kinds := map[string]string{}
			for _, l := range strings.Split(strings.TrimSpace(mustReadFile(t, dlq)), "\n") {
				var e struct{ Stage, Kind, Reason string }
				if err := json.Unmarshal([]byte(l), &e); err != nil {
					t.Fatal(err)
				}
				kinds[e.Kind+"/"+e.Stage] = e.Reason
			}
			if r := kinds["rejected/validate"]; !strings.Contains(r, "price: must be greater than 0") {
				t.Errorf("dead letters %v: no rejection of the negative price", kinds)
			}
			if r := kinds["decode_failed/source"]; r == "" {
				t.Errorf("dead letters %v: no decode failure", kinds)
			}
			dl := mustReadFile(t, dlq)
			if !strings.Contains(dl, "2147418114") && !strings.Contains(dl, strconv.Itoa(int(binary.BigEndian.Uint32(unknown[1:5])))) {
				t.Errorf("no dead letter names the unknown schema id %d:\n%s", binary.BigEndian.Uint32(unknown[1:5]), dl)
			}
			if !strings.Contains(dl, "magic") && !strings.Contains(dl, "wire format") {
				t.Errorf("no dead letter says the plain JSON value lacks the wire format:\n%s", dl)
			}

			// The re-encoded topic, read back by the independent client.
			consumed := schemaClient(t, nil, "consume", "--bootstrap", b.addr, "--registry", url, "--topic", out, "--format", format,
				"--schema", schemaFile, "--count", strconv.Itoa(n-1), "--group", out+"-check")
			back := map[string]int{}
			ids := map[float64]bool{}
			for _, l := range strings.Split(strings.TrimSpace(string(consumed)), "\n") {
				var m struct {
					Value    map[string]any
					SchemaID float64 `json:"schema_id"`
				}
				if err := json.Unmarshal([]byte(l), &m); err != nil {
					t.Fatalf("client output: %s", l)
				}
				ids[m.SchemaID] = true
				if proto {
					// The client prints int64 and Protobuf JSON the proto3 way; the rows hold numbers.
					if q, ok := m.Value["qty"].(float64); ok {
						m.Value["qty"] = q
					}
				}
				back[canonical(t, m.Value)]++
			}
			compareRows(t, "topic read back", back, want)
			if len(ids) != 1 {
				t.Errorf("records of the re-encoded topic carry schema ids %v, want one", slices.Collect(maps.Keys(ids)))
			}
		})
	}
}

func mustReadFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// compareRows fails when got and want (canonical rows → count) differ, showing a few differences.
func compareRows(t *testing.T, what string, got, want map[string]int) {
	t.Helper()
	var diffs []string
	for k, w := range want {
		if got[k] != w {
			diffs = append(diffs, fmt.Sprintf("want %d× %s, got %d", w, k, got[k]))
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("unexpected %d× %s", g, k))
		}
	}
	if len(diffs) > 0 {
		slices.Sort(diffs)
		t.Fatalf("%s: %d difference(s), first ones:\n%s", what, len(diffs), strings.Join(diffs[:min(6, len(diffs))], "\n"))
	}
}

// The producer's schema gains a field mid-stream (a compatible change, registered by the
// independent client as a new version): the records decoded with the new schema land in an
// Iceberg table with evolve: true, which gains the column; PyIceberg reads every row, the old
// ones with null in it and the new ones with their values.
func TestSchemaEvolutionIntoIcebergIntegration(t *testing.T) {
	url := testenv.Require(t, "SCHEMA_REGISTRY_URL")
	python := testenv.Require(t, "PYICEBERG_PYTHON")
	b := sharedBroker(t)
	bin := sluiceBinary(t)
	in := b.topic(t, 1, nil)
	dir := t.TempDir()
	db, wh := filepath.Join(dir, "catalog.db"), "file://"+filepath.Join(dir, "warehouse")
	manifest := fmt.Sprintf(`apiVersion: sluice.dev/v1
kind: Pipeline
metadata: {name: evolve}
spec:
  source:
    type: kafka
    config: {brokers: [%q], topics: [%s], group: %s-g, start: earliest}
    decode: {format: avro, registry: {url: %q}}
  sinks:
    - name: lake
      type: iceberg
      config:
        catalog: {type: sql, uri: %q, warehouse: %q, name: lake}
        table: rentals.listings
        schema: [{name: id, type: long, required: true}, {name: city, type: string}, {name: rent, type: double}]
        evolve: true
  dead_letter: {type: file, config: {path: %q}}
`, b.addr, in, in, url, "sqlite:///"+db, wh, filepath.Join(dir, "dlq.jsonl"))
	path := filepath.Join(dir, "evolve.yaml")
	if err := os.WriteFile(path, []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	props, _ := json.Marshal(map[string]string{"type": "sql", "uri": "sqlite:///" + db, "warehouse": wh})
	const read = `
import json, sys
from pyiceberg.catalog import load_catalog
try:
    t = load_catalog("lake", **json.loads(sys.argv[1])).load_table("rentals.listings")
except Exception as e:
    print(json.dumps({"rows": [], "columns": [], "error": str(e)}))
    sys.exit(0)
print(json.dumps({"columns": [f"{f.name} {f.field_type}" for f in t.schema().fields],
                  "rows": sorted(t.scan().to_arrow().to_pylist(), key=lambda r: r["id"])}))
`
	type table struct {
		Columns []string
		Rows    []map[string]any
	}
	readTable := func() table {
		out, err := exec.Command(python, "-c", read, string(props)).CombinedOutput()
		if err != nil {
			t.Fatalf("pyiceberg: %v\n%s", err, out)
		}
		var tb table
		if err := json.Unmarshal(out, &tb); err != nil {
			t.Fatalf("pyiceberg output: %s", out)
		}
		return tb
	}
	rows := func(from, to int, v2 bool) []byte {
		var buf bytes.Buffer
		for i := from; i < to; i++ {
			row := map[string]any{"id": i, "city": []string{"Lyon", "Porto", "Gent"}[i%3], "rent": 500 + float64(i)/4}
			if v2 {
				row["grade"] = []string{"A", "B", "C"}[i%3]
			}
			line, _ := json.Marshal(row)
			buf.Write(line)
			buf.WriteByte('\n')
		}
		return buf.Bytes()
	}
	v1, _ := filepath.Abs("testdata/schema/evolve_v1.avsc")
	v2, _ := filepath.Abs("testdata/schema/evolve_v2.avsc")

	p := startSluice(t, bin, dir, "evolve", path)
	schemaClient(t, rows(0, 1000, false), "produce", "--bootstrap", b.addr, "--registry", url, "--topic", in, "--format", "avro", "--schema", v1)
	waitFor(t, 2*time.Minute, "the first 1000 rows in the table", func() bool {
		if p.exited() {
			t.Fatalf("sluice exited:\n%s", p.logTail())
		}
		return len(readTable().Rows) >= 1000
	})
	if tb := readTable(); slices.ContainsFunc(tb.Columns, func(c string) bool { return strings.HasPrefix(c, "grade") }) {
		t.Fatalf("the table has a grade column before any record has the field: %v", tb.Columns)
	}
	schemaClient(t, rows(1000, 2000, true), "produce", "--bootstrap", b.addr, "--registry", url, "--topic", in, "--format", "avro", "--schema", v2)
	var tb table
	waitFor(t, 2*time.Minute, "all 2000 rows in the table", func() bool {
		if p.exited() {
			t.Fatalf("sluice exited:\n%s", p.logTail())
		}
		tb = readTable()
		return len(tb.Rows) >= 2000
	})
	p.terminate()
	if !slices.Contains(tb.Columns, "grade string") {
		t.Fatalf("table columns %v, want a grade string column", tb.Columns)
	}
	if len(tb.Rows) != 2000 {
		t.Fatalf("the table has %d rows, want 2000", len(tb.Rows))
	}
	for i, r := range tb.Rows {
		if int(r["id"].(float64)) != i {
			t.Fatalf("row %d has id %v: a row is missing or doubled", i, r["id"])
		}
		want := any(nil)
		if i >= 1000 {
			want = []string{"A", "B", "C"}[i%3]
		}
		if r["grade"] != want || r["rent"].(float64) != 500+float64(i)/4 {
			t.Fatalf("row %d = %v, want grade %v and rent %v", i, r, want, 500+float64(i)/4)
		}
	}
}

// A registry nobody answers at is retried, then `sluice run` stops with an error that names it;
// a schema the registry refuses under the subject's compatibility rule stops `sluice run` at once,
// with the registry's reason and without retrying.
func TestSchemaRegistryFaultsIntegration(t *testing.T) {
	url := testenv.Require(t, "SCHEMA_REGISTRY_URL")
	b := sharedBroker(t)
	bin := sluiceBinary(t)
	run := func(t *testing.T, decode, encode string) (string, error) {
		t.Helper()
		in, out := b.topic(t, 1, nil), b.topic(t, 1, nil)
		dir := t.TempDir()
		manifest := fmt.Sprintf(`apiVersion: sluice.dev/v1
kind: Pipeline
metadata: {name: faults}
spec:
  source:
    type: kafka
    config: {brokers: [%[1]q], topics: [%[2]s], group: %[2]s-g}
    decode: %[4]s
  sinks:
    - name: out
      type: kafka
      config: {brokers: [%[1]q], topic: %[3]s}
      encode: %[5]s
`, b.addr, in, out, decode, encode)
		path := filepath.Join(dir, "faults.yaml")
		if err := os.WriteFile(path, []byte(manifest), 0o644); err != nil {
			t.Fatal(err)
		}
		if o, err := exec.Command(bin, "validate", path).CombinedOutput(); err != nil {
			t.Fatalf("sluice validate: %v\n%s", err, o)
		}
		cmd := exec.Command(bin, "run", "--data-dir", filepath.Join(dir, "data"), "--admin-addr", "", path)
		done := make(chan struct{})
		var o []byte
		var err error
		go func() { o, err = cmd.CombinedOutput(); close(done) }()
		select {
		case <-done:
		case <-time.After(2 * time.Minute):
			_ = cmd.Process.Kill()
			<-done
			t.Fatalf("sluice run did not stop within 2 minutes:\n%s", o)
		}
		return string(o), err
	}

	t.Run("unreachable", func(t *testing.T) {
		dead := fmt.Sprintf("http://127.0.0.1:%d", freePorts(t, 1)[0])
		out, err := run(t, fmt.Sprintf("{format: avro, registry: {url: %q, timeout: 2s}}", dead), "{format: json}")
		if err == nil {
			t.Fatalf("sluice run succeeded against a registry nobody answers at:\n%s", out)
		}
		t.Logf("sluice run:\n%s", out)
		if !strings.Contains(out, "open failed; retrying") || !strings.Contains(out, dead) || !strings.Contains(out, "connection refused") {
			t.Fatalf("the output does not show retries and an error naming the registry (%s) and why:\n%s", dead, out)
		}
	})

	t.Run("incompatible", func(t *testing.T) {
		subject := uniqueName(t, "prices") + "-value"
		put := func(method, path, body string) {
			req, _ := http.NewRequest(method, url+path, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/vnd.schemaregistry.v1+json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != 200 {
				var b bytes.Buffer
				b.ReadFrom(resp.Body)
				t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b.String())
			}
		}
		v1 := `{"type":"record","name":"Price","fields":[{"name":"commodity","type":"string"}]}`
		body, _ := json.Marshal(map[string]string{"schema": v1})
		put("POST", "/subjects/"+subject+"/versions", string(body))
		put("PUT", "/config/"+subject, `{"compatibility":"BACKWARD"}`)
		// A new field without a default: readers of v2 cannot read v1 records.
		v2 := `{"type":"record","name":"Price","fields":[{"name":"commodity","type":"string"},{"name":"price","type":"double"}]}`
		start := time.Now()
		out, err := run(t, "{format: json}", fmt.Sprintf("{format: avro, registry: {url: %q}, subject: %s, schema: %q, auto_register: true}", url, subject, v2))
		if err == nil {
			t.Fatalf("sluice run succeeded with a schema the registry refuses:\n%s", out)
		}
		t.Logf("sluice run:\n%s", out)
		if !strings.Contains(out, subject) || !strings.Contains(strings.ToLower(out), "incompatible") {
			t.Fatalf("the error does not name the subject and the registry's reason:\n%s", out)
		}
		if strings.Contains(out, "open failed; retrying") {
			t.Fatalf("a refused schema was retried (took %s):\n%s", time.Since(start), out)
		}
	})
}
