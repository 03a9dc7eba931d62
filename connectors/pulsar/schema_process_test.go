package pulsar

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/hamba/avro/v2"

	"github.com/sluicehq/sluice/internal/testenv"
)

const eventAvro = `{"type":"record","name":"View","namespace":"rentals","fields":[
 {"name":"listing","type":"long"},{"name":"user","type":"string"},{"name":"at","type":"long"},
 {"name":"source","type":["null","string"],"default":null}]}`

type view struct {
	Listing int64   `avro:"listing"`
	User    string  `avro:"user"`
	At      int64   `avro:"at"`
	Source  *string `avro:"source"`
}

// registerAvro registers schema under subject in the registry and returns its id.
func registerAvro(t *testing.T, url, subject, schema string) int {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"schema": schema})
	resp, err := http.Post(url+"/subjects/"+subject+"/versions", "application/vnd.schemaregistry.v1+json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ ID int }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 || out.ID == 0 {
		t.Fatalf("register %s: %d %v", subject, resp.StatusCode, err)
	}
	return out.ID
}

// Avro values in the registry wire format on a Pulsar topic are decoded by a Pulsar source and
// written to another topic by a Pulsar sink that encodes them again under its own subject: the
// messages there carry the sink subject's schema id and decode (with hamba, from the registry's
// schema) to the values produced; a message that is not in the wire format is a dead letter.
func TestSchemaDecodeEncodeIntegration(t *testing.T) {
	url := testenv.Require(t, "SCHEMA_REGISTRY_URL")
	b := needBroker(t)
	bin := sluiceBinary(t)
	in, out := uniqueTopic(t, "views"), uniqueTopic(t, "views-out")
	id := registerAvro(t, url, strings.ReplaceAll(in, "/", "_")+"-value", eventAvro)
	sch := avro.MustParse(eventAvro)
	const n = 2000
	src := "app"
	b.produce(t, in, n+1, func(i int) *pulsar.ProducerMessage {
		if i == n {
			return &pulsar.ProducerMessage{Payload: []byte(`{"listing":1}`)}
		}
		v := view{Listing: int64(i), User: fmt.Sprintf("u%d", i%37), At: 1767225600000 + int64(i)}
		if i%2 == 0 {
			v.Source = &src
		}
		p, err := avro.Marshal(sch, v)
		if err != nil {
			t.Fatal(err)
		}
		w := []byte{0, 0, 0, 0, 0}
		binary.BigEndian.PutUint32(w[1:], uint32(id))
		return &pulsar.ProducerMessage{Payload: append(w, p...)}
	})

	dir := t.TempDir()
	outSubject := strings.ReplaceAll(out, "/", "_") + "-value"
	dlq := filepath.Join(dir, "dlq.jsonl")
	source := fmt.Sprintf(`{type: pulsar, config: {url: %q, topics: [%q], subscription: s, initial_position: earliest}, decode: {format: avro, registry: {url: %q}}}`, b.url, in, url)
	sinks := fmt.Sprintf("    - {name: out, type: pulsar, config: {url: %q, topic: %q}, encode: {format: avro, registry: {url: %q}, subject: %s, schema: %q, auto_register: true}}\n", b.url, out, url, outSubject, eventAvro)
	m := writeManifest(t, filepath.Join(dir, "p.yaml"), "views", source, sinks, fmt.Sprintf("  dead_letter: {type: file, config: {path: %q}}\n", dlq))
	p := startSluice(t, bin, dir, "views", m)
	var recs []struct {
		id int
		v  view
	}
	waitFor(t, 2*time.Minute, "every message on the output topic", func() bool {
		p.alive()
		return countLines(dlq) >= 1 && len(b.readTopic(t, out)) >= n
	})
	p.terminate()
	for _, r := range b.readTopic(t, out) {
		if len(r.Value) < 5 || r.Value[0] != 0 {
			t.Fatalf("an output message lacks the wire header: %x", r.Value)
		}
		var v view
		if err := avro.Unmarshal(sch, r.Value[5:], &v); err != nil {
			t.Fatalf("an output message does not decode: %v", err)
		}
		recs = append(recs, struct {
			id int
			v  view
		}{int(binary.BigEndian.Uint32(r.Value[1:5])), v})
	}
	if len(recs) != n {
		t.Fatalf("the output topic has %d messages, want %d", len(recs), n)
	}
	seen := make([]bool, n)
	outID := recs[0].id
	for _, r := range recs {
		i := int(r.v.Listing)
		if i < 0 || i >= n || seen[i] || r.id != outID || r.v.User != fmt.Sprintf("u%d", i%37) || r.v.At != 1767225600000+int64(i) || (r.v.Source != nil) != (i%2 == 0) {
			t.Fatalf("unexpected output message %+v (schema id %d, first %d)", r.v, r.id, outID)
		}
		seen[i] = true
	}
	if letters := mustRead(t, dlq); !strings.Contains(letters, "decode_failed") || !strings.Contains(letters, "wire format") {
		t.Fatalf("dead letters: %s", letters)
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
