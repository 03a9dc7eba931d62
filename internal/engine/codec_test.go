package engine_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hamba/avro/v2"

	"github.com/sluicehq/sluice/internal/engine"
	"github.com/sluicehq/sluice/internal/metrics"
	"github.com/sluicehq/sluice/internal/schema"
	"github.com/sluicehq/sluice/internal/schema/registrytest"
	"github.com/sluicehq/sluice/runtime/pipeline"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// sliceSource returns its records in batches of batch, then io.EOF. With a gate, the first Read
// waits until the gate is closed.
type sliceSource struct {
	recs  []connector.Record
	batch int
	next  int
	gate  chan struct{}
}

func (s *sliceSource) Open(context.Context, []connector.Position) error { return nil }
func (s *sliceSource) Read(ctx context.Context) ([]connector.Record, error) {
	if s.gate != nil {
		select {
		case <-s.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if s.next >= len(s.recs) {
		return nil, io.EOF
	}
	end := min(s.next+s.batch, len(s.recs))
	out := s.recs[s.next:end]
	s.next = end
	return out, nil
}
func (s *sliceSource) Ack(context.Context, []connector.Position) error { return nil }
func (s *sliceSource) Close(context.Context) error                     { return nil }

// recSink keeps whole records (value and headers).
type recSink struct {
	mu   sync.Mutex
	recs []connector.Record
}

func (s *recSink) Open(context.Context) error { return nil }
func (s *recSink) Write(_ context.Context, recs []connector.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range recs {
		r.Value = append([]byte(nil), r.Value...)
		r.Headers = append([]connector.Header(nil), r.Headers...)
		s.recs = append(s.recs, r)
	}
	return nil
}
func (s *recSink) Close(context.Context) error { return nil }
func (s *recSink) got() []connector.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]connector.Record(nil), s.recs...)
}

func header(r connector.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

const priceAvro = `{"type":"record","name":"Price","fields":[
 {"name":"commodity","type":"string"},
 {"name":"price","type":"double"},
 {"name":"ts","type":"long"},
 {"name":"venue","type":["null","string"],"default":null}]}`

type price struct {
	Commodity string  `avro:"commodity"`
	Price     float64 `avro:"price"`
	TS        int64   `avro:"ts"`
	Venue     *string `avro:"venue"`
}

// wire frames an Avro payload with the registry's header: magic byte 0 and the schema id.
func wire(id int, payload []byte) []byte {
	out := []byte{0, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(out[1:], uint32(id))
	return append(out, payload...)
}

func codecPipeline(t *testing.T, name string, src connector.Source, out connector.Sink, dlq *memSink) *pipeline.Pipeline {
	p := spec(name, object(t, src), sink("out", object(t, out)))
	d := newMemSink(t, dlq)
	p.DeadLetter = &d
	return p
}

func letters(t *testing.T, dlq *memSink) []engine.Envelope {
	t.Helper()
	var out []engine.Envelope
	for _, l := range dlq.got() {
		var e engine.Envelope
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

// Avro values in the registry's wire format, written with hamba's own encoder, reach the sink as
// JSON with the schema's id and subject in the headers; a value without the wire header, one that
// names an id the registry does not know and a truncated one go to the dead letters with the
// reason, and the records around them are delivered.
func TestDecodeAvroToJSONAndDeadLetters(t *testing.T) {
	reg := registrytest.New(t)
	id := reg.Register(t, "prices-value", "AVRO", priceAvro)
	sch := avro.MustParse(priceAvro)
	venue := "CBOT"
	var recs []connector.Record
	var want []string
	for i := range 300 {
		v := price{Commodity: "corn", Price: 4.25 + float64(i), TS: 1767225600000 + int64(i)}
		if i%2 == 1 {
			v.Venue = &venue
		}
		b, err := avro.Marshal(sch, v)
		if err != nil {
			t.Fatal(err)
		}
		val := wire(id, b)
		switch i {
		case 10:
			val = []byte(`{"commodity":"corn"}`) // plain JSON, no wire header
		case 20:
			val = wire(id+1000, b)
		case 30:
			val = val[:len(val)-3]
		default:
			vb, _ := json.Marshal(map[string]any{"commodity": v.Commodity, "price": v.Price, "ts": v.TS, "venue": v.Venue})
			want = append(want, string(vb))
		}
		recs = append(recs, connector.Record{Value: val, Position: connector.Position{Offset: int64(i)}})
	}
	out, dlq := &recSink{}, &memSink{}
	p := codecPipeline(t, "decode", &sliceSource{recs: recs, batch: 64}, out, dlq)
	p.Source.Decode = connector.Config{"format": "avro", "registry": map[string]any{"url": reg.URL}}
	m := metrics.New()
	e, err := engine.New(p, engine.Options{Catalog: testCatalog(), Checkpoints: openStore(t, filepath.Join(t.TempDir(), "data")), Metrics: m, DrainTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := out.got()
	if len(got) != len(want) {
		t.Fatalf("sink got %d records, want %d", len(got), len(want))
	}
	for i, r := range got {
		var g, w map[string]any
		if err := json.Unmarshal(r.Value, &g); err != nil {
			t.Fatalf("record %d is not JSON: %q", i, r.Value)
		}
		_ = json.Unmarshal([]byte(want[i]), &w)
		gb, _ := json.Marshal(g)
		wb, _ := json.Marshal(w)
		if string(gb) != string(wb) {
			t.Fatalf("record %d: got %s, want %s", i, r.Value, want[i])
		}
		if h := header(r, schema.HeaderSchemaID); h != jsonInt(id) {
			t.Fatalf("record %d: %s = %q, want %d", i, schema.HeaderSchemaID, h, id)
		}
		if h := header(r, schema.HeaderSchemaSubject); h != "prices-value" {
			t.Fatalf("record %d: %s = %q", i, schema.HeaderSchemaSubject, h)
		}
	}
	ls := letters(t, dlq)
	if len(ls) != 3 {
		t.Fatalf("dead letters: %+v", ls)
	}
	wantReasons := map[int64]string{10: "magic", 20: "1001", 30: ""}
	for _, l := range ls {
		frag, ok := wantReasons[l.Offset]
		if !ok || l.Stage != "source" || l.Kind != "decode_failed" || !strings.Contains(l.Reason, frag) {
			t.Errorf("dead letter at %d: stage %q kind %q reason %q", l.Offset, l.Stage, l.Kind, l.Reason)
		}
		if l.Offset == 20 && !strings.Contains(strings.ToLower(l.Reason), "not") {
			t.Errorf("unknown id reason does not say the id is unknown: %q", l.Reason)
		}
	}
	if n := value(m.RecordsRejected.WithLabelValues("decode", "source")); n != 3 {
		t.Fatalf("records rejected at the source = %v, want 3", n)
	}
	if n := reg.Hits("GET /schemas/ids/" + jsonInt(id)); n != 1 {
		t.Fatalf("the registry was asked for schema %d %d times, want once", id, n)
	}
}

func jsonInt(n int) string { b, _ := json.Marshal(n); return string(b) }

// JSON values are encoded with a schema registered under the sink's subject when it opens; the
// sink gets the registry wire format (which hamba decodes back to the values) with the schema id
// in the headers, and a value that does not fit the schema goes to the dead letters naming the
// subject and the field.
func TestEncodeAvroRegistersAndDeadLettersMisfits(t *testing.T) {
	reg := registrytest.New(t)
	var recs []connector.Record
	for i := range 100 {
		v := `{"commodity":"wheat","price":` + jsonInt(100+i) + `,"ts":` + jsonInt(1767225600000+i) + `}`
		if i == 50 {
			v = `{"commodity":"wheat","price":"cheap","ts":1}`
		}
		recs = append(recs, connector.Record{Value: []byte(v), Position: connector.Position{Offset: int64(i)}})
	}
	out, dlq := &recSink{}, &memSink{}
	p := codecPipeline(t, "encode", &sliceSource{recs: recs, batch: 30}, out, dlq)
	p.Sinks[0].Encode = connector.Config{"format": "avro", "registry": map[string]any{"url": reg.URL}, "subject": "prices-clean-value",
		"schema": priceAvro, "auto_register": true}
	e, err := engine.New(p, engine.Options{Catalog: testCatalog(), Checkpoints: openStore(t, filepath.Join(t.TempDir(), "data")), DrainTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := out.got()
	if len(got) != 99 {
		t.Fatalf("sink got %d records, want 99", len(got))
	}
	sch := avro.MustParse(priceAvro)
	for i, r := range got {
		if len(r.Value) < 5 || r.Value[0] != 0 {
			t.Fatalf("record %d lacks the wire header: %x", i, r.Value)
		}
		id := int(binary.BigEndian.Uint32(r.Value[1:5]))
		if header(r, schema.HeaderSchemaID) != jsonInt(id) || header(r, schema.HeaderSchemaSubject) != "prices-clean-value" {
			t.Fatalf("record %d headers %q, id in payload %d", i, r.Headers, id)
		}
		var v price
		if err := avro.Unmarshal(sch, r.Value[5:], &v); err != nil {
			t.Fatalf("record %d: hamba cannot decode it: %v", i, err)
		}
		n := i
		if i >= 50 {
			n++
		}
		if v.Commodity != "wheat" || v.Price != float64(100+n) || v.TS != 1767225600000+int64(n) || v.Venue != nil {
			t.Fatalf("record %d decodes to %+v", i, v)
		}
	}
	ls := letters(t, dlq)
	if len(ls) != 1 || ls[0].Offset != 50 || ls[0].Stage != "out" || ls[0].Kind != "encode_failed" ||
		!strings.Contains(ls[0].Reason, "prices-clean-value") || !strings.Contains(ls[0].Reason, "price") {
		t.Fatalf("dead letters: %+v", ls)
	}
}

// A registry that answers 503 is retried with backoff and, once it answers again, every record is
// decoded; a registry that stays down stops the pipeline with an error that says so.
func TestDecodeRetriesAnUnavailableRegistry(t *testing.T) {
	sch := avro.MustParse(priceAvro)
	b, _ := avro.Marshal(sch, price{Commodity: "oats", Price: 3, TS: 1})
	recsFor := func(id int) []connector.Record {
		var recs []connector.Record
		for i := range 10 {
			recs = append(recs, connector.Record{Value: wire(id, b), Position: connector.Position{Offset: int64(i)}})
		}
		return recs
	}

	t.Run("comes back", func(t *testing.T) {
		reg := registrytest.New(t)
		id := reg.Register(t, "p-value", "AVRO", priceAvro)
		out, dlq := &recSink{}, &memSink{}
		src := &sliceSource{recs: recsFor(id), batch: 10, gate: make(chan struct{})}
		p := codecPipeline(t, "retry", src, out, dlq)
		p.Source.Decode = connector.Config{"format": "avro", "registry": map[string]any{"url": reg.URL}}
		p.StuckAfter = 100 * time.Millisecond
		e, err := engine.New(p, engine.Options{Catalog: testCatalog(), Checkpoints: openStore(t, filepath.Join(t.TempDir(), "data")), DrainTimeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- e.Run(context.Background()) }()
		for !e.Ready() {
			time.Sleep(10 * time.Millisecond)
		}
		reg.SetDown(true) // after the decoder opened: the first record meets a registry that is down
		close(src.gate)
		// The stage may first show as holding its batch (the first call to the registry is slow on
		// a busy machine) and only then as failing: wait for the failing one.
		deadline := time.Now().Add(30 * time.Second)
		for st := e.Status(); (st.Ready || !strings.Contains(st.Reason, "has been failing")) && time.Now().Before(deadline); st = e.Status() {
			time.Sleep(20 * time.Millisecond)
		}
		if st := e.Status(); st.Ready || !strings.Contains(st.Reason, `"decode" has been failing`) || !strings.Contains(st.Reason, "503") {
			t.Errorf("while the registry is down the status is %+v, want not ready naming decode and the registry's answer", st)
		}
		reg.SetDown(false)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if n := len(out.got()); n != 10 || len(dlq.got()) != 0 {
			t.Fatalf("sink got %d records and %d dead letters, want 10 and 0", n, len(dlq.got()))
		}
	})

	t.Run("down at start", func(t *testing.T) {
		reg := registrytest.New(t)
		reg.SetDown(true)
		p := codecPipeline(t, "start", &sliceSource{recs: recsFor(1), batch: 10}, &recSink{}, &memSink{})
		p.Source.Decode = connector.Config{"format": "avro", "registry": map[string]any{"url": reg.URL}}
		e, err := engine.New(p, engine.Options{Catalog: testCatalog(), Checkpoints: openStore(t, filepath.Join(t.TempDir(), "data")), DrainTimeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		err = e.Run(context.Background())
		if err == nil || !errors.Is(err, schema.ErrUnavailable) || !strings.Contains(err.Error(), reg.URL) {
			t.Fatalf("Run = %v, want the registry's unavailability naming its address", err)
		}
	})

	t.Run("stays down", func(t *testing.T) {
		defer engine.SetCodecAttempts(3)()
		reg := registrytest.New(t)
		id := reg.Register(t, "p-value", "AVRO", priceAvro)
		out, dlq := &recSink{}, &memSink{}
		src := &sliceSource{recs: recsFor(id), batch: 10, gate: make(chan struct{})}
		p := codecPipeline(t, "down", src, out, dlq)
		p.Source.Decode = connector.Config{"format": "avro", "registry": map[string]any{"url": reg.URL}}
		e, err := engine.New(p, engine.Options{Catalog: testCatalog(), Checkpoints: openStore(t, filepath.Join(t.TempDir(), "data")), DrainTimeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- e.Run(context.Background()) }()
		for !e.Ready() {
			time.Sleep(10 * time.Millisecond)
		}
		reg.SetDown(true)
		close(src.gate)
		err = <-done
		if err == nil || !errors.Is(err, schema.ErrUnavailable) || !strings.Contains(err.Error(), "gave up after 3 attempts") {
			t.Fatalf("Run = %v, want the registry's unavailability after 3 attempts", err)
		}
		if len(out.got()) != 0 || len(dlq.got()) != 0 {
			t.Fatalf("records went on although none could be decoded: %d delivered, %d dead letters", len(out.got()), len(dlq.got()))
		}
	})
}

// A schema the registry refuses under the subject's compatibility rules stops the pipeline when
// the sink opens, with the registry's reason, without retrying.
func TestEncodeIncompatibleSchemaStops(t *testing.T) {
	reg := registrytest.New(t, registrytest.WithCompatibility(func(subject string, existing []registrytest.Schema, next registrytest.Schema) string {
		if len(existing) > 0 {
			return "Schema being registered is incompatible with an earlier schema for subject \"" + subject + "\": READER_FIELD_MISSING_DEFAULT_VALUE venue"
		}
		return ""
	}))
	reg.Register(t, "prices-clean-value", "AVRO", `{"type":"record","name":"Price","fields":[{"name":"commodity","type":"string"}]}`)
	out, dlq := &recSink{}, &memSink{}
	p := codecPipeline(t, "incompatible", &sliceSource{recs: []connector.Record{{Value: []byte(`{}`)}}, batch: 1}, out, dlq)
	p.Sinks[0].Encode = connector.Config{"format": "avro", "registry": map[string]any{"url": reg.URL}, "subject": "prices-clean-value",
		"schema": priceAvro, "auto_register": true}
	e, err := engine.New(p, engine.Options{Catalog: testCatalog(), Checkpoints: openStore(t, filepath.Join(t.TempDir(), "data")), DrainTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = e.Run(context.Background())
	if err == nil || !errors.Is(err, connector.ErrPermanent) || !strings.Contains(err.Error(), "prices-clean-value") || !strings.Contains(err.Error(), "READER_FIELD_MISSING_DEFAULT_VALUE") {
		t.Fatalf("Run = %v, want a permanent error naming the subject and the registry's reason", err)
	}
	if n := reg.Hits("POST /subjects/prices-clean-value/versions"); n != 1 {
		t.Fatalf("the schema was registered %d times, want once (no retry of a refusal); took %v", n, time.Since(start))
	}
}

// decode: and encode: work on any connector: a file source decoding plain JSON (format json: a
// line that is not JSON is a dead letter) into a file sink encoding with a JSON Schema from the
// registry (a value the schema refuses is a dead letter naming what is wrong).
func TestCodecsOnFiles(t *testing.T) {
	reg := registrytest.New(t)
	reg.Register(t, "prices-json-value", "JSON", `{"type":"object","properties":{"price":{"type":"number","exclusiveMinimum":0}},"required":["price"]}`)
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.jsonl"), filepath.Join(dir, "out.bin")
	if err := os.WriteFile(in, []byte("{\"price\":1}\nnot json\n{\"price\":-2}\n{\"price\":3}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dlq := &memSink{}
	p := spec("files", pipeline.Component{Type: "file", Config: connector.Config{"path": in}, Decode: connector.Config{"format": "json"}},
		sink("out", pipeline.Component{Type: "file", Config: connector.Config{"path": out},
			Encode: connector.Config{"format": "json_schema", "registry": map[string]any{"url": reg.URL}, "subject": "prices-json-value"}}))
	d := newMemSink(t, dlq)
	p.DeadLetter = &d
	if err := runPipeline(t, context.Background(), p, openStore(t, filepath.Join(dir, "data")), nil); err != nil {
		t.Fatal(err)
	}
	lines := readLines(t, out)
	if len(lines) != 2 {
		t.Fatalf("out has %q, want the two valid prices", lines)
	}
	for i, want := range []string{`{"price":1}`, `{"price":3}`} {
		if l := lines[i]; len(l) < 5 || l[0] != 0 || l[5:] != want {
			t.Fatalf("line %d = %q, want the wire header and %s", i, l, want)
		}
	}
	ls := letters(t, dlq)
	if len(ls) != 2 || ls[0].Kind != "decode_failed" || ls[1].Kind != "encode_failed" || ls[1].Stage != "out" ||
		!strings.Contains(ls[1].Reason, "prices-json-value") || !strings.Contains(ls[1].Reason, "/price") {
		t.Fatalf("dead letters: %+v", ls)
	}
}
