// Package stdout provides the stdout sink: one record value per line on standard output.
package stdout

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

var spec = connector.Spec{
	Name:    "stdout",
	Summary: "Prints one record value per line on standard output.",
	Description: "Each batch is written and flushed before it is acknowledged. With `format: json` each line is a JSON " +
		"object with the key, value (as a string), time and position of the record instead of the bare value.",
	Fields: []connector.Field{
		{Name: "format", Type: connector.TypeString, Default: "value", Enum: []string{"value", "json"}, Description: "`value` prints the record value; `json` prints an object with key, value, time and position."},
	},
}

// Component returns the stdout sink, for a catalog.
func Component() connector.Component {
	return connector.SinkComponent(spec, func(cfg connector.Config, _ connector.Env) (connector.Sink, error) {
		var c struct {
			Format string `config:"format"`
		}
		if err := spec.Decode(cfg, &c); err != nil {
			return nil, err
		}
		return &Sink{w: os.Stdout, json: c.Format == "json"}, nil
	})
}

// Sink writes to an io.Writer (standard output when registered).
type Sink struct {
	w    io.Writer
	json bool
	bw   *bufio.Writer
}

var _ connector.Sink = (*Sink)(nil)

type jsonLine struct {
	Key       string    `json:"key,omitempty"`
	Value     string    `json:"value"`
	Time      time.Time `json:"time,omitzero"`
	Partition string    `json:"partition,omitempty"`
	Offset    int64     `json:"offset"`
}

// Open prepares the buffered writer.
func (s *Sink) Open(context.Context) error {
	s.bw = bufio.NewWriterSize(s.w, 256<<10)
	return nil
}

// Write prints the batch and flushes it.
func (s *Sink) Write(_ context.Context, records []connector.Record) error {
	for i := range records {
		r := &records[i]
		if s.json {
			b, err := json.Marshal(jsonLine{Key: string(r.Key), Value: string(r.Value), Time: r.Time, Partition: r.Position.Partition, Offset: r.Position.Offset})
			if err != nil {
				return fmt.Errorf("stdout sink: %w", err)
			}
			s.bw.Write(b)
			s.bw.WriteByte('\n')
			continue
		}
		s.bw.Write(r.Value)
		s.bw.WriteByte('\n')
	}
	if err := s.bw.Flush(); err != nil {
		return fmt.Errorf("stdout sink: %w", err)
	}
	return nil
}

var _ connector.HeaderBlindSink = (*Sink)(nil)

// IgnoresHeaders: the sink prints values (with json, keys, times and positions), never headers
// (connector.HeaderBlindSink).
func (s *Sink) IgnoresHeaders() bool { return true }

// Close flushes. It is idempotent.
func (s *Sink) Close(context.Context) error {
	if s.bw == nil {
		return nil
	}
	return s.bw.Flush()
}
