// Package testconn holds the connectors the plugin host's tests and benchmarks run, both
// compiled in and inside the test plugin binary (testdata/seqplugin): a bounded sequence source,
// a line-file sink and a discarding sink. Options make them misbehave on purpose (hang).
package testconn

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"sync/atomic"

	"github.com/sluicehq/sluice/sdk/go/connector"
	"github.com/sluicehq/sluice/sdk/go/plugin"
)

// Plugin is what the test plugin binary serves.
func Plugin() plugin.Plugin {
	return plugin.Plugin{
		Version: "1.2.3",
		Components: []connector.Component{
			connector.SourceComponent(SeqSpec, NewSeq),
			connector.SinkComponent(LinesSpec, NewLines),
			connector.SinkComponent(DiscardSpec, NewDiscard),
		},
	}
}

// SeqSpec declares the seq source.
var SeqSpec = connector.Spec{
	Name: "seq", Kind: connector.KindSource, Summary: "Records 1..count on partition \"seq\"", Bounded: true,
	Fields: []connector.Field{
		{Name: "count", Type: connector.TypeInt, Default: int64(1000), Description: "Records to produce."},
		{Name: "batch", Type: connector.TypeInt, Default: int64(1000), Description: "Records per batch."},
		{Name: "size", Type: connector.TypeInt, Default: int64(16), Description: "Value bytes."},
		{Name: "hang", Type: connector.TypeString, Default: "", Enum: []string{"", "open", "read", "ack"},
			Description: "The call that blocks forever, ignoring its context."},
		{Name: "fail_open", Type: connector.TypeBool, Default: false, Description: "Open fails."},
		{Name: "emit_env", Type: connector.TypeBool, Default: false, Description: "Record values are the process environment, one variable each."},
	},
}

// Seq is a bounded source of records whose position offset is their number.
type Seq struct {
	count, next int64
	batch, size int
	hang        string
	fail        bool
	emitEnv     bool
	opened      bool
	logger      *slog.Logger
}

// NewSeq builds a seq source.
func NewSeq(cfg connector.Config, env connector.Env) (connector.Source, error) {
	s := &Seq{logger: env.Logger, count: cfg.Int("count"), batch: int(cfg.Int("batch")), size: int(cfg.Int("size")), hang: cfg.String("hang"), fail: cfg.Bool("fail_open"), emitEnv: cfg.Bool("emit_env"), next: 1}
	if !cfg.Has("count") {
		s.count = 1000
	}
	if s.batch <= 0 {
		s.batch = 1000
	}
	return s, nil
}

// Open starts after the resume offset.
func (s *Seq) Open(_ context.Context, resume []connector.Position) error {
	if s.hang == "open" {
		select {} // deliberately ignores ctx
	}
	if s.fail {
		return fmt.Errorf("seq: open refused: %w", connector.ErrPermanent)
	}
	for _, p := range resume {
		if p.Partition == "seq" {
			s.next = p.Offset + 1
		}
	}
	s.opened = true
	if s.logger != nil {
		s.logger.Info("seq opened", "next", s.next)
	}
	return nil
}

// Value renders record n's value.
func Value(n int64, size int) []byte {
	v := strconv.AppendInt(make([]byte, 0, max(size, 20)), n, 10)
	for len(v) < size {
		v = append(v, '.')
	}
	return v
}

// Read returns the next batch.
func (s *Seq) Read(ctx context.Context) ([]connector.Record, error) {
	if s.hang == "read" {
		select {} // deliberately ignores ctx
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if s.next > s.count {
		return nil, io.EOF
	}
	if s.emitEnv {
		var out []connector.Record
		for i, kv := range os.Environ() {
			out = append(out, connector.Record{Value: []byte(kv), Position: connector.Position{Partition: "seq", Offset: int64(i + 1)}})
		}
		s.next = s.count + 1
		return out, nil
	}
	n := min(int64(s.batch), s.count-s.next+1)
	out := make([]connector.Record, n)
	for i := range out {
		seq := s.next + int64(i)
		out[i] = connector.Record{Key: strconv.AppendInt(nil, seq, 10), Value: Value(seq, s.size),
			Position: connector.Position{Partition: "seq", Offset: seq}}
	}
	s.next += n
	return out, nil
}

// Ack does nothing (or hangs).
func (s *Seq) Ack(context.Context, []connector.Position) error {
	if s.hang == "ack" {
		select {}
	}
	return nil
}

// Close does nothing and is idempotent.
func (s *Seq) Close(context.Context) error { return nil }

// LinesSpec declares the lines sink.
var LinesSpec = connector.Spec{
	Name: "lines", Kind: connector.KindSink, Summary: "Appends record values as lines to a file, fsynced per batch",
	Fields: []connector.Field{
		{Name: "path", Type: connector.TypeString, Required: true},
		{Name: "sync", Type: connector.TypeBool, Default: true, Description: "fsync every batch."},
		{Name: "hang", Type: connector.TypeBool, Default: false, Description: "Write blocks forever."},
	},
}

// Lines appends values to a file; values starting with "poison" fail on their own.
type Lines struct {
	path string
	sync bool
	hang bool
	f    *os.File
}

// NewLines builds a lines sink.
func NewLines(cfg connector.Config, _ connector.Env) (connector.Sink, error) {
	return &Lines{path: cfg.String("path"), sync: !cfg.Has("sync") || cfg.Bool("sync"), hang: cfg.Bool("hang")}, nil
}

// Open opens the file for appending.
func (l *Lines) Open(context.Context) error {
	f, err := os.OpenFile(l.path, os.O_CREATE|os.O_APPEND|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("lines: %w", err)
	}
	l.f = f
	// A write torn by a crash leaves a partial last line: cut it (its batch was not
	// acknowledged, so it is written again).
	b, err := os.ReadFile(l.path)
	if err != nil {
		return fmt.Errorf("lines: %w", err)
	}
	if n := len(b); n > 0 && b[n-1] != '\n' {
		if err := f.Truncate(int64(bytes.LastIndexByte(b, '\n') + 1)); err != nil {
			return fmt.Errorf("lines: cut torn line: %w", err)
		}
	}
	return nil
}

// Write appends and fsyncs.
func (l *Lines) Write(ctx context.Context, recs []connector.Record) error {
	if l.hang {
		select {}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	var buf bytes.Buffer
	var failed []connector.RecordError
	for i, r := range recs {
		if bytes.HasPrefix(r.Value, []byte("poison")) {
			failed = append(failed, connector.RecordError{Index: i, Err: errors.New("lines: poison record")})
			continue
		}
		buf.Write(r.Value)
		buf.WriteByte('\n')
	}
	if _, err := l.f.Write(buf.Bytes()); err != nil {
		return err
	}
	if l.sync {
		if err := l.f.Sync(); err != nil {
			return err
		}
	}
	if len(failed) > 0 {
		return &connector.BatchError{Failed: failed}
	}
	return nil
}

// Close closes the file; idempotent.
func (l *Lines) Close(context.Context) error {
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// DiscardSpec declares the discard sink.
var DiscardSpec = connector.Spec{Name: "discard", Kind: connector.KindSink, Summary: "Counts and drops records"}

// Discard counts records and drops them.
type Discard struct{ N atomic.Int64 }

// NewDiscard builds a discard sink.
func NewDiscard(connector.Config, connector.Env) (connector.Sink, error) { return &Discard{}, nil }

// Open does nothing.
func (d *Discard) Open(context.Context) error { return nil }

// Write counts.
func (d *Discard) Write(ctx context.Context, recs []connector.Record) error {
	d.N.Add(int64(len(recs)))
	return ctx.Err()
}

// Close does nothing.
func (d *Discard) Close(context.Context) error { return nil }
