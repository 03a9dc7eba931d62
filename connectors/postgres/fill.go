package postgres

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

// filler turns a record into the inputs of the sink's columns, one per column.
type filler interface {
	fill(r *connector.Record, ins []input) error
}

// columnsFiller reads the configured columns: fields of the JSON value and record metadata.
type columnsFiller struct {
	cols     []column
	x        extractor
	needJSON bool   // some column reads a field of the value
	meta     []int  // columns reading record metadata
	offset   []byte // the record's offset as text
	headers  []byte // the record's headers as JSON

	// With evolve: the top-level fields of the batch's records that are no column, in order of
	// first appearance, each with the type its values call for.
	found   []newColumn
	foundAt map[string]int
	keyBuf  []byte
}

// newColumn is a field of the records that evolve adds to the table.
type newColumn struct {
	name string
	typ  sqlType
}

// newColumnsFiller reads cols from the records. With evolve, it also notes the top-level fields
// that no column reads and that are not among known (the table's columns).
func newColumnsFiller(cols []column, known []string, evolve bool) *columnsFiller {
	f := &columnsFiller{cols: cols}
	for i, c := range cols {
		if c.src == srcPath {
			f.x.add(c.path, i)
			f.needJSON = true
		} else {
			f.meta = append(f.meta, i)
		}
	}
	if evolve {
		f.x.evolve, f.needJSON, f.foundAt = true, true, map[string]int{}
		for _, k := range known {
			f.x.root.child(k)
		}
	}
	return f
}

// reset forgets the fields found in the previous batch.
func (f *columnsFiller) reset() {
	f.found = f.found[:0]
	clear(f.foundAt)
}

// note adds the unread fields of the record just filled (whose value is v) to f.found. A field's
// type comes from its first value in the batch, except that integral and fractional numbers
// together make double precision. A key Postgres cannot take as a column name is left out.
func (f *columnsFiller) note(v []byte) {
	for _, u := range f.x.unread {
		key := v[u.keyStart:u.keyEnd]
		if u.esc {
			f.keyBuf = unescape(f.keyBuf[:0], key)
			key = f.keyBuf
		}
		t := inferType(v[u.valStart:u.valEnd])
		if at, ok := f.foundAt[string(key)]; ok {
			if c := &f.found[at]; c.typ.kind == kBigint && t.kind == kDouble {
				c.typ = t
			}
			continue
		}
		if checkName(string(key)) != nil || !utf8.Valid(key) || string(key) == seqColumn {
			continue
		}
		f.foundAt[string(key)] = len(f.found)
		f.found = append(f.found, newColumn{name: string(key), typ: t})
	}
}

// inferType is the column type evolve gives a field from one of its values (JSON text, not
// null): text for a string (also one that holds a time: its format says nothing certain), bigint
// for an integral number that fits, double precision for any other number, boolean, and jsonb for
// an object or array.
func inferType(raw []byte) sqlType {
	switch raw[0] {
	case '"':
		return sqlType{kind: kText}
	case 't', 'f':
		return sqlType{kind: kBoolean}
	case '{', '[':
		return sqlType{kind: kJSONB}
	}
	if _, ok := parseInt(raw); ok {
		return sqlType{kind: kBigint}
	}
	return sqlType{kind: kDouble}
}

func (f *columnsFiller) fill(r *connector.Record, ins []input) error {
	clear(ins)
	if f.needJSON {
		if err := f.x.extract(r.Value, ins); err != nil {
			return err
		}
	}
	f.headers = f.headers[:0]
	for _, i := range f.meta {
		c := &f.cols[i]
		in := &ins[i]
		switch c.src {
		case srcKey:
			if r.Key != nil {
				*in = input{kind: inBytes, s: r.Key}
			}
		case srcValue:
			if r.Value != nil {
				*in = input{kind: inBytes, s: r.Value}
			}
		case srcTime:
			if !r.Time.IsZero() {
				*in = input{kind: inTime, t: r.Time}
			}
		case srcPartition:
			*in = input{kind: inBytes, s: []byte(r.Position.Partition)}
		case srcOffset:
			f.offset = strconv.AppendInt(f.offset[:0], r.Position.Offset, 10)
			*in = input{kind: inNumber, s: f.offset}
		case srcHeaders:
			if len(f.headers) == 0 {
				f.headers = appendHeaders(f.headers, r.Headers)
			}
			*in = input{kind: inArray, raw: f.headers}
		case srcHeader:
			for _, h := range r.Headers {
				if h.Key == c.header {
					*in = input{kind: inBytes, s: h.Value}
					break
				}
			}
		}
	}
	return nil
}

// appendHeaders renders headers as a JSON array of {"key": ..., "value": ...}, in order, keys
// repeated as they are. A value that is not text Postgres can hold (invalid UTF-8, a NUL) is
// given as "value_base64" instead.
func appendHeaders(dst []byte, hs []connector.Header) []byte {
	dst = append(dst, '[')
	for i, h := range hs {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"key":`...)
		dst = appendJSONString(dst, pgText(h.Key))
		if isPgText(h.Value) {
			dst = append(dst, `,"value":`...)
			dst = appendJSONString(dst, string(h.Value))
		} else {
			dst = append(dst, `,"value_base64":"`...)
			dst = base64.StdEncoding.AppendEncode(dst, h.Value)
			dst = append(dst, '"')
		}
		dst = append(dst, '}')
	}
	return append(dst, ']')
}

func appendJSONString(dst []byte, s string) []byte {
	b, _ := json.Marshal(s) // a string always marshals
	return append(dst, b...)
}

// isPgText reports whether b can be stored in a Postgres text or jsonb string: valid UTF-8
// without NUL characters.
func isPgText(b []byte) bool {
	return utf8.Valid(b) && !strings.ContainsRune(string(b), 0)
}

// pgText makes s storable as Postgres text: invalid UTF-8 and NUL characters become U+FFFD.
func pgText(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.ReplaceAll(s, "\x00", "\uFFFD")
}

// The dead-letter layout: the columns of the table that keeps a pipeline's dead letters. The
// engine sends each one as a JSON envelope (pipeline, stage, kind, code, reason, the source
// position, the original key, value and time, failed_at) with the original headers.
func deadLetterColumns() []column {
	col := func(name string, k kind) column { return column{name: name, typ: sqlType{kind: k}, from: name} }
	return []column{
		col("failed_at", kTimestamptz),
		col("pipeline", kText),
		col("stage", kText),
		col("kind", kText),
		col("code", kInteger),
		col("reason", kText),
		col("source_partition", kText),
		col("source_offset", kBigint),
		col("record_key", kText),
		col("record_time", kTimestamptz),
		col("headers", kJSONB),
		col("value", kText),
		col("value_bytes", kBytea),
	}
}

// deadLetterDDL is the body of the dead-letter table, the columns of deadLetterColumns and an
// identity key first.
const deadLetterDDL = `id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	failed_at timestamptz NOT NULL,
	pipeline text NOT NULL,
	stage text NOT NULL,
	kind text NOT NULL,
	code integer,
	reason text NOT NULL,
	source_partition text,
	source_offset bigint,
	record_key text,
	record_time timestamptz,
	headers jsonb NOT NULL,
	value text,
	value_bytes bytea`

// envelope is the dead-letter envelope the engine writes (internal/engine.Envelope).
type envelope struct {
	Pipeline    string    `json:"pipeline"`
	Stage       string    `json:"stage"`
	Kind        string    `json:"kind"`
	Code        int       `json:"code"`
	Reason      string    `json:"reason"`
	Partition   string    `json:"partition"`
	Offset      *int64    `json:"offset"`
	Key         *string   `json:"key"`
	Value       *string   `json:"value"`
	ValueBase64 string    `json:"value_base64"`
	Time        time.Time `json:"time"`
	FailedAt    time.Time `json:"failed_at"`
}

// deadLetterFiller fills the dead-letter layout from an envelope.
type deadLetterFiller struct{}

func (deadLetterFiller) fill(r *connector.Record, ins []input) error {
	clear(ins)
	var e envelope
	if err := json.Unmarshal(r.Value, &e); err != nil {
		return errors.New("value is not a dead-letter envelope (layout: dead_letter stores what the runtime sends to a dead-letter sink): " + err.Error())
	}
	if e.Stage == "" || e.Kind == "" || e.FailedAt.IsZero() {
		return errors.New("value is not a dead-letter envelope: stage, kind or failed_at is missing (layout: dead_letter stores what the runtime sends to a dead-letter sink)")
	}
	text := func(s string) input { return input{kind: inBytes, s: []byte(pgText(s))} }
	ins[0] = input{kind: inTime, t: e.FailedAt}
	ins[1], ins[2], ins[3], ins[5] = text(e.Pipeline), text(e.Stage), text(e.Kind), text(e.Reason)
	if e.Code != 0 {
		ins[4] = input{kind: inNumber, s: strconv.AppendInt(nil, int64(e.Code), 10)}
	}
	if e.Partition != "" {
		ins[6] = text(e.Partition)
	}
	if e.Offset != nil {
		ins[7] = input{kind: inNumber, s: strconv.AppendInt(nil, *e.Offset, 10)}
	}
	if e.Key != nil {
		ins[8] = text(*e.Key)
	}
	if !e.Time.IsZero() {
		ins[9] = input{kind: inTime, t: e.Time}
	}
	ins[10] = input{kind: inArray, raw: appendHeaders(nil, r.Headers)}
	switch {
	case e.Value != nil && isPgText([]byte(*e.Value)):
		ins[11] = input{kind: inBytes, s: []byte(*e.Value)}
	case e.Value != nil:
		ins[12] = input{kind: inBytes, s: []byte(*e.Value)}
	case e.ValueBase64 != "":
		b, err := base64.StdEncoding.DecodeString(e.ValueBase64)
		if err != nil {
			return errors.New("value is not a dead-letter envelope: value_base64 is not base64")
		}
		ins[12] = input{kind: inBytes, s: b}
	}
	return nil
}
