package file

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

var sinkSpec = connector.Spec{
	Name:        "file",
	Summary:     "Appends one record value per line to a file and fsyncs before acknowledging.",
	ExactlyOnce: true,
	Description: "Every batch is appended with one write and made durable with fsync before the write is acknowledged, " +
		"so a record the runtime counts as delivered survives a crash or power loss.\n\n" +
		"With `delivery: at_least_once` (the default), the records between the last checkpoint and a crash can appear twice. " +
		"A line torn by a crash in the middle of a write (a last line without its newline) is cut off when the sink opens " +
		"again, since its batch was never acknowledged and will be written again.\n\n" +
		"With `delivery: exactly_once` each write is a transaction: the records are appended and synced, then the source " +
		"positions they cover are committed to `PATH.positions` (written beside the file and renamed into place). " +
		"On restart the file is cut back to the length of the last committed transaction and the pipeline resumes after " +
		"the positions stored there, so every record is in the file once, whatever moment a crash came. " +
		"One sink at a time may write a file exactly once (it holds a lock on it). `fsync: false` is refused for exactly_once. " +
		"A write outside exactly_once removes `PATH.positions`, since the file then holds records no position describes.",
	Fields: []connector.Field{
		{Name: "path", Type: connector.TypeString, Required: true, Description: "The file to append to; created with its directory when missing.", Example: "/var/lib/sluice/out.jsonl"},
		{Name: "fsync", Type: connector.TypeBool, Default: true, Description: "Sync every write to disk before acknowledging it. Turning it off trades durability on power loss for speed; a process crash still loses nothing."},
	},
}

// Sink appends record values as lines. Write is called from one goroutine at a time.
type Sink struct {
	path                string
	fsync               bool
	pipeline, component string // whose positions WriteTx stores
	f                   *os.File
	end                 int64 // size of the file's durable, whole-line content
	buf                 []byte
	// Exactly-once state (sinktx.go): the positions file as last committed, nil until
	// StoredPositions; whether this sink holds the file's lock; whether a Write outside a
	// transaction removed the positions file already.
	tx     *positionsFile
	locked bool
	forgot bool
}

// NewSink builds a file sink from its configuration. It does no I/O.
func NewSink(cfg connector.Config, env connector.Env) (*Sink, error) {
	var c struct {
		Path  string `config:"path"`
		Fsync bool   `config:"fsync"`
	}
	if err := sinkSpec.Decode(cfg, &c); err != nil {
		return nil, err
	}
	if c.Path == "" {
		return nil, &connector.ConfigError{Field: "path", Msg: "must not be empty"}
	}
	return &Sink{path: c.Path, fsync: c.Fsync, pipeline: env.Pipeline, component: env.Component}, nil
}

// Open opens the file for appending and cuts off a torn last line left by a crash.
func (s *Sink) Open(context.Context) error {
	if err := os.MkdirAll(filepath.Dir(s.path), 0o755); err != nil {
		return fmt.Errorf("file sink: create directory: %w", err)
	}
	f, err := os.OpenFile(s.path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("file sink: open: %w", err)
	}
	s.f = f
	end, err := s.cleanEnd()
	if err != nil {
		return err
	}
	if _, err := f.Seek(end, io.SeekStart); err != nil {
		return fmt.Errorf("file sink: seek: %w", err)
	}
	s.end = end
	return nil
}

// cleanEnd truncates the file after its last newline, if it does not end with one.
func (s *Sink) cleanEnd() (int64, error) {
	st, err := s.f.Stat()
	if err != nil {
		return 0, fmt.Errorf("file sink: stat: %w", err)
	}
	size := st.Size()
	end := size
	buf := make([]byte, 64<<10)
	for end > 0 {
		n := int64(len(buf))
		if n > end {
			n = end
		}
		if _, err := s.f.ReadAt(buf[:n], end-n); err != nil {
			return 0, fmt.Errorf("file sink: read tail: %w", err)
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			end = end - n + int64(i) + 1
			break
		}
		end -= n
	}
	if end != size {
		if err := s.f.Truncate(end); err != nil {
			return 0, fmt.Errorf("file sink: cut torn last line: %w", err)
		}
		if err := s.f.Sync(); err != nil {
			return 0, fmt.Errorf("file sink: sync: %w", err)
		}
	}
	return end, nil
}

// Write appends the batch and syncs it.
func (s *Sink) Write(_ context.Context, records []connector.Record) error {
	if s.f == nil {
		return fmt.Errorf("file sink: write before open")
	}
	if !s.forgot {
		if err := s.forgetPositions(); err != nil {
			return err
		}
	}
	return s.write(records)
}

var _ connector.HeaderBlindSink = (*Sink)(nil)

// IgnoresHeaders: the sink writes values only (connector.HeaderBlindSink).
func (s *Sink) IgnoresHeaders() bool { return true }

// write appends the batch and syncs it (when fsync is set).
func (s *Sink) write(records []connector.Record) error {
	s.buf = s.buf[:0]
	for i := range records {
		s.buf = append(s.buf, records[i].Value...)
		s.buf = append(s.buf, '\n')
	}
	if _, err := s.f.Write(s.buf); err != nil {
		return s.undo(fmt.Errorf("file sink: %w", err)) // an *os.PathError: "write PATH: ..."
	}
	if s.fsync {
		if err := s.f.Sync(); err != nil {
			return s.undo(fmt.Errorf("file sink: %w", err)) // "sync PATH: ..."
		}
	}
	s.end += int64(len(s.buf))
	if cap(s.buf) > 64<<20 {
		s.buf = nil
	}
	return nil
}

// undo cuts a partly written batch off, so a retry does not leave a torn line behind.
func (s *Sink) undo(err error) error {
	if terr := s.f.Truncate(s.end); terr != nil {
		return fmt.Errorf("%w (and cutting the partial write failed: %v)", err, terr)
	}
	if _, serr := s.f.Seek(s.end, io.SeekStart); serr != nil {
		return fmt.Errorf("%w (and seeking back failed: %v)", err, serr)
	}
	return err
}

// Close syncs and closes the file. It is idempotent.
func (s *Sink) Close(context.Context) error {
	if s.f == nil {
		return nil
	}
	err := s.f.Sync()
	if cerr := s.f.Close(); err == nil { // releases the lock too
		err = cerr
	}
	s.f, s.tx, s.locked = nil, nil, false
	return err
}
