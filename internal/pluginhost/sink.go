package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"slices"
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

	mu     sync.Mutex
	idProc *proc    // the process lastID counts writes on
	lastID uint64   // the last write_id sent to idProc
	bufs   [][]byte // packing buffers whose calls have ended, for reuse
}

var _ connector.PipelinedSink = (*Sink)(nil)

// maxRecordBytes is the largest record that crosses the plugin boundary: one protocol message
// less room for framing.
const maxRecordBytes = protocol.MaxMessageBytes - 64<<10

// NewSink builds a proxy for the sink connName of plugin p. It starts nothing.
func (h *Host) NewSink(p *Plugin, connName string, cfg connector.Config, env connector.Env) (*Sink, error) {
	in, js, err := newInstance(h, p, connName, cfg, env)
	if err != nil {
		return nil, err
	}
	return &Sink{in: in, cfg: js, env: protocol.Env(env), name: connName}, nil
}

// Open starts the plugin process and opens the sink.
func (s *Sink) Open(ctx context.Context) error { return s.in.open(ctx, s.openOn) }

func (s *Sink) openOn(ctx context.Context, pr *proc) error {
	return s.in.openCall(ctx, pr, func(ctx context.Context, c pb.ConnectorClient) (*pb.OpenResponse, error) {
		return c.OpenSink(ctx, &pb.OpenSinkRequest{Name: s.name, ConfigJson: s.cfg, Env: s.env})
	})
}

func (s *Sink) ready(ctx context.Context) (*proc, error) {
	return s.in.ready(ctx, "write", "sink", s.openOn)
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
		chunk := s.pack(part)
		for {
			pr, err := s.ready(ctx)
			if err != nil {
				return err
			}
			req := &pb.WriteRequest{Batch: chunk, WriteId: s.nextWrite(pr)}
			resp, err := bulkCall(ctx, s.in, pr, "write", 0, func(ctx context.Context, c pb.ConnectorClient) (*pb.WriteResponse, error) {
				return c.Write(ctx, req)
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
			err = s.answered(resp, chunk, start)
			if be, ok := err.(*connector.BatchError); ok { // per-record failures; the connector's own error is wrapped
				failed = append(failed, be.Failed...)
			} else if err != nil {
				return err
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

// WriteAsync implements connector.PipelinedSink: it sends the batch to the plugin and returns at
// once; wait blocks until the plugin answered and returns what Write would have. The plugin
// writes the batches one at a time in the order of the calls (protocol.FeatureOrderedWrites),
// and writes a batch only if the one sent before it was written (WriteRequest.chain), so no
// batch becomes durable after an earlier one that failed. To a plugin that does not order
// writes, and for a batch larger than one message or with an oversized record, WriteAsync
// writes at once with Write and wait returns the outcome. A failed call kills the process; the
// next write starts a new one.
func (s *Sink) WriteAsync(ctx context.Context, records []connector.Record) (wait func() error) {
	// One pass over the records for the size; a record's Size exceeds its packed size by at
	// most 64 bytes, so a batch that small has no oversized record.
	size := protocol.BatchSize(records)
	if !s.ordered() || size > s.in.h.opts.WriteChunkBytes || (size+64 > maxRecordBytes && oversized(records)) {
		err := s.Write(ctx, records)
		return func() error { return err }
	}
	pr, err := s.ready(ctx)
	if err != nil {
		return func() error { return err }
	}
	buf := s.packSized(records, size)
	req := &pb.WriteRequest{Batch: buf, WriteId: s.nextWrite(pr), Chain: true}
	type answer struct {
		resp *pb.WriteResponse
		err  error
	}
	done := make(chan answer, 1)
	go func() {
		resp, err := bulkCall(ctx, s.in, pr, "write", 0, func(ctx context.Context, c pb.ConnectorClient) (*pb.WriteResponse, error) {
			return c.Write(ctx, req)
		})
		done <- answer{resp, err}
	}()
	return func() error {
		a := <-done
		if a.err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			cerr := pr.callError("write", a.err)
			if ferr := s.in.fail(pr, cerr); ferr != nil {
				return ferr
			}
			return cerr // the process is restarted by the next write
		}
		return s.answered(a.resp, buf, 0)
	}
}

// answered takes the plugin's answer to a write of buf, whose first record is the caller's
// record start: it resets the failure count, reuses buf and returns the connector's error or the
// per-record failures (*connector.BatchError, indexes from start).
func (s *Sink) answered(resp *pb.WriteResponse, buf []byte, start int) error {
	s.in.succeeded()
	s.reuse(buf)
	if e := errFrom(resp.Error); e != nil {
		return fmt.Errorf("plugin %s: write %s: %w", s.in.plugin.Name, s.name, e)
	}
	if len(resp.Failed) > 0 {
		return protocol.BatchError(resp.Failed, start)
	}
	return nil
}

// ordered reports whether the plugin orders writes by write_id.
func (s *Sink) ordered() bool {
	return slices.Contains(s.in.plugin.Features, protocol.FeatureOrderedWrites)
}

// nextWrite returns the write_id of the next write on pr, or 0 when the plugin does not order
// writes. A new process counts from 1 again.
func (s *Sink) nextWrite(pr *proc) uint64 {
	if !s.ordered() {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.idProc != pr {
		s.idProc, s.lastID = pr, 0
	}
	s.lastID++
	return s.lastID
}

// pack packs records into a reused buffer. gRPC sends it without copying it (protocol.Codec), so
// it is reused only after its call returned an answer, when the plugin has received all of it; a
// failed call may leave it queued in the transport, and it is then dropped.
func (s *Sink) pack(records []connector.Record) []byte {
	return s.packSized(records, protocol.BatchSize(records))
}

// packSized is pack for records whose protocol.BatchSize is size.
func (s *Sink) packSized(records []connector.Record, size int) []byte {
	s.mu.Lock()
	var buf []byte
	if n := len(s.bufs); n > 0 {
		buf, s.bufs = s.bufs[n-1][:0], s.bufs[:n-1]
	}
	s.mu.Unlock()
	if cap(buf) < size {
		buf = make([]byte, 0, size)
	}
	return protocol.AppendBatch(buf, records)
}

// reuse returns a packing buffer whose call was answered.
func (s *Sink) reuse(buf []byte) {
	s.mu.Lock()
	if len(s.bufs) < connector.MaxWritesInFlight {
		s.bufs = append(s.bufs, buf)
	}
	s.mu.Unlock()
}

func oversized(records []connector.Record) bool {
	for i := range records {
		if records[i].Size() > maxRecordBytes {
			return true
		}
	}
	return false
}

// Close closes the sink in the plugin and stops the process. It is idempotent.
func (s *Sink) Close(ctx context.Context) error { return s.in.close(ctx) }
