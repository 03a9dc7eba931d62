package csvconn

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

// Source reads a CSV file. Read is called from one goroutine; Ack is a no-op (a file has no
// upstream to commit to) and safe concurrently; Close is idempotent.
type Source struct {
	path      string
	header    bool
	keyColumn string
	delim     rune
	batch     int

	f      *os.File
	r      *csv.Reader
	base   int64 // file offset where r started
	cols   []string
	keyIdx int
	eof    bool
}

var _ connector.Source = (*Source)(nil)

// NewSource builds a csv source from its validated configuration. It does no I/O.
func NewSource(cfg connector.Config, env connector.Env) (connector.Source, error) {
	d, err := delimiter(cfg)
	if err != nil {
		return nil, err
	}
	s := &Source{path: cfg.String("path"), header: !cfg.Has("header") || cfg.Bool("header"),
		keyColumn: cfg.String("key_column"), delim: d, batch: int(cfg.Int("batch_size")), keyIdx: -1}
	if s.path == "" {
		return nil, &connector.ConfigError{Field: "path", Msg: "required"}
	}
	if s.keyColumn != "" && !s.header {
		return nil, &connector.ConfigError{Field: "key_column", Msg: "needs header: true"}
	}
	if s.batch <= 0 {
		s.batch = 1000
	}
	return s, nil
}

// Open opens the file and positions the reader after the resume position of its partition.
func (s *Source) Open(ctx context.Context, resume []connector.Position) error {
	f, err := os.Open(s.path)
	if err != nil {
		return fmt.Errorf("csv source: open: %w", err)
	}
	s.f = f
	s.r = s.reader(f)
	if s.header {
		cols, err := s.r.Read()
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("csv source: read header: %w", err)
		}
		s.cols = append([]string(nil), cols...) // the reader reuses its row slice
		for i, c := range cols {
			if c == s.keyColumn {
				s.keyIdx = i
			}
		}
		if s.keyColumn != "" && s.keyIdx < 0 {
			return fmt.Errorf("csv source: key column %q is not in the header %v: %w", s.keyColumn, cols, connector.ErrPermanent)
		}
	}
	for _, p := range resume {
		if p.Partition != s.path {
			continue
		}
		if _, err := f.Seek(p.Offset, io.SeekStart); err != nil {
			return fmt.Errorf("csv source: seek to %d: %w", p.Offset, err)
		}
		s.base = p.Offset
		s.r = s.reader(f)
	}
	return nil
}

func (s *Source) reader(f io.Reader) *csv.Reader {
	r := csv.NewReader(f)
	r.Comma = s.delim
	r.FieldsPerRecord = -1
	r.ReuseRecord = true
	return r
}

// Read returns up to batch_size rows, then io.EOF at the end of the file.
func (s *Source) Read(ctx context.Context) ([]connector.Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if s.r == nil {
		return nil, errors.New("csv source: read before open")
	}
	if s.eof {
		return nil, io.EOF
	}
	out := make([]connector.Record, 0, s.batch)
	var buf bytes.Buffer
	for len(out) < s.batch {
		row, err := s.r.Read()
		if errors.Is(err, io.EOF) {
			s.eof = true
			break
		}
		if err != nil {
			return out, fmt.Errorf("csv source: %w", err)
		}
		buf.Reset()
		if err := s.encode(&buf, row); err != nil {
			return out, err
		}
		rec := connector.Record{Value: bytes.Clone(buf.Bytes()),
			Position: connector.Position{Partition: s.path, Offset: s.base + s.r.InputOffset()}}
		if s.keyIdx >= 0 && s.keyIdx < len(row) {
			rec.Key = []byte(row[s.keyIdx])
		}
		out = append(out, rec)
	}
	if len(out) == 0 {
		return nil, io.EOF
	}
	return out, nil
}

// encode writes the row as a JSON object in header order (or an array without a header).
func (s *Source) encode(buf *bytes.Buffer, row []string) error {
	if !s.header {
		b, err := json.Marshal(row)
		buf.Write(b)
		return err
	}
	buf.WriteByte('{')
	for i, v := range row {
		name := fmt.Sprintf("column_%d", i+1)
		if i < len(s.cols) {
			name = s.cols[i]
		}
		if i > 0 {
			buf.WriteByte(',')
		}
		k, _ := json.Marshal(name)
		val, _ := json.Marshal(v)
		buf.Write(k)
		buf.WriteByte(':')
		buf.Write(val)
	}
	buf.WriteByte('}')
	return nil
}

// Ack does nothing: a file has no upstream commit; the runtime keeps the positions.
func (s *Source) Ack(context.Context, []connector.Position) error { return nil }

// Close closes the file. It is idempotent and safe after a failed Open.
func (s *Source) Close(context.Context) error {
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f, s.r = nil, nil
	return err
}
