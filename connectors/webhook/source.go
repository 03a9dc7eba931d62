package webhook

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

// Source is the webhook endpoint. Its HTTP handlers, Read (one goroutine) and Ack run
// concurrently; they share the pending set under one mutex.
type Source struct {
	cfg        config
	log        *slog.Logger
	dataDir    string
	durable    bool
	hmacHash   func() hash.Hash
	retryAfter string
	headers    []string

	srv       *http.Server
	ln        net.Listener
	serveDone chan struct{}
	store     *wal

	mu          sync.Mutex
	queue       []connector.Record // taken, not yet read
	pending     []pendingRecord    // taken, not yet acked, in sequence order
	pendRecords int64              // records of pending, plus reservations of requests being read
	pendBytes   int64
	waiters     []*waiter // ack: delivered: requests waiting for their records, in sequence order
	nextSeq     int64     // ack: delivered: sequence number of the next record
	draining    bool      // Read returned on its context: the pipeline is stopping
	opened      bool
	closed      bool
	notify      chan struct{}
	closeErr    error
}

type pendingRecord struct {
	seq  int64
	size int64
}

// waiter is a request of ack: delivered waiting for the ack of its last record.
type waiter struct {
	last int64
	done chan struct{}
	err  error // set before done is closed
}

var _ connector.Source = (*Source)(nil)

// NewSource builds a webhook source from its configuration. It does no I/O.
func NewSource(cfg connector.Config, env connector.Env) (*Source, error) {
	s := &Source{log: env.Logger, dataDir: env.DataDir, notify: make(chan struct{}, 1)}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	c := &s.cfg
	if err := sourceSpec.Decode(cfg, c); err != nil {
		return nil, err
	}
	if _, port, err := net.SplitHostPort(c.Address); err != nil {
		return nil, &connector.ConfigError{Field: "address", Msg: fmt.Sprintf("%q is not host:port: %v", c.Address, errors.Unwrap(err)), Hint: "for example :8080 or 127.0.0.1:8080"}
	} else if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return nil, &connector.ConfigError{Field: "address", Msg: fmt.Sprintf("port %q is not a number from 0 to 65535", port)}
	}
	if !strings.HasPrefix(c.Path, "/") {
		return nil, &connector.ConfigError{Field: "path", Msg: fmt.Sprintf("%q must start with /", c.Path)}
	}
	if c.HealthPath != "" && (!strings.HasPrefix(c.HealthPath, "/") || c.HealthPath == c.Path) {
		return nil, &connector.ConfigError{Field: "health_path", Msg: "must start with / and differ from path"}
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		field := "tls.key_file"
		if c.TLS.CertFile == "" {
			field = "tls.cert_file"
		}
		return nil, &connector.ConfigError{Field: field, Msg: "tls needs both cert_file and key_file"}
	}
	if h := c.Auth.HMAC; h.Header != "" || h.Secret != "" {
		if h.Header == "" {
			return nil, &connector.ConfigError{Field: "auth.hmac.header", Msg: "is required with auth.hmac"}
		}
		if h.Secret == "" {
			return nil, &connector.ConfigError{Field: "auth.hmac.secret", Msg: "is required with auth.hmac"}
		}
		switch h.Algorithm {
		case "", "sha256":
			s.hmacHash = sha256.New
		case "sha512":
			s.hmacHash = sha512.New
		case "sha1":
			s.hmacHash = sha1.New
		}
	}
	for _, f := range []struct {
		name string
		v    int64
	}{{"max_body", c.MaxBody}, {"max_pending", c.MaxPending}, {"retry_after", int64(c.RetryAfter)}, {"delivery_timeout", int64(c.DeliveryTimeout)}} {
		if f.v <= 0 {
			return nil, &connector.ConfigError{Field: f.name, Msg: "must be greater than 0"}
		}
	}
	if c.MaxPendingBytes < c.MaxBody {
		return nil, &connector.ConfigError{Field: "max_pending_bytes", Msg: fmt.Sprintf("must be at least max_body (%d)", c.MaxBody), Hint: "one request of max_body must fit"}
	}
	if c.BusyStatus != http.StatusTooManyRequests && c.BusyStatus != http.StatusServiceUnavailable {
		return nil, &connector.ConfigError{Field: "busy_status", Msg: fmt.Sprintf("%d is neither 429 nor 503", c.BusyStatus)}
	}
	s.retryAfter = strconv.FormatInt(int64((c.RetryAfter+time.Second-1)/time.Second), 10)
	for _, h := range c.Headers {
		if !connector.IsReservedHeader(h) {
			s.headers = append(s.headers, http.CanonicalHeaderKey(h))
		}
	}
	s.durable = c.Ack == "durable"
	return s, nil
}

// Addr is the address the endpoint listens on, once open.
func (s *Source) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Open replays the write-ahead store after the resume position (ack: durable), then starts
// listening. Until Open, the port is closed, so senders see a connection error and retry. A failed
// Open leaves nothing open, so the runtime may call it again.
func (s *Source) Open(_ context.Context, resume []connector.Position) error {
	var after int64
	for _, p := range resume {
		if p.Partition == "" {
			after = max(after, p.Offset)
		}
	}
	if s.durable && s.dataDir == "" {
		return fmt.Errorf("webhook source: ack: durable needs a data directory (sluice run --data-dir): %w", connector.ErrPermanent)
	}
	ln, err := s.listen()
	if err != nil {
		return err
	}
	var replay []connector.Record
	if s.durable {
		store, recs, err := openWAL(s.dataDir, after, s.committed)
		if err != nil {
			ln.Close()
			return err
		}
		s.store, replay = store, recs
	}
	if len(replay) > 0 {
		s.log.Info("webhook source: replaying records taken before the restart", "records", len(replay))
		s.mu.Lock()
		for _, r := range replay {
			s.pendRecords++
			s.pendBytes += int64(r.Size())
		}
		s.mu.Unlock()
		s.committed(replay)
	}
	s.srv = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		WriteTimeout:      s.cfg.DeliveryTimeout + 10*time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	s.mu.Lock()
	s.ln, s.opened, s.nextSeq = ln, true, after+1
	s.mu.Unlock()
	s.serveDone = make(chan struct{})
	go func() {
		defer close(s.serveDone)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("webhook source: serve", "err", err)
		}
	}()
	return nil
}

// listen opens the port, with TLS when configured.
func (s *Source) listen() (net.Listener, error) {
	var cert tls.Certificate
	if s.cfg.TLS.CertFile != "" {
		var err error
		if cert, err = tls.LoadX509KeyPair(s.cfg.TLS.CertFile, s.cfg.TLS.KeyFile); err != nil {
			return nil, fmt.Errorf("webhook source: tls: %w", err)
		}
	}
	ln, err := net.Listen("tcp", s.cfg.Address)
	if err != nil {
		return nil, fmt.Errorf("webhook source: listen: %w", err)
	}
	if s.cfg.TLS.CertFile != "" {
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}})
	}
	return ln, nil
}

// committed takes records made durable by the store (or replayed from it) into the queue.
func (s *Source) committed(recs []connector.Record) {
	s.mu.Lock()
	for _, r := range recs {
		s.pending = append(s.pending, pendingRecord{seq: r.Position.Offset, size: int64(r.Size())})
	}
	s.queue = append(s.queue, recs...)
	s.mu.Unlock()
	s.wake()
}

func (s *Source) wake() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// maxRead is the most records one Read returns.
const maxRead = 4096

// Read returns the records taken so far, waiting for some when there are none. When ctx ends, the
// pipeline is stopping: from then on, until Read is called again, requests are answered 503.
func (s *Source) Read(ctx context.Context) ([]connector.Record, error) {
	s.mu.Lock()
	s.draining = false
	s.mu.Unlock()
	for {
		s.mu.Lock()
		if err := ctx.Err(); err != nil {
			s.draining = true
			s.mu.Unlock()
			return nil, err
		}
		if s.closed {
			s.mu.Unlock()
			return nil, errClosed
		}
		if n := min(len(s.queue), maxRead); n > 0 {
			out := s.queue[:n:n]
			s.queue = s.queue[n:]
			if len(s.queue) == 0 {
				s.queue = nil
			}
			s.mu.Unlock()
			return out, nil
		}
		s.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-s.notify:
		}
	}
}

// Ack releases the records up to the acked position: their room in the pending bound, their place
// in the write-ahead store, and the requests of ack: delivered waiting for them.
func (s *Source) Ack(_ context.Context, positions []connector.Position) error {
	var to int64 = -1
	for _, p := range positions {
		if p.Partition == "" {
			to = max(to, p.Offset)
		}
	}
	if to < 0 {
		return nil
	}
	s.mu.Lock()
	i := 0
	for i < len(s.pending) && s.pending[i].seq <= to {
		s.pendRecords--
		s.pendBytes -= s.pending[i].size
		i++
	}
	s.pending = s.pending[i:]
	j := 0
	for j < len(s.waiters) && s.waiters[j].last <= to {
		close(s.waiters[j].done)
		j++
	}
	s.waiters = s.waiters[j:]
	s.mu.Unlock()
	if s.store != nil {
		s.store.ack(to)
	}
	return nil
}

// reserve takes room for a request: records and bytes. It fails when the pending bound would be
// passed, except for a request alone (nothing else pending), which always fits.
func (s *Source) reserve(records, bytes int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	if (s.pendRecords > 0 || s.pendBytes > 0) && (s.pendRecords+records > s.cfg.MaxPending || s.pendBytes+bytes > s.cfg.MaxPendingBytes) {
		return false
	}
	s.pendRecords += records
	s.pendBytes += bytes
	return true
}

// resize replaces a reservation of oldBytes by one of records and bytes, or leaves it as it was
// and fails when that does not fit.
func (s *Source) resize(oldBytes, records, bytes int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	others := s.pendRecords > 0 || s.pendBytes > oldBytes
	if s.closed || others && (s.pendRecords+records > s.cfg.MaxPending || s.pendBytes-oldBytes+bytes > s.cfg.MaxPendingBytes) {
		return false
	}
	s.pendRecords += records
	s.pendBytes += bytes - oldBytes
	return true
}

func (s *Source) release(records, bytes int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pendRecords -= records
	s.pendBytes -= bytes
}

// enqueue (ack: delivered) numbers the records, queues them for Read and returns the waiter of
// their request.
func (s *Source) enqueue(recs []connector.Record) (*waiter, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, errClosed
	}
	for i := range recs {
		recs[i].Position = connector.Position{Offset: s.nextSeq}
		s.pending = append(s.pending, pendingRecord{seq: s.nextSeq, size: int64(recs[i].Size())})
		s.nextSeq++
	}
	w := &waiter{last: s.nextSeq - 1, done: make(chan struct{})}
	s.waiters = append(s.waiters, w)
	s.queue = append(s.queue, recs...)
	s.mu.Unlock()
	s.wake()
	return w, nil
}

// accepting reports whether the endpoint takes requests: open, not closing, not draining.
func (s *Source) accepting() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.opened && !s.closed && !s.draining
}

// saturated reports whether the pending bound is reached.
func (s *Source) saturated() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pendRecords >= s.cfg.MaxPending || s.pendBytes >= s.cfg.MaxPendingBytes
}

// Close stops listening, answers the requests still waiting for delivery with 503, and closes the
// write-ahead store (what it holds is delivered after the next Open). It is idempotent.
func (s *Source) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return s.closeErr
	}
	s.closed = true
	for _, w := range s.waiters {
		w.err = errClosed
		close(w.done)
	}
	s.waiters = nil
	srv := s.srv
	s.mu.Unlock()
	s.wake()
	var errs []error
	if srv != nil {
		if err := srv.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("webhook source: shutdown: %w", err))
			srv.Close()
		}
		<-s.serveDone
	}
	if s.store != nil {
		if err := s.store.close(); err != nil {
			errs = append(errs, fmt.Errorf("webhook source: close store: %w", err))
		}
	}
	s.closeErr = errors.Join(errs...)
	return s.closeErr
}
