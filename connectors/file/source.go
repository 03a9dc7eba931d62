// Package file provides the file source (newline-delimited records, resumable by byte offset,
// optionally following the file as it grows) and the file sink (one record value per line, made
// durable with fsync before a write returns).
package file

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/sluicehq/sluice/connectors/internal/pause"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

var sourceSpec = connector.Spec{
	Name:    "file",
	Summary: "Reads a newline-delimited file, one record per line; resumes at the byte offset after the last delivered line.",
	Description: "Each line, without its line ending (`\\n` or `\\r\\n`), becomes one record value; empty and blank lines are records too. " +
		"The position of a record is the byte offset just after its line, in the partition named by the file's absolute path, " +
		"so a restarted pipeline continues exactly after the last checkpointed line.\n\n" +
		"With `follow: false` (the default) the source is bounded: it ends at the end of the file, and a last line without a " +
		"newline is read as a record. With `follow: true` it keeps waiting for appended lines, like `tail -F`; a line is only " +
		"read once its newline is written, and a file that shrinks (truncation, rotation in place) is read again from the start.\n\n" +
		"Without `follow`, positions are byte offsets that only grow, so the source can feed a pipeline with " +
		"`delivery: exactly_once`. With `follow` it cannot: after a truncation the same offsets name other lines.",
	Bounded: true,
	Fields: []connector.Field{
		{Name: "path", Type: connector.TypeString, Required: true, Description: "The file to read.", Example: "/var/log/prices.jsonl"},
		{Name: "follow", Type: connector.TypeBool, Default: false, Description: "Keep reading lines appended to the file instead of ending at its end."},
		{Name: "poll_interval", Type: connector.TypeDuration, Default: 200 * time.Millisecond, Description: "With follow, how often to look for new data."},
		{Name: "max_line_bytes", Type: connector.TypeByteSize, Default: int64(16 << 20), Description: "Longest accepted line; a longer one goes to the dead letters, with its offset and length in the reason and its first KiB as the value, and reading goes on after it."},
		{Name: "read_buffer", Type: connector.TypeByteSize, Default: int64(1 << 20), Description: "Bytes read from the file per batch."},
		{Name: "rate", Type: connector.TypeFloat, Default: float64(0), Description: "Most lines per second, averaged from when the source opened (a batch is handed on once all its lines are due); 0 reads as fast as the pipeline takes them.", Example: 5000.0},
	},
}

// Components returns the file source and the file sink, for a catalog.
func Components() []connector.Component {
	return []connector.Component{
		connector.SourceComponent(sourceSpec, func(cfg connector.Config, env connector.Env) (connector.Source, error) {
			return NewSource(cfg, env)
		}),
		connector.SinkComponent(sinkSpec, func(cfg connector.Config, env connector.Env) (connector.Sink, error) {
			return NewSink(cfg, env)
		}),
	}
}

// Source reads lines from a file. Read and Ack may be called concurrently; Read from one goroutine.
type Source struct {
	path     string
	follow   bool
	poll     time.Duration
	maxLine  int
	chunk    int
	f        *os.File
	offset   int64 // offset of the next byte to read
	pending  []byte
	skip     *overlong // the over-long line being skipped, if any
	eof      bool
	closeErr error

	rate    float64   // lines per second; 0 is unlimited
	start   time.Time // when the rate's clock started
	emitted int64     // lines handed on since start
}

var (
	_ connector.Source              = (*Source)(nil)
	_ connector.BacklogSource       = (*Source)(nil)
	_ connector.ComparablePositions = (*Source)(nil)
)

// NewSource builds a file source from its configuration. It does no I/O.
func NewSource(cfg connector.Config, _ connector.Env) (*Source, error) {
	var c struct {
		Path         string        `config:"path"`
		Follow       bool          `config:"follow"`
		PollInterval time.Duration `config:"poll_interval"`
		MaxLineBytes int           `config:"max_line_bytes"`
		ReadBuffer   int           `config:"read_buffer"`
		Rate         float64       `config:"rate"`
	}
	if err := sourceSpec.Decode(cfg, &c); err != nil {
		return nil, err
	}
	if c.Path == "" {
		return nil, &connector.ConfigError{Field: "path", Msg: "must not be empty"}
	}
	for _, f := range []struct {
		name string
		v    int64
	}{{"poll_interval", int64(c.PollInterval)}, {"max_line_bytes", int64(c.MaxLineBytes)}, {"read_buffer", int64(c.ReadBuffer)}} {
		if f.v <= 0 {
			return nil, &connector.ConfigError{Field: f.name, Msg: "must be greater than 0"}
		}
	}
	if c.Rate < 0 {
		return nil, &connector.ConfigError{Field: "rate", Msg: "must not be negative; 0 reads as fast as the pipeline takes the lines"}
	}
	abs, err := filepath.Abs(c.Path)
	if err != nil {
		return nil, &connector.ConfigError{Field: "path", Msg: err.Error()}
	}
	return &Source{path: abs, follow: c.Follow, poll: c.PollInterval, maxLine: c.MaxLineBytes, chunk: c.ReadBuffer, rate: c.Rate}, nil
}

// PositionsComparable reports whether a later line always has a larger offset: true unless the
// source follows the file, which may be truncated and read again from the start.
func (s *Source) PositionsComparable() bool { return !s.follow }

// Open opens the file and seeks after the resume position of its partition.
func (s *Source) Open(_ context.Context, resume []connector.Position) error {
	f, err := os.Open(s.path)
	if err != nil {
		return fmt.Errorf("file source: open: %w", err)
	}
	s.f = f
	for _, p := range resume {
		if p.Partition == s.path {
			s.offset = p.Offset
		}
	}
	if s.offset > 0 {
		st, err := f.Stat()
		if err != nil {
			return fmt.Errorf("file source: stat: %w", err)
		}
		if st.Size() < s.offset {
			if !s.follow {
				return fmt.Errorf("file source: %s is shorter (%d bytes) than its checkpoint (%d): the file was replaced; reset the checkpoint to read it again: %w",
					s.path, st.Size(), s.offset, connector.ErrPermanent)
			}
			s.offset = 0
		}
	}
	return nil
}

// pace waits until n more lines are due at the configured rate.
func (s *Source) pace(ctx context.Context, n int) error {
	if s.rate <= 0 {
		return nil
	}
	if s.start.IsZero() {
		s.start = time.Now()
	}
	s.emitted += int64(n)
	due := s.start.Add(time.Duration(float64(s.emitted) / s.rate * float64(time.Second)))
	return pause.Sleep(ctx, time.Until(due))
}

// Read returns the complete lines of the next chunk of the file.
func (s *Source) Read(ctx context.Context) ([]connector.Record, error) {
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if s.eof {
			return nil, io.EOF
		}
		want, looked := s.chunk, false
		if s.follow {
			// Following, look before reading: an idle tail then costs a stat per poll, not a
			// chunk-sized buffer (1 MiB by default, for each of many idle pipelines).
			if st, err := s.f.Stat(); err == nil {
				looked = true
				if st.Size() < s.offset { // truncated or replaced: start over
					s.offset, s.pending, s.skip = 0, nil, nil
				}
				avail := st.Size() - s.offset - int64(len(s.pending))
				if avail <= 0 {
					if err := s.wait(ctx); err != nil {
						return nil, err
					}
					continue
				}
				want = int(min(avail, int64(want)))
			}
		}
		buf := make([]byte, len(s.pending)+want)
		copy(buf, s.pending)
		n, err := s.f.ReadAt(buf[len(s.pending):], s.offset+int64(len(s.pending)))
		data := buf[:len(s.pending)+n]
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("file source: %w", err) // an *os.PathError: "read PATH: ..."
		}
		atEOF := errors.Is(err, io.EOF)
		if s.skip != nil {
			if rec, ok := s.skipLine(data, atEOF && !s.follow); ok {
				return []connector.Record{rec}, nil
			}
		} else {
			recs, used := s.split(data, atEOF && !s.follow)
			s.offset += int64(used)
			s.pending = data[used:]
			if len(s.pending) > s.maxLine {
				s.skip = &overlong{start: s.offset, prefix: bytes.Clone(s.pending[:min(len(s.pending), s.maxLine, malformedPrefix)])}
				s.offset += int64(len(s.pending))
				s.pending = nil
			}
			if len(recs) > 0 {
				if err := s.pace(ctx, len(recs)); err != nil {
					return nil, err
				}
				return recs, nil
			}
		}
		if !atEOF {
			continue
		}
		if !s.follow {
			s.eof = true
			return nil, io.EOF
		}
		// Following: the next turn looks whether the file grew, or shrank (then it restarts);
		// when it could not look, it waits here instead of reading again at once.
		if !looked {
			if err := s.wait(ctx); err != nil {
				return nil, err
			}
		}
	}
}

// wait sleeps one poll interval, or until ctx is done.
//
// It wakes at the next multiple of the interval on the clock, not an interval from now, so that
// the tails of many pipelines polling at one interval wake together: one wake-up of the process
// for all of them instead of one each (with 100 idle tails, half the idle CPU).
func (s *Source) wait(ctx context.Context) error {
	t := time.NewTimer(s.poll - time.Duration(time.Now().UnixNano()%int64(s.poll)))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// malformedPrefix is how many bytes of an over-long line its dead letter keeps.
const malformedPrefix = 1024

// overlong is a line longer than max_line_bytes, skipped up to its end.
type overlong struct {
	start  int64  // offset of its first byte
	prefix []byte // its first bytes
}

// skipLine consumes data, read at s.offset, as part of the over-long line being skipped. At the
// line's end (its newline, or the end of a bounded file with final) it returns the record that
// marks the line malformed, positioned after it.
func (s *Source) skipLine(data []byte, final bool) (connector.Record, bool) {
	end := bytes.IndexByte(data, '\n')
	newline := end >= 0
	if !newline {
		end = len(data)
		if !final {
			s.offset += int64(len(data))
			return connector.Record{}, false
		}
	}
	length := s.offset + int64(end) - s.skip.start
	s.offset += int64(end)
	if newline {
		s.offset++
		if end > 0 && data[end-1] == '\r' {
			length--
		}
	}
	l := s.skip
	s.skip = nil
	return s.malformed(l.start, length, l.prefix, s.offset), true
}

// malformed is the record marking the line at start, of length bytes, as over-long: its value is
// the line's first bytes, its position next, after the line.
func (s *Source) malformed(start, length int64, prefix []byte, next int64) connector.Record {
	reason := fmt.Sprintf("line at offset %d is %d bytes, longer than max_line_bytes (%d); the value holds its first %d bytes", start, length, s.maxLine, len(prefix))
	return connector.Record{
		Value:    prefix,
		Headers:  []connector.Header{{Key: connector.HeaderMalformed, Value: []byte(reason)}},
		Time:     time.Now(),
		Position: connector.Position{Partition: s.path, Offset: next},
	}
}

// split cuts data into line records: a line ends at "\n" or "\r\n"; every line, empty or blank
// ones too, is a record. With final, a trailing line without newline is a record too (a "\r" at its
// end dropped as well). sluice transform test reads its input the same way.
// It returns the records and the number of bytes they consumed.
func (s *Source) split(data []byte, final bool) ([]connector.Record, int) {
	n := bytes.Count(data, []byte{'\n'})
	if final && len(data) > 0 && data[len(data)-1] != '\n' {
		n++
	}
	if n == 0 {
		return nil, 0
	}
	recs := make([]connector.Record, 0, n)
	used := 0
	now := time.Now()
	for used < len(data) {
		i := bytes.IndexByte(data[used:], '\n')
		end := used + i
		next := end + 1
		if i < 0 {
			if !final {
				break
			}
			end, next = len(data), len(data)
		}
		if end > used && data[end-1] == '\r' {
			end-- // "\r\n" ends a line too; the "\r" is not part of the value
		}
		if end-used > s.maxLine {
			p := used + min(s.maxLine, malformedPrefix)
			recs = append(recs, s.malformed(s.offset+int64(used), int64(end-used), data[used:p:p], s.offset+int64(next)))
			used = next
			continue
		}
		recs = append(recs, connector.Record{
			Value:    data[used:end:end],
			Time:     now,
			Position: connector.Position{Partition: s.path, Offset: s.offset + int64(next)},
		})
		used = next
	}
	return recs, used
}

// Backlog reports the bytes of the file after the given position (after everything, when the
// file shrank below it and will be read again from its start). The number of records (lines) is
// unknown without reading them: it is reported as -1.
func (s *Source) Backlog(_ context.Context, after []connector.Position) ([]connector.Backlog, error) {
	st, err := os.Stat(s.path)
	if err != nil {
		return nil, fmt.Errorf("file source: backlog: %w", err)
	}
	var offset int64
	for _, p := range after {
		if p.Partition == s.path {
			offset = p.Offset
		}
	}
	behind := st.Size() - offset
	if behind < 0 {
		behind = st.Size()
	}
	return []connector.Backlog{{Partition: s.path, Records: -1, Bytes: behind}}, nil
}

// Ack has nothing to commit upstream: the checkpoint store holds the offsets.
func (s *Source) Ack(context.Context, []connector.Position) error { return nil }

// Close closes the file. It is idempotent.
func (s *Source) Close(context.Context) error {
	if s.f == nil {
		return s.closeErr
	}
	s.closeErr = s.f.Close()
	s.f = nil
	return s.closeErr
}
