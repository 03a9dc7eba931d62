package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/sluicehq/sluice/sdk/go/connector"
	"github.com/sluicehq/sluice/sdk/go/protocol"
	pb "github.com/sluicehq/sluice/sdk/go/protocol/pluginv1"
)

// Sink is a connector.Sink served by a plugin process. Write splits a batch into messages of at
// most Options.WriteChunkBytes and maps per-record failures back to the caller's indexes in a
// *connector.BatchError. When the process crashes or misses a deadline, Write kills it, starts a
// new one after a backoff, reopens the sink and writes the unfinished chunk again (records may
// be written twice, never lost). Close is idempotent and safe after a failed Open.
type Sink struct {
	in   *instance
	cfg  []byte
	env  *pb.Env
	name string

	mu       sync.Mutex
	opened   bool
	openedOn *proc

	buf []byte // the packing buffer, reused by the next Write once a call has fully succeeded
}

var _ connector.Sink = (*Sink)(nil)

// maxRecordBytes is the largest record that crosses the plugin boundary: one protocol message
// less room for framing.
const maxRecordBytes = protocol.MaxMessageBytes - 64<<10

// NewSink builds a proxy for the sink connName of plugin p. It starts nothing.
func (h *Host) NewSink(p *Plugin, connName string, cfg connector.Config, env connector.Env) (*Sink, error) {
	in, rest, err := newInstance(h, p, connName, cfg, env)
	if err != nil {
		return nil, err
	}
	js, err := protocol.EncodeConfig(rest)
	if err != nil {
		return nil, err
	}
	return &Sink{in: in, cfg: js, env: protocol.Env(env), name: connName}, nil
}

// pid returns the process id of the running plugin process, 0 when none runs.
func (s *Sink) pid() int {
	if pr := s.in.current(); pr != nil {
		return pr.pid
	}
	return 0
}

// Open starts the plugin process and opens the sink.
func (s *Sink) Open(ctx context.Context) error {
	if err := s.in.open(ctx, s.openOn); err != nil {
		return err
	}
	s.mu.Lock()
	s.opened = true
	s.mu.Unlock()
	return nil
}

func (s *Sink) openOn(ctx context.Context, pr *proc) error {
	resp, err := call(ctx, s.in, pr, "open", 0, func(ctx context.Context, c pb.ConnectorClient) (*pb.OpenResponse, error) {
		return c.OpenSink(ctx, &pb.OpenSinkRequest{Name: s.name, ConfigJson: s.cfg, Env: s.env})
	})
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return pr.callError("open", err)
	}
	if e := errFrom(resp.Error); e != nil {
		return &openErr{fmt.Errorf("plugin %s: open %s: %w", s.in.plugin.Name, s.name, e)}
	}
	s.mu.Lock()
	s.openedOn = pr
	s.mu.Unlock()
	return nil
}

func (s *Sink) ready(ctx context.Context) (*proc, error) {
	return s.in.ready(ctx, func() (bool, *proc) {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.opened, s.openedOn
	}, s.openOn, func() error {
		return fmt.Errorf("plugin %s: write %s: the sink is not open", s.in.plugin.Name, s.name)
	})
}

// Write makes the batch durable through the plugin. Per-record failures come back as a
// *connector.BatchError with indexes into records; any other error means the batch as a whole
// may not be durable and may be retried.
func (s *Sink) Write(ctx context.Context, records []connector.Record) error {
	limit := s.in.h.opts.WriteChunkBytes
	var failed []connector.RecordError
	// A record that cannot fit in one protocol message fails on its own (dead letter) instead of
	// failing the whole write forever.
	var fit []connector.Record
	var fitIdx []int
	for i := range records {
		if records[i].Size() <= maxRecordBytes && failed == nil {
			continue // the common case: nothing copied until a record is too large
		}
		if failed == nil { // the first oversized record: keep the ones before it
			fit = append(fit, records[:i]...)
			for j := range i {
				fitIdx = append(fitIdx, j)
			}
		}
		if n := records[i].Size(); n > maxRecordBytes {
			failed = append(failed, connector.RecordError{Index: i, Err: fmt.Errorf("plugin %s: record of %d bytes exceeds the plugin protocol's %d-byte limit", s.in.plugin.Name, n, maxRecordBytes)})
			continue
		}
		fit = append(fit, records[i])
		fitIdx = append(fitIdx, i)
	}
	if failed != nil {
		if len(fit) > 0 {
			err := s.Write(ctx, fit)
			var be *connector.BatchError
			switch {
			case errors.As(err, &be):
				for _, f := range be.Failed {
					failed = append(failed, connector.RecordError{Index: fitIdx[f.Index], Err: f.Err})
				}
			case err != nil:
				return err
			}
		}
		sort.Slice(failed, func(i, j int) bool { return failed[i].Index < failed[j].Index })
		return &connector.BatchError{Failed: failed}
	}
	for start := 0; start < len(records); {
		end, size := start, 0
		for end < len(records) && (end == start || size+records[end].Size() <= limit) {
			size += records[end].Size()
			end++
		}
		part := records[start:end]
		// gRPC sends the chunk without copying it (protocol.Codec): the buffer is reused only
		// after a call that returned an answer, when the plugin has received all of it. A
		// failed call may leave it queued in the transport, so it is then dropped.
		chunk := s.buf[:0]
		if sz := protocol.BatchSize(part); cap(chunk) < sz {
			chunk = make([]byte, 0, sz)
		}
		chunk = protocol.AppendBatch(chunk, part)
		s.buf = nil
		for {
			pr, err := s.ready(ctx)
			if err != nil {
				return err
			}
			resp, err := call(ctx, s.in, pr, "write", 0, func(ctx context.Context, c pb.ConnectorClient) (*pb.WriteResponse, error) {
				return c.Write(ctx, &pb.WriteRequest{Batch: chunk})
			})
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				if ferr := s.in.fail(pr, pr.callError("write", err)); ferr != nil {
					return ferr
				}
				continue
			}
			s.in.succeeded()
			s.buf = chunk
			if e := errFrom(resp.Error); e != nil {
				return fmt.Errorf("plugin %s: write %s: %w", s.in.plugin.Name, s.name, e)
			}
			if len(resp.Failed) > 0 {
				failed = append(failed, protocol.BatchError(resp.Failed, start).Failed...)
			}
			break
		}
		start = end
	}
	if len(failed) > 0 {
		return &connector.BatchError{Failed: failed}
	}
	return nil
}

// Close closes the sink in the plugin and stops the process. It is idempotent.
func (s *Sink) Close(ctx context.Context) error { return s.in.close(ctx) }
