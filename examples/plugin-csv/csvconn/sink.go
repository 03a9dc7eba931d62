package csvconn

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

// Sink appends records to a CSV file. Write is called from one goroutine at a time; Close is
// idempotent.
type Sink struct {
	path    string
	columns []string
	header  bool
	delim   rune

	f *os.File
}

var _ connector.Sink = (*Sink)(nil)

// NewSink builds a csv sink from its validated configuration. It does no I/O.
func NewSink(cfg connector.Config, env connector.Env) (connector.Sink, error) {
	d, err := delimiter(cfg)
	if err != nil {
		return nil, err
	}
	s := &Sink{path: cfg.String("path"), columns: cfg.Strings("columns"), header: !cfg.Has("header") || cfg.Bool("header"), delim: d}
	if s.path == "" {
		return nil, &connector.ConfigError{Field: "path", Msg: "required"}
	}
	if len(s.columns) == 0 {
		return nil, &connector.ConfigError{Field: "columns", Msg: "name at least one column"}
	}
	return s, nil
}

// Open opens the file for appending, creating it (and its header row) when missing or empty.
func (s *Sink) Open(ctx context.Context) error {
	f, err := os.OpenFile(s.path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("csv sink: open: %w", err)
	}
	s.f = f
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("csv sink: stat: %w", err)
	}
	if s.header && st.Size() == 0 {
		var buf bytes.Buffer
		w := s.writer(&buf)
		_ = w.Write(s.columns)
		w.Flush()
		if _, err := f.Write(buf.Bytes()); err != nil {
			return fmt.Errorf("csv sink: write header: %w", err)
		}
	}
	return nil
}

func (s *Sink) writer(buf *bytes.Buffer) *csv.Writer {
	w := csv.NewWriter(buf)
	w.Comma = s.delim
	return w
}

// Write appends one row per record and fsyncs. Records whose value is not a JSON object are
// skipped and named in a *connector.BatchError.
func (s *Sink) Write(ctx context.Context, records []connector.Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.f == nil {
		return errors.New("csv sink: write before open")
	}
	var buf bytes.Buffer
	w := s.writer(&buf)
	var failed []connector.RecordError
	row := make([]string, len(s.columns))
	for i := range records {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(records[i].Value, &obj); err != nil || obj == nil {
			failed = append(failed, connector.RecordError{Index: i, Err: errors.New("csv sink: value is not a JSON object")})
			continue
		}
		for j, c := range s.columns {
			row[j] = cell(obj[c])
		}
		if err := w.Write(row); err != nil {
			return fmt.Errorf("csv sink: encode: %w", err)
		}
	}
	w.Flush()
	if _, err := s.f.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("csv sink: write: %w", err)
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("csv sink: sync: %w", err)
	}
	if len(failed) > 0 {
		return &connector.BatchError{Failed: failed}
	}
	return nil
}

func cell(v json.RawMessage) string {
	if len(v) == 0 || string(v) == "null" {
		return ""
	}
	var s string
	if v[0] == '"' && json.Unmarshal(v, &s) == nil {
		return s
	}
	return string(v)
}

// Close closes the file. It is idempotent and safe after a failed Open.
func (s *Sink) Close(context.Context) error {
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}
