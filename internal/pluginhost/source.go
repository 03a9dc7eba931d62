package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/sluicehq/sluice/sdk/go/connector"
	"github.com/sluicehq/sluice/sdk/go/protocol"
	pb "github.com/sluicehq/sluice/sdk/go/protocol/pluginv1"
)

// Source is a connector.Source served by a plugin process. It follows the connector contract:
// Read from one goroutine, Ack concurrently with it, Close idempotent and safe after a failed
// Open.
//
// It remembers the positions the runtime acknowledged (and those Open resumed from). When the
// process crashes or misses a deadline, Read kills it, starts a new one after a backoff and
// opens it strictly after those positions, so records after them are read again: duplicates
// from the unacknowledged tail, never a loss.
type Source struct {
	in   *instance
	cfg  []byte
	env  *pb.Env
	name string

	mu     sync.Mutex
	resume map[string]connector.Position
	order  []string // partitions in first-seen order
	seq    uint64   // batches received from the process the source is open on

	pending *prefetch     // owned by the goroutine calling Read
	closing chan struct{} // closed by Close; stops a prefetch in flight
	closeMu sync.Once
}

var _ connector.Source = (*Source)(nil)

// NewSource builds a proxy for the source connName of plugin p. cfg may hold the reserved
// fields FieldSHA256 and FieldEnv; the rest goes to the plugin as JSON. It starts nothing.
func (h *Host) NewSource(p *Plugin, connName string, cfg connector.Config, env connector.Env) (*Source, error) {
	in, js, err := newInstance(h, p, connName, cfg, env)
	if err != nil {
		return nil, err
	}
	return &Source{in: in, cfg: js, env: protocol.Env(env), name: connName, resume: map[string]connector.Position{},
		closing: make(chan struct{})}, nil
}

func (s *Source) remember(ps []connector.Position) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range ps {
		if _, ok := s.resume[p.Partition]; !ok {
			s.order = append(s.order, p.Partition)
		}
		s.resume[p.Partition] = p
	}
}

func (s *Source) positions() []connector.Position {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]connector.Position, 0, len(s.order))
	for _, k := range s.order {
		out = append(out, s.resume[k])
	}
	return out
}

// Open starts the plugin process and opens the source strictly after resume. A start failure
// (checksum mismatch, not a plugin, unsupported protocol) or the connector's own Open error is
// returned; the process stays up after the latter so Close reaches the connector.
func (s *Source) Open(ctx context.Context, resume []connector.Position) error {
	s.remember(resume)
	return s.in.open(ctx, s.openOn)
}

// openErr marks the connector's own Open failure, as opposed to a process failure.
type openErr struct{ err error }

func (e *openErr) Error() string { return e.err.Error() }
func (e *openErr) Unwrap() error { return e.err }

func (s *Source) openOn(ctx context.Context, pr *proc) error {
	err := s.in.openCall(ctx, pr, func(ctx context.Context, c pb.ConnectorClient) (*pb.OpenResponse, error) {
		return c.OpenSource(ctx, &pb.OpenSourceRequest{Name: s.name, ConfigJson: s.cfg, Env: s.env, Resume: protocol.Positions(s.positions())})
	})
	if err == nil {
		s.mu.Lock()
		s.seq = 0
		s.mu.Unlock()
	}
	return err
}

// ready returns a process with the source open on it, restarting one when needed.
func (s *Source) ready(ctx context.Context) (*proc, error) {
	return s.in.ready(ctx, "read", "source", s.openOn)
}

// readResult is the outcome of one Read call into the plugin, the batch still packed: Read
// decodes it after asking for the next one, so decoding overlaps the next call.
type readResult struct {
	batch   []byte
	eof     bool
	connErr error // the connector's own error
	callErr error // the call failed: crash, deadline
}

// readOnce asks the plugin for batch seq.
func (s *Source) readOnce(ctx context.Context, pr *proc, seq uint64) readResult {
	o := &s.in.h.opts
	resp, err := bulkCall(ctx, s.in, pr, "read", o.ReadWait, func(ctx context.Context, c pb.ConnectorClient) (*pb.ReadResponse, error) {
		return c.Read(ctx, &pb.ReadRequest{MaxRecords: int32(o.ReadCreditRecords), MaxBytes: o.ReadCreditBytes,
			MaxWaitMs: o.ReadWait.Milliseconds(), Seq: seq})
	})
	if err != nil {
		return readResult{callErr: err}
	}
	if e := errFrom(resp.Error); e != nil {
		if errors.Is(e, io.EOF) {
			return readResult{eof: true}
		}
		return readResult{connErr: e}
	}
	if resp.Eof {
		return readResult{eof: true}
	}
	return readResult{batch: resp.Batch}
}

// prefetch is a Read call started before the caller asked, so the next batch crosses the process
// boundary while this one is decoded and the caller works on it. At most one is in flight: the
// host holds at most one batch (bounded by the read credit) beyond what the caller took.
type prefetch struct {
	pr   *proc
	seq  uint64
	done chan struct{}
	res  readResult
}

func (s *Source) startPrefetch(pr *proc, seq uint64) {
	p := &prefetch{pr: pr, seq: seq, done: make(chan struct{})}
	s.pending = p
	go func() {
		defer close(p.done)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			select {
			case <-s.closing:
				cancel()
			case <-p.done:
			}
		}()
		p.res = s.readOnce(ctx, pr, seq)
	}()
}

// Read returns the next batch from the plugin, at most the host's read credit in records and
// bytes. It waits until a record arrives, the source ends (io.EOF) or ctx is done; a plugin
// failure restarts the plugin and is returned only after MaxRestarts consecutive failures.
// After a batch it starts reading the next one in the background (one batch ahead).
func (s *Source) Read(ctx context.Context) ([]connector.Record, error) {
	for {
		pr, err := s.ready(ctx)
		if err != nil {
			return nil, err
		}
		s.mu.Lock()
		seq := s.seq
		s.mu.Unlock()
		var res readResult
		if p := s.pending; p != nil && p.pr == pr && p.seq == seq {
			select {
			case <-p.done:
			case <-ctx.Done():
				return nil, ctx.Err() // the batch stays pending for the next call
			}
			s.pending = nil
			res = p.res
		} else {
			s.pending = nil // from a process that is gone
			res = s.readOnce(ctx, pr, seq)
			if res.callErr != nil && ctx.Err() != nil {
				return nil, ctx.Err()
			}
		}
		switch {
		case res.callErr != nil:
			if ferr := s.in.fail(pr, pr.callError("read", res.callErr)); ferr != nil {
				return nil, ferr
			}
			continue
		case res.connErr != nil:
			return nil, fmt.Errorf("plugin %s: read %s: %w", s.in.plugin.Name, s.name, res.connErr)
		case res.eof:
			s.in.succeeded()
			return nil, io.EOF
		case len(res.batch) == 0:
			s.in.succeeded()
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			continue
		}
		opened := s.in.openedProc()
		s.mu.Lock()
		if opened == pr {
			s.seq++
			seq = s.seq
		}
		s.mu.Unlock()
		s.startPrefetch(pr, seq)
		recs, err := protocol.DecodeBatch(res.batch)
		if err == nil && len(recs) == 0 {
			err = errors.New("a non-empty answer without records")
		}
		if err != nil {
			// A plugin that sends garbage is broken like one that crashed; the restart drops
			// the prefetch and replays after the acknowledged positions.
			if ferr := s.in.fail(pr, pr.callError("read", err)); ferr != nil {
				return nil, ferr
			}
			continue
		}
		s.in.succeeded()
		return recs, nil
	}
}

// Ack remembers the positions (a restarted plugin resumes after them) and passes them to the
// plugin. When the plugin is down they are passed on restart, through Open.
func (s *Source) Ack(ctx context.Context, positions []connector.Position) error {
	s.remember(positions)
	pr := s.in.openedProc()
	if pr == nil || s.in.current() != pr {
		return nil
	}
	resp, err := call(ctx, s.in, pr, "ack", 0, func(ctx context.Context, c pb.ConnectorClient) (*pb.AckResponse, error) {
		return c.Ack(ctx, &pb.AckRequest{Positions: protocol.Positions(positions)})
	})
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return s.in.fail(pr, pr.callError("ack", err))
	}
	if e := errFrom(resp.Error); e != nil {
		return fmt.Errorf("plugin %s: ack %s: %w", s.in.plugin.Name, s.name, e)
	}
	return nil
}

// Close closes the source in the plugin and stops the process. It is idempotent.
func (s *Source) Close(ctx context.Context) error {
	s.closeMu.Do(func() { close(s.closing) })
	return s.in.close(ctx)
}
