package plugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/sluicehq/sluice/sdk/go/connector"
	"github.com/sluicehq/sluice/sdk/go/protocol"
	pb "github.com/sluicehq/sluice/sdk/go/protocol/pluginv1"
)

// NewServer returns the gRPC service that serves p's connectors; Serve uses it, and tests and
// embedders may register it on a grpc.Server of their own. It serves one connector instance at a
// time: OpenSource or OpenSink replaces nothing and fails while an instance is open. Its methods
// are safe for concurrent use (Read and Ack run concurrently, as the connector contract allows).
func NewServer(p Plugin, logger *slog.Logger) pb.ConnectorServer {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &server{p: p, logger: logger}
}

type server struct {
	pb.UnimplementedConnectorServer
	p      Plugin
	logger *slog.Logger
	data   bool // Serve serves it on a data connection too (protocol.FeatureDataConnection)

	mu    sync.Mutex
	src   *sourceState
	sink  connector.Sink
	calls gate       // the calls into the open connector, and its read loop
	order writeOrder // the order of sink writes
	// recs holds the record slices of finished writes, decoded into again by the next ones
	// (the runtime reuses a batch's slice once Write returned, too).
	recs [][]connector.Record
}

// sourceState is an open source with its reader goroutine. The reader reads up to two batches
// ahead of the host (one queued in results, one being read or waiting to be queued); a batch
// larger than the host's credit is kept in leftover and sent in pieces, so the plugin holds at
// most two source batches, plus the rest of a split one, beyond what the host asked for.
type sourceState struct {
	src     connector.Source
	results chan readResult
	cancel  context.CancelFunc
	done    chan struct{}

	readMu   sync.Mutex // one Read RPC at a time
	leftover []connector.Record
	eof      bool
	sent     uint64           // non-empty batches answered so far
	last     *pb.ReadResponse // the last of them, resent when the host did not receive it
	// bufs holds the packed batches, alternately: gRPC sends them without a copy (Codec), and
	// the buffer of batch k is reused for batch k+2, once the host asked for batch k+2 and so
	// had received batch k+1 and, before it, batch k.
	bufs [2][]byte
}

type readResult struct {
	recs []connector.Record
	err  error
}

func (s *server) Specs(context.Context, *pb.SpecsRequest) (*pb.SpecsResponse, error) {
	if err := s.p.check(); err != nil {
		return nil, fmt.Errorf("specs: %w", err)
	}
	resp := &pb.SpecsResponse{Version: s.p.Version, SdkVersion: SDKVersion, Features: []string{protocol.FeatureOrderedWrites}}
	if s.data {
		resp.Features = append(resp.Features, protocol.FeatureDataConnection)
	}
	for _, c := range s.p.Components {
		ps, err := protocol.Spec(c.Spec)
		if err != nil {
			return nil, err
		}
		resp.Specs = append(resp.Specs, ps)
	}
	return resp, nil
}

func (s *server) env(e *pb.Env) connector.Env {
	env := connector.Env{Pipeline: e.GetPipeline(), Component: e.GetComponent(), DataDir: e.GetDataDir()}
	env.Logger = s.logger.With("pipeline", env.Pipeline, "component", env.Component)
	return env
}

func (s *server) OpenSource(ctx context.Context, req *pb.OpenSourceRequest) (*pb.OpenResponse, error) {
	def := s.p.component(connector.KindSource, req.Name)
	if def == nil || def.NewSource == nil {
		return &pb.OpenResponse{Error: protocol.Error(fmt.Errorf("open source: this plugin has no source %q", req.Name))}, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.src != nil || s.sink != nil {
		return &pb.OpenResponse{Error: protocol.Error(errors.New("open source: a connector is already open in this process"))}, nil
	}
	cfg, err := protocol.DecodeConfig(req.ConfigJson, def.Spec.Fields)
	if err != nil {
		return &pb.OpenResponse{Error: protocol.Error(fmt.Errorf("open source: %w", err))}, nil
	}
	src, err := def.NewSource(cfg, s.env(req.Env))
	if err != nil {
		return &pb.OpenResponse{Error: protocol.Error(err)}, nil
	}
	rctx, cancel := context.WithCancel(context.Background())
	st := &sourceState{src: src, results: make(chan readResult, 1), cancel: cancel, done: make(chan struct{})}
	s.src = st // kept after a failed Open so Close reaches the source
	if err := src.Open(ctx, protocol.FromPositions(req.Resume)); err != nil {
		cancel()
		close(st.done)
		return &pb.OpenResponse{Error: protocol.Error(err)}, nil
	}
	s.calls.enter() // the read loop counts as a call until it returns
	go func() {
		defer s.calls.leave()
		st.readLoop(rctx)
	}()
	return &pb.OpenResponse{}, nil
}

func (st *sourceState) readLoop(ctx context.Context) {
	defer close(st.done)
	for {
		recs, err := st.src.Read(ctx)
		if ctx.Err() != nil {
			return
		}
		if len(recs) == 0 && err == nil {
			continue
		}
		select {
		case st.results <- readResult{recs: recs, err: err}:
		case <-ctx.Done():
			return
		}
		if errors.Is(err, io.EOF) {
			return
		}
	}
}

func (s *server) source() *sourceState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.src
}

func (s *server) Read(ctx context.Context, req *pb.ReadRequest) (*pb.ReadResponse, error) {
	st := s.source()
	if st == nil {
		return &pb.ReadResponse{Error: protocol.Error(errors.New("read: no source is open"))}, nil
	}
	st.readMu.Lock()
	defer st.readMu.Unlock()
	switch {
	case st.last != nil && req.Seq == st.sent-1:
		return st.last, nil
	case req.Seq != st.sent:
		return &pb.ReadResponse{Error: protocol.Error(fmt.Errorf("read: host asks for batch %d, plugin is at batch %d", req.Seq, st.sent))}, nil
	}
	maxRecs, maxBytes := int(req.MaxRecords), req.MaxBytes
	if maxRecs <= 0 {
		maxRecs = 1
	}
	if maxBytes <= 0 || maxBytes > protocol.MaxMessageBytes/2 {
		maxBytes = protocol.MaxMessageBytes / 2
	}
	if len(st.leftover) == 0 {
		if st.eof {
			return &pb.ReadResponse{Eof: true}, nil
		}
		wait := time.Duration(req.MaxWaitMs) * time.Millisecond
		if wait <= 0 {
			wait = time.Second
		}
		timer := time.NewTimer(wait)
		defer timer.Stop()
		var r readResult
		select {
		case r = <-st.results:
		case <-timer.C:
			return &pb.ReadResponse{}, nil
		case <-st.done:
			// The loop stopped: after its last result (EOF or an error), which may still be
			// queued, or without one because the source was closed.
			select {
			case r = <-st.results:
			default:
				return &pb.ReadResponse{Error: protocol.Error(errors.New("read: source closed"))}, nil
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if r.err != nil && len(r.recs) == 0 {
			if errors.Is(r.err, io.EOF) {
				st.eof = true
				return &pb.ReadResponse{Eof: true}, nil
			}
			return &pb.ReadResponse{Error: protocol.Error(r.err)}, nil
		}
		st.leftover = r.recs
		if errors.Is(r.err, io.EOF) {
			st.eof = true
		}
	}
	if sz := st.leftover[0].Size(); sz > protocol.MaxMessageBytes-64<<10 {
		pos := st.leftover[0].Position
		st.leftover = st.leftover[1:]
		return &pb.ReadResponse{Error: protocol.Error(fmt.Errorf("read: the record at %s is %d bytes, more than a plugin protocol message holds (%d): %w",
			pos, sz, protocol.MaxMessageBytes, connector.ErrPermanent))}, nil
	}
	n, size := 0, int64(0)
	for n < len(st.leftover) && n < maxRecs {
		rs := int64(st.leftover[n].Size())
		if n > 0 && size+rs > maxBytes {
			break
		}
		size += rs
		n++
	}
	batch := st.leftover[:n]
	buf := st.bufs[st.sent%2][:0]
	if sz := protocol.BatchSize(batch); cap(buf) < sz {
		buf = make([]byte, 0, sz)
	}
	buf = protocol.AppendBatch(buf, batch)
	st.bufs[st.sent%2] = buf
	resp := &pb.ReadResponse{Batch: buf}
	st.sent++
	st.last = resp
	st.leftover = st.leftover[n:]
	if len(st.leftover) == 0 {
		st.leftover = nil
	}
	return resp, nil
}

func (s *server) Ack(ctx context.Context, req *pb.AckRequest) (*pb.AckResponse, error) {
	st := s.source()
	if st == nil {
		return &pb.AckResponse{Error: protocol.Error(errors.New("ack: no source is open"))}, nil
	}
	if !s.calls.enter() {
		return &pb.AckResponse{Error: protocol.Error(errors.New("ack: the source is closed"))}, nil
	}
	defer s.calls.leave()
	return &pb.AckResponse{Error: protocol.Error(st.src.Ack(ctx, protocol.FromPositions(req.Positions)))}, nil
}

func (s *server) OpenSink(ctx context.Context, req *pb.OpenSinkRequest) (*pb.OpenResponse, error) {
	def := s.p.component(connector.KindSink, req.Name)
	if def == nil || def.NewSink == nil {
		return &pb.OpenResponse{Error: protocol.Error(fmt.Errorf("open sink: this plugin has no sink %q", req.Name))}, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.src != nil || s.sink != nil {
		return &pb.OpenResponse{Error: protocol.Error(errors.New("open sink: a connector is already open in this process"))}, nil
	}
	cfg, err := protocol.DecodeConfig(req.ConfigJson, def.Spec.Fields)
	if err != nil {
		return &pb.OpenResponse{Error: protocol.Error(fmt.Errorf("open sink: %w", err))}, nil
	}
	snk, err := def.NewSink(cfg, s.env(req.Env))
	if err != nil {
		return &pb.OpenResponse{Error: protocol.Error(err)}, nil
	}
	s.sink = snk // kept after a failed Open so Close reaches the sink
	return &pb.OpenResponse{Error: protocol.Error(snk.Open(ctx))}, nil
}

func (s *server) Write(ctx context.Context, req *pb.WriteRequest) (*pb.WriteResponse, error) {
	s.mu.Lock()
	snk := s.sink
	s.mu.Unlock()
	if snk == nil {
		return &pb.WriteResponse{Error: protocol.Error(errors.New("write: no sink is open"))}, nil
	}
	if !s.calls.enter() {
		return &pb.WriteResponse{Error: protocol.Error(errors.New("write: the sink is closed"))}, nil
	}
	defer s.calls.leave()
	// Decoded before waiting for its turn: decoding overlaps the write before it.
	recs, derr := protocol.DecodeBatchInto(s.recordSlice(), req.Batch)
	defer protocol.ReleaseBatch(req.Batch) // after the connector's Write: the records alias it
	defer s.reuseRecords(recs)
	if err := s.order.take(ctx, req.WriteId, req.Chain); err != nil {
		return &pb.WriteResponse{Error: protocol.Error(err)}, nil
	}
	err := derr
	if derr != nil {
		err = fmt.Errorf("write: %w", derr)
	} else {
		err = snk.Write(ctx, recs)
	}
	var be *connector.BatchError
	s.order.done(req.WriteId, err == nil || errors.As(err, &be))
	if derr == nil && be != nil {
		if cerr := protocol.CheckIndexes(be, len(recs)); cerr != nil {
			return &pb.WriteResponse{Error: protocol.Error(fmt.Errorf("write: %w", cerr))}, nil
		}
		return &pb.WriteResponse{Failed: protocol.RecordErrors(be)}, nil
	}
	return &pb.WriteResponse{Error: protocol.Error(err)}, nil
}

// recordSlice returns the record slice of a finished write, or nil.
func (s *server) recordSlice() []connector.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.recs)
	if n == 0 {
		return nil
	}
	r := s.recs[n-1]
	s.recs = s.recs[:n-1]
	return r
}

// reuseRecords keeps the record slice of a finished write for a later one.
func (s *server) reuseRecords(recs []connector.Record) {
	if cap(recs) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.recs) < 4 {
		s.recs = append(s.recs, recs)
	}
}

// Close stops the read loop, waits until no call into the connector runs (the read loop's Read,
// an Ack, a Write) and then closes the connector, so Close never overlaps another call. When ctx
// ends first it returns an error and leaves the connector alone; a later Close closes it.
func (s *server) Close(ctx context.Context, _ *pb.CloseRequest) (*pb.CloseResponse, error) {
	s.mu.Lock()
	st, snk := s.src, s.sink
	s.mu.Unlock()
	if st != nil {
		st.cancel()
	}
	idle := s.calls.shut()
	select {
	case <-idle:
	default:
		select {
		case <-idle:
		case <-ctx.Done():
			return &pb.CloseResponse{Error: protocol.Error(fmt.Errorf("close: a call into the connector has not returned: %w", ctx.Err()))}, nil
		}
	}
	var err error
	if st != nil {
		err = st.src.Close(ctx)
	}
	if snk != nil {
		err = errors.Join(err, snk.Close(ctx))
	}
	return &pb.CloseResponse{Error: protocol.Error(err)}, nil
}
