// Package websocket provides the websocket source: messages from a WebSocket feed it connects to
// (client mode), or from the clients that connect to it (server mode), one record per message.
package websocket

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/sluicehq/sluice/connectors/internal/pause"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

var spec = connector.Spec{
	Name:    "websocket",
	Summary: "Messages from a WebSocket feed (client mode) or from clients connecting to it (server mode).",
	Description: "Each WebSocket message, text or binary, becomes one record; its value is the message payload.\n\n" +
		"**Client mode** connects to `url`, sends `subscribe` (when set) after every connect, and " +
		"reconnects with exponential backoff and jitter (`reconnect_min` to `reconnect_max`) whenever the " +
		"connection drops or a ping is not answered within `ping_interval`. The first connect happens in " +
		"Open: an unreachable feed keeps the pipeline starting (not ready) while the runtime retries. A " +
		"handshake the server refuses with 401 or 403 is a permanent error.\n\n" +
		"**Server mode** listens on `address` and accepts WebSocket upgrades on `path` from up to " +
		"`max_connections` clients at once (for example user-interaction events from a web app), with an " +
		"optional bearer token.\n\n" +
		"**Backpressure** is per connection: messages wait in a queue of `buffer` records; when it is " +
		"full, a connection is not read further until there is room, so a fast client is slowed by TCP " +
		"flow control instead of growing memory, and other connections keep their share.\n\n" +
		"**Delivery.** A WebSocket feed cannot be replayed: positions number messages in arrival order " +
		"and are not resumable after a restart. Messages received but not yet delivered when the process " +
		"is killed are lost; use a source with an upstream log (Kafka, Pulsar, a webhook with " +
		"`ack: durable`) where that matters.\n\n" +
		"A message over `max_message_bytes` is not dropped: its first bytes go to the dead letters with " +
		"the reason. Headers: `ws_message_type` (text or binary), and `ws_url` (client) or " +
		"`ws_remote_addr` (server).",
	Fields: []connector.Field{
		{Name: "mode", Type: connector.TypeString, Default: "client", Enum: []string{"client", "server"}, Description: "Connect to a feed (client) or accept connections (server)."},
		{Name: "url", Type: connector.TypeString, Description: "Client mode: the feed's ws:// or wss:// URL.", Example: "wss://feed.example.com/prices"},
		{Name: "headers", Type: connector.TypeMap, Elem: &connector.Field{Type: connector.TypeString}, Description: "Client mode: headers of the handshake request (authentication, for example)."},
		{Name: "subscribe", Type: connector.TypeString, Default: "", Description: "Client mode: a text message sent after every connect; empty sends nothing.", Example: `{"op":"sub","channel":"prices"}`},
		{Name: "ping_interval", Type: connector.TypeDuration, Default: 30 * time.Second, Description: "Client mode: how often to ping the feed; a ping not answered within the interval reconnects. 0 disables pings."},
		{Name: "reconnect_min", Type: connector.TypeDuration, Default: 500 * time.Millisecond, Description: "Client mode: the first reconnect delay; it doubles up to reconnect_max."},
		{Name: "reconnect_max", Type: connector.TypeDuration, Default: 30 * time.Second, Description: "Client mode: the longest reconnect delay."},
		{Name: "ca_file", Type: connector.TypeString, Default: "", Description: "Client mode: PEM file of the certificate authorities to trust for wss://, instead of the system's."},
		{Name: "address", Type: connector.TypeString, Default: "127.0.0.1:8080", Description: "Server mode: the address to listen on.", Example: ":8080"},
		{Name: "path", Type: connector.TypeString, Default: "/", Description: "Server mode: the path that accepts WebSocket upgrades."},
		{Name: "bearer_token", Type: connector.TypeString, Default: "", Secret: true, Description: "Server mode: when set, clients must send `Authorization: Bearer <token>`, or (browsers cannot set headers on a WebSocket) the query parameter `access_token=<token>`."},
		{Name: "origins", Type: connector.TypeList, Elem: &connector.Field{Type: connector.TypeString}, Description: "Server mode: host patterns (path.Match syntax, like `*.example.com`) of the web pages allowed to connect from a browser. By default only pages served from the same host may; clients that send no Origin header (programs) are always allowed.", Example: []any{"app.example.com"}},
		{Name: "max_connections", Type: connector.TypeInt, Default: int64(1024), Description: "Server mode: connections served at once; more are answered 503."},
		{Name: "max_message_bytes", Type: connector.TypeByteSize, Default: int64(1 << 20), Description: "Longest message taken as a record; a longer one goes to the dead letters."},
		{Name: "buffer", Type: connector.TypeInt, Default: int64(1024), Description: "Messages queued between the connections and the pipeline."},
		{Name: "batch_size", Type: connector.TypeInt, Default: int64(1024), Description: "Most records handed to the pipeline at once."},
	},
}

// Component returns the websocket source, for a catalog.
func Component() connector.Component {
	return connector.SourceComponent(spec, func(cfg connector.Config, env connector.Env) (connector.Source, error) {
		return New(cfg, env)
	})
}

type config struct {
	Mode         string            `config:"mode"`
	URL          string            `config:"url"`
	Headers      map[string]string `config:"headers"`
	Subscribe    string            `config:"subscribe"`
	PingInterval time.Duration     `config:"ping_interval"`
	ReconnectMin time.Duration     `config:"reconnect_min"`
	ReconnectMax time.Duration     `config:"reconnect_max"`
	CAFile       string            `config:"ca_file"`
	Address      string            `config:"address"`
	Path         string            `config:"path"`
	BearerToken  string            `config:"bearer_token"`
	Origins      []string          `config:"origins"`
	MaxConns     int               `config:"max_connections"`
	MaxMessage   int64             `config:"max_message_bytes"`
	Buffer       int               `config:"buffer"`
	BatchSize    int               `config:"batch_size"`
}

// Source is the websocket source. Read is called from one goroutine.
type Source struct {
	cfg config
	log *slog.Logger

	msgs chan connector.Record
	seq  int64 // last position handed out; Read's goroutine only

	mu       sync.Mutex
	cancel   context.CancelFunc
	done     sync.WaitGroup
	server   *http.Server
	addr     net.Addr
	fatal    error // a permanent failure of the background loop, returned by Read
	fatalCh  chan struct{}
	closed   bool
	conns    atomic.Int64
	received atomic.Int64
}

var _ connector.Source = (*Source)(nil)

// New builds a websocket source. It does no I/O.
func New(cfg connector.Config, env connector.Env) (*Source, error) {
	var c config
	if err := spec.Decode(cfg, &c); err != nil {
		return nil, err
	}
	switch c.Mode {
	case "client":
		if c.URL == "" {
			return nil, &connector.ConfigError{Field: "url", Msg: "is required in client mode", Hint: "set url: wss://host/path, or mode: server"}
		}
		u, err := url.Parse(c.URL)
		if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
			return nil, &connector.ConfigError{Field: "url", Msg: fmt.Sprintf("%q is not a ws:// or wss:// URL", c.URL)}
		}
	case "server":
		if !strings.HasPrefix(c.Path, "/") {
			return nil, &connector.ConfigError{Field: "path", Msg: fmt.Sprintf("%q must start with /", c.Path)}
		}
		if _, _, err := net.SplitHostPort(c.Address); err != nil {
			return nil, &connector.ConfigError{Field: "address", Msg: fmt.Sprintf("%q is not host:port: %v", c.Address, err)}
		}
		if c.MaxConns < 1 {
			return nil, &connector.ConfigError{Field: "max_connections", Msg: "must be at least 1"}
		}
	}
	if c.PingInterval < 0 {
		return nil, &connector.ConfigError{Field: "ping_interval", Msg: "must not be negative"}
	}
	if c.ReconnectMin <= 0 {
		return nil, &connector.ConfigError{Field: "reconnect_min", Msg: "must be greater than 0"}
	}
	if c.ReconnectMax < c.ReconnectMin {
		return nil, &connector.ConfigError{Field: "reconnect_max", Msg: fmt.Sprintf("%s is less than reconnect_min (%s)", c.ReconnectMax, c.ReconnectMin)}
	}
	if c.MaxMessage < 1 {
		return nil, &connector.ConfigError{Field: "max_message_bytes", Msg: "must be at least 1"}
	}
	if c.Buffer < 1 {
		return nil, &connector.ConfigError{Field: "buffer", Msg: "must be at least 1"}
	}
	if c.BatchSize < 1 {
		return nil, &connector.ConfigError{Field: "batch_size", Msg: "must be at least 1"}
	}
	log := env.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Source{cfg: c, log: log, msgs: make(chan connector.Record, c.Buffer), fatalCh: make(chan struct{})}, nil
}

// Open connects to the feed (client mode) or starts listening (server mode). Positions to resume
// from are ignored: a WebSocket feed cannot be replayed.
func (s *Source) Open(ctx context.Context, _ []connector.Position) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("websocket: source is closed")
	}
	if s.cancel != nil {
		return errors.New("websocket: source is already open")
	}
	bg, cancel := context.WithCancel(context.Background())
	switch s.cfg.Mode {
	case "client":
		opts, err := s.dialOptions()
		if err != nil {
			cancel()
			return err
		}
		conn, err := s.dial(ctx, opts)
		if err != nil {
			cancel()
			return err
		}
		s.cancel = cancel
		s.done.Add(1)
		go s.runClient(bg, opts, conn)
	case "server":
		ln, err := net.Listen("tcp", s.cfg.Address)
		if err != nil {
			cancel()
			return fmt.Errorf("websocket: listen on %s: %w (set address to a free port)", s.cfg.Address, err)
		}
		s.addr = ln.Addr()
		mux := http.NewServeMux()
		mux.HandleFunc(s.cfg.Path, func(w http.ResponseWriter, r *http.Request) { s.serve(bg, w, r) })
		s.server = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, BaseContext: func(net.Listener) context.Context { return bg }}
		s.cancel = cancel
		s.done.Add(1)
		go func() {
			defer s.done.Done()
			if err := s.server.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.fail(fmt.Errorf("websocket: server on %s: %w", s.addr, err))
			}
		}()
		s.log.Info("websocket server listening", "address", s.addr.String(), "path", s.cfg.Path)
	default:
		cancel()
		return fmt.Errorf("websocket: mode %q: want client or server", s.cfg.Mode)
	}
	return nil
}

// Addr is the server mode's listening address, once open.
func (s *Source) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

func (s *Source) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fatal == nil {
		s.fatal = err
		close(s.fatalCh)
	}
}

// Read returns the messages queued, at least one, at most batch_size.
func (s *Source) Read(ctx context.Context) ([]connector.Record, error) {
	var first connector.Record
	select {
	case first = <-s.msgs:
	case <-s.fatalCh:
		return nil, s.fatal
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	out := make([]connector.Record, 0, min(s.cfg.BatchSize, 1+len(s.msgs)))
	out = append(out, s.position(first))
	for len(out) < s.cfg.BatchSize {
		select {
		case r := <-s.msgs:
			out = append(out, s.position(r))
		default:
			return out, nil
		}
	}
	return out, nil
}

func (s *Source) position(r connector.Record) connector.Record {
	s.seq++
	r.Position = connector.Position{Offset: s.seq}
	return r
}

// Ack does nothing: a WebSocket feed has no upstream to acknowledge to.
func (s *Source) Ack(context.Context, []connector.Position) error { return nil }

// Close disconnects, or stops the server and closes every client connection. Messages queued but
// not yet read are dropped, like any message not yet delivered when a feed is left.
func (s *Source) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	cancel, server := s.cancel, s.server
	s.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	if server != nil {
		_ = server.Close() // hijacked connections end with the cancelled context
	}
	done := make(chan struct{})
	go func() { s.done.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("websocket: close: %w", ctx.Err())
	}
}

// ---- client mode ----

func (s *Source) dialOptions() (*websocket.DialOptions, error) {
	h := http.Header{}
	for k, v := range s.cfg.Headers {
		h.Set(k, v)
	}
	opts := &websocket.DialOptions{HTTPHeader: h}
	if s.cfg.CAFile != "" {
		pem, err := os.ReadFile(s.cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("websocket: ca_file: %w: %w", err, connector.ErrPermanent)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("websocket: ca_file %s holds no PEM certificate: %w", s.cfg.CAFile, connector.ErrPermanent)
		}
		opts.HTTPClient = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	}
	return opts, nil
}

func (s *Source) dial(ctx context.Context, opts *websocket.DialOptions) (*websocket.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, resp, err := websocket.Dial(dctx, s.cfg.URL, opts)
	if err != nil {
		if resp != nil && (resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden) {
			return nil, fmt.Errorf("websocket: %s refused the handshake with %s; check the headers' credentials: %w", s.redactedURL(), resp.Status, connector.ErrPermanent)
		}
		return nil, fmt.Errorf("websocket: connect to %s: %w", s.redactedURL(), err)
	}
	conn.SetReadLimit(-1) // the source enforces max_message_bytes itself, to dead-letter instead of disconnect
	if s.cfg.Subscribe != "" {
		if err := conn.Write(dctx, websocket.MessageText, []byte(s.cfg.Subscribe)); err != nil {
			conn.CloseNow()
			return nil, fmt.Errorf("websocket: send the subscribe message to %s: %w", s.redactedURL(), err)
		}
	}
	s.log.Info("websocket connected", "url", s.redactedURL())
	return conn, nil
}

func (s *Source) redactedURL() string {
	u, err := url.Parse(s.cfg.URL)
	if err != nil {
		return "the feed"
	}
	return u.Redacted()
}

// runClient reads the connection until it drops, then reconnects with backoff, until ctx ends.
func (s *Source) runClient(ctx context.Context, opts *websocket.DialOptions, conn *websocket.Conn) {
	defer s.done.Done()
	attempt := 0
	for {
		err := s.readConn(ctx, conn, []connector.Header{{Key: "ws_url", Value: []byte(s.redactedURL())}}, true)
		conn.CloseNow()
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("websocket connection dropped; reconnecting", "url", s.redactedURL(), "err", err)
		for {
			attempt++
			if pause.Sleep(ctx, pause.Backoff(attempt, s.cfg.ReconnectMin, s.cfg.ReconnectMax)) != nil {
				return
			}
			conn, err = s.dial(ctx, opts)
			if err == nil {
				attempt = 0
				break
			}
			if errors.Is(err, connector.ErrPermanent) {
				s.fail(err)
				return
			}
			if ctx.Err() != nil {
				return
			}
			s.log.Warn("websocket reconnect failed", "attempt", attempt, "err", err)
		}
	}
}

// readConn turns the connection's messages into records until it fails or ctx ends. With ping
// set it pings the peer every ping_interval, and gives up on the connection when a ping is not
// answered within the interval.
func (s *Source) readConn(ctx context.Context, conn *websocket.Conn, headers []connector.Header, ping bool) error {
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if ping && s.cfg.PingInterval > 0 {
		go func() {
			t := time.NewTicker(s.cfg.PingInterval)
			defer t.Stop()
			for {
				select {
				case <-cctx.Done():
					return
				case <-t.C:
				}
				pctx, pcancel := context.WithTimeout(cctx, s.cfg.PingInterval)
				err := conn.Ping(pctx)
				pcancel()
				if err != nil && cctx.Err() == nil {
					s.log.Warn("websocket ping not answered; closing the connection", "err", err)
					conn.CloseNow()
					return
				}
			}
		}()
	}
	for {
		typ, r, err := conn.Reader(cctx)
		if err != nil {
			return err
		}
		rec, err := s.message(typ, r, headers)
		if err != nil {
			return err
		}
		select {
		case s.msgs <- rec:
			s.received.Add(1)
		case <-cctx.Done():
			return cctx.Err()
		}
	}
}

// message reads one message into a record, or into a malformed record when it is too long.
func (s *Source) message(typ websocket.MessageType, r io.Reader, headers []connector.Header) (connector.Record, error) {
	buf, err := io.ReadAll(io.LimitReader(r, s.cfg.MaxMessage+1))
	if err != nil {
		return connector.Record{}, err
	}
	kind := "text"
	if typ == websocket.MessageBinary {
		kind = "binary"
	}
	hs := make([]connector.Header, 0, len(headers)+2)
	hs = append(hs, headers...)
	hs = append(hs, connector.Header{Key: "ws_message_type", Value: []byte(kind)})
	rec := connector.Record{Value: buf, Time: time.Now()}
	if int64(len(buf)) > s.cfg.MaxMessage {
		rest, err := io.Copy(io.Discard, r)
		if err != nil {
			return connector.Record{}, err
		}
		total := int64(len(buf)) + rest
		rec.Value = buf[:min(int64(len(buf)), 4096)]
		reason := fmt.Sprintf("message of %d bytes is longer than max_message_bytes (%d); the value holds its first %d bytes", total, s.cfg.MaxMessage, len(rec.Value))
		hs = append(hs, connector.Header{Key: connector.HeaderMalformed, Value: []byte(reason)})
	}
	rec.Headers = hs
	return rec, nil
}

// ---- server mode ----

func (s *Source) serve(ctx context.Context, w http.ResponseWriter, r *http.Request) {
	if s.cfg.BearerToken != "" {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			got, ok = r.URL.Query().Get("access_token"), r.URL.Query().Has("access_token")
		}
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(s.cfg.BearerToken)) != 1 {
			w.Header().Set("WWW-Authenticate", "Bearer")
			http.Error(w, "missing or wrong bearer token", http.StatusUnauthorized)
			return
		}
	}
	if n := s.conns.Add(1); n > int64(s.cfg.MaxConns) {
		s.conns.Add(-1)
		w.Header().Set("Retry-After", "5")
		http.Error(w, "too many connections", http.StatusServiceUnavailable)
		return
	}
	defer s.conns.Add(-1)
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{OriginPatterns: s.cfg.Origins})
	if err != nil {
		s.log.Debug("websocket upgrade failed", "remote", r.RemoteAddr, "err", err)
		return
	}
	conn.SetReadLimit(-1)
	defer conn.CloseNow()
	err = s.readConn(ctx, conn, []connector.Header{{Key: "ws_remote_addr", Value: []byte(r.RemoteAddr)}}, false)
	switch status := websocket.CloseStatus(err); {
	case status == websocket.StatusNormalClosure || status == websocket.StatusGoingAway:
	case ctx.Err() != nil:
		conn.Close(websocket.StatusGoingAway, "source closing")
	default:
		s.log.Debug("websocket client connection ended", "remote", r.RemoteAddr, "err", err)
	}
}

// ---- helpers ----
