package websocket

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/sluicehq/sluice/sdk/go/connector"
	"github.com/sluicehq/sluice/sdk/go/conntest"
)

func newSource(t *testing.T, values map[string]any) *Source {
	t.Helper()
	cfg := conntest.Config(t, spec, values)
	s, err := New(cfg, connector.Env{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func header(r connector.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func TestServerDeliversEveryMessageOfManyClients(t *testing.T) {
	ctx := testCtx(t)
	s := newSource(t, map[string]any{"mode": "server", "address": "127.0.0.1:0", "path": "/events", "buffer": 64, "batch_size": 100})
	if err := s.Open(ctx, nil); err != nil {
		t.Fatal(err)
	}
	const clients, each = 100, 200
	url := "ws://" + s.Addr().String() + "/events"
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, _, err := websocket.Dial(ctx, url, nil)
			if err != nil {
				errs <- err
				return
			}
			defer conn.Close(websocket.StatusNormalClosure, "")
			for i := range each {
				if err := conn.Write(ctx, websocket.MessageText, fmt.Appendf(nil, `{"client":%d,"i":%d}`, c, i)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	recs := conntest.ReadN(t, ctx, s, clients*each)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("client: %v", err)
	}
	seen := map[string]bool{}
	for i, r := range recs {
		if seen[string(r.Value)] {
			t.Fatalf("message %s delivered twice", r.Value)
		}
		seen[string(r.Value)] = true
		if r.Position.Offset != int64(i+1) {
			t.Fatalf("record %d has offset %d; positions number messages in read order", i, r.Position.Offset)
		}
		if header(r, "ws_message_type") != "text" || !strings.HasPrefix(header(r, "ws_remote_addr"), "127.0.0.1:") {
			t.Fatalf("headers %v", r.Headers)
		}
	}
	for c := range clients {
		for i := range each {
			if !seen[fmt.Sprintf(`{"client":%d,"i":%d}`, c, i)] {
				t.Fatalf("message %d of client %d missing", i, c)
			}
		}
	}
}

// TestServerBackpressure: while the pipeline reads nothing, the source takes no more than its
// buffer, and a client sending without pause is eventually held back by TCP flow control instead
// of growing the source's memory.
func TestServerBackpressure(t *testing.T) {
	ctx := testCtx(t)
	const buffer = 4
	s := newSource(t, map[string]any{"mode": "server", "address": "127.0.0.1:0", "buffer": buffer})
	if err := s.Open(ctx, nil); err != nil {
		t.Fatal(err)
	}
	conn, _, err := websocket.Dial(ctx, "ws://"+s.Addr().String()+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	msg := make([]byte, 64<<10)
	const most = 4096 // 256 MiB: far more than any socket buffers hold
	sent := 0
	for ; sent < most; sent++ {
		wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := conn.Write(wctx, websocket.MessageBinary, msg)
		cancel()
		if err != nil {
			break
		}
	}
	if sent == most {
		t.Fatalf("the client sent %d MiB while the pipeline read nothing: the source does not hold it back", most*len(msg)>>20)
	}
	if got := s.received.Load(); got > buffer {
		t.Fatalf("the source took %d messages into a buffer of %d", got, buffer)
	}
	t.Logf("client held back after %d messages of 64 KiB (source buffer %d)", sent, buffer)
}

func TestServerAuthAndConnectionLimit(t *testing.T) {
	ctx := testCtx(t)
	s := newSource(t, map[string]any{"mode": "server", "address": "127.0.0.1:0", "bearer_token": "s3cret", "max_connections": 1})
	if err := s.Open(ctx, nil); err != nil {
		t.Fatal(err)
	}
	base := "ws://" + s.Addr().String() + "/"
	if _, resp, err := websocket.Dial(ctx, base, nil); err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("no token: %v, %v", resp, err)
	}
	bad := &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer nope"}}}
	if _, resp, err := websocket.Dial(ctx, base, bad); err == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong token: %v, %v", resp, err)
	}
	good := &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer s3cret"}}}
	c1, _, err := websocket.Dial(ctx, base, good)
	if err != nil {
		t.Fatalf("right token: %v", err)
	}
	defer c1.CloseNow()
	if err := c1.Write(ctx, websocket.MessageText, []byte("one")); err != nil {
		t.Fatal(err)
	}
	conntest.ReadN(t, ctx, s, 1) // c1 is served
	if _, resp, err := websocket.Dial(ctx, base+"?access_token=s3cret", nil); err == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("second connection over max_connections: %v, %v", resp, err)
	}
	c1.Close(websocket.StatusNormalClosure, "")
	// Once c1 is gone, a browser-style client with the token in the query is served.
	var c2 *websocket.Conn
	for c2 == nil {
		c, resp, err := websocket.Dial(ctx, base+"?access_token=s3cret", nil)
		switch {
		case err == nil:
			c2 = c
		case resp != nil && resp.StatusCode == http.StatusServiceUnavailable:
			time.Sleep(20 * time.Millisecond)
		default:
			t.Fatal(err)
		}
	}
	defer c2.CloseNow()
	if err := c2.Write(ctx, websocket.MessageText, []byte("two")); err != nil {
		t.Fatal(err)
	}
	if r := conntest.ReadN(t, ctx, s, 1); string(r[0].Value) != "two" {
		t.Fatalf("got %q", r[0].Value)
	}
}

func TestOversizedMessageIsMalformed(t *testing.T) {
	ctx := testCtx(t)
	s := newSource(t, map[string]any{"mode": "server", "address": "127.0.0.1:0", "max_message_bytes": 10})
	if err := s.Open(ctx, nil); err != nil {
		t.Fatal(err)
	}
	conn, _, err := websocket.Dial(ctx, "ws://"+s.Addr().String()+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	for _, m := range []string{"short", strings.Repeat("x", 25), "after"} {
		if err := conn.Write(ctx, websocket.MessageText, []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	recs := conntest.ReadN(t, ctx, s, 3)
	if string(recs[0].Value) != "short" || header(recs[0], connector.HeaderMalformed) != "" {
		t.Fatalf("first: %q %v", recs[0].Value, recs[0].Headers)
	}
	reason := header(recs[1], connector.HeaderMalformed)
	if !strings.Contains(reason, "message of 25 bytes is longer than max_message_bytes (10)") || len(recs[1].Value) != 11 {
		t.Fatalf("oversized: value %q, reason %q", recs[1].Value, reason)
	}
	if string(recs[2].Value) != "after" {
		t.Fatalf("the connection must go on after an oversized message; got %q", recs[2].Value)
	}
}

// feed is a WebSocket feed for client mode: it records subscribe messages and connections, and
// serves messages from a shared sequence; drop makes it cut the current connection after that
// many messages.
type feed struct {
	srv        *httptest.Server
	conns      atomic.Int32
	subscribes chan string
	next       atomic.Int64
	total      int64
	dropAfter  int64 // cut each connection after this many messages (0: never)
	answerPing bool
}

func newFeed(t *testing.T, total, dropAfter int64, answerPing bool) *feed {
	f := &feed{subscribes: make(chan string, 100), total: total, dropAfter: dropAfter, answerPing: answerPing}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Key") != "k" {
			http.Error(w, "no key", http.StatusForbidden)
			return
		}
		conn, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer conn.CloseNow()
		f.conns.Add(1)
		_, sub, err := conn.Read(r.Context())
		if err != nil {
			return
		}
		f.subscribes <- string(sub)
		if f.answerPing {
			conn.CloseRead(r.Context()) // reads (and answers pings) in the background
		}
		sentHere := int64(0)
		for {
			i := f.next.Add(1)
			if i > f.total {
				<-r.Context().Done()
				return
			}
			if err := conn.Write(r.Context(), websocket.MessageText, fmt.Appendf(nil, "m%d", i)); err != nil {
				f.next.Add(-1)
				return
			}
			sentHere++
			if f.dropAfter > 0 && sentHere == f.dropAfter {
				return // CloseNow: an abrupt drop
			}
		}
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *feed) url() string { return "ws" + strings.TrimPrefix(f.srv.URL, "http") + "/prices" }

func TestClientReconnectsAfterADroppedConnection(t *testing.T) {
	ctx := testCtx(t)
	f := newFeed(t, 1000, 300, true)
	s := newSource(t, map[string]any{"url": f.url(), "headers": map[string]any{"X-Key": "k"}, "subscribe": `{"op":"sub"}`,
		"reconnect_min": 10 * time.Millisecond, "reconnect_max": 50 * time.Millisecond})
	if err := s.Open(ctx, nil); err != nil {
		t.Fatal(err)
	}
	recs := conntest.ReadN(t, ctx, s, 1000)
	for i, r := range recs {
		if want := fmt.Sprintf("m%d", i+1); string(r.Value) != want {
			t.Fatalf("record %d = %q, want %q", i, r.Value, want)
		}
		if header(r, "ws_url") != f.url() {
			t.Fatalf("ws_url header: %v", r.Headers)
		}
	}
	if n := f.conns.Load(); n < 4 {
		t.Fatalf("%d connections for 1000 messages cut every 300: the client did not reconnect", n)
	}
	for range f.conns.Load() {
		if sub := <-f.subscribes; sub != `{"op":"sub"}` {
			t.Fatalf("subscribe message %q", sub)
		}
	}
}

// TestClientReconnectsWhenPingsGoUnanswered: a feed that stops reading (so never answers pings)
// is left for a new connection.
func TestClientReconnectsWhenPingsGoUnanswered(t *testing.T) {
	ctx := testCtx(t)
	f := newFeed(t, 0, 0, false) // sends nothing after subscribe, never reads again
	s := newSource(t, map[string]any{"url": f.url(), "headers": map[string]any{"X-Key": "k"}, "subscribe": "s",
		"ping_interval": 50 * time.Millisecond, "reconnect_min": 10 * time.Millisecond, "reconnect_max": 20 * time.Millisecond})
	if err := s.Open(ctx, nil); err != nil {
		t.Fatal(err)
	}
	for f.conns.Load() < 3 {
		select {
		case <-ctx.Done():
			t.Fatalf("only %d connections: unanswered pings did not make the client reconnect", f.conns.Load())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func TestClientOpenErrors(t *testing.T) {
	ctx := testCtx(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s := newSource(t, map[string]any{"url": "ws://" + addr + "/"})
	err = s.Open(ctx, nil)
	if err == nil || errors.Is(err, connector.ErrPermanent) || !strings.Contains(err.Error(), "connect to ws://"+addr) {
		t.Fatalf("unreachable feed: %v (want a transient error naming the URL)", err)
	}
	f := newFeed(t, 1, 0, true)
	s = newSource(t, map[string]any{"url": f.url()}) // no X-Key: 403
	if err := s.Open(ctx, nil); !errors.Is(err, connector.ErrPermanent) || !strings.Contains(err.Error(), "403") {
		t.Fatalf("refused handshake: %v (want permanent, naming the status)", err)
	}
}

func TestConfigErrors(t *testing.T) {
	cases := []struct {
		values map[string]any
		field  string
	}{
		{map[string]any{}, "url"},
		{map[string]any{"url": "http://x/"}, "url"},
		{map[string]any{"url": "ws://"}, "url"},
		{map[string]any{"mode": "server", "path": "events"}, "path"},
		{map[string]any{"mode": "server", "address": "nohost"}, "address"},
		{map[string]any{"url": "ws://x/", "reconnect_min": time.Second, "reconnect_max": time.Millisecond}, "reconnect_max"},
		{map[string]any{"url": "ws://x/", "buffer": 0}, "buffer"},
		{map[string]any{"mode": "server", "max_connections": 0}, "max_connections"},
	}
	for _, c := range cases {
		cfg := conntest.Config(t, spec, c.values)
		_, err := New(cfg, connector.Env{})
		var ce *connector.ConfigError
		if !errors.As(err, &ce) || ce.Field != c.field {
			t.Errorf("%v: error %v, want a ConfigError on %s", c.values, err, c.field)
		}
	}
}

func TestCloseIsIdempotentAndStopsReads(t *testing.T) {
	ctx := testCtx(t)
	s := newSource(t, map[string]any{"mode": "server", "address": "127.0.0.1:0"})
	if err := s.Close(ctx); err != nil { // close before open
		t.Fatal(err)
	}
	s = newSource(t, map[string]any{"mode": "server", "address": "127.0.0.1:0"})
	if err := s.Open(ctx, nil); err != nil {
		t.Fatal(err)
	}
	conn, _, err := websocket.Dial(ctx, "ws://"+s.Addr().String()+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { _, err := s.Read(rctx); done <- err }()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("read after cancel: %v", err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, err := conn.Read(ctx); websocket.CloseStatus(err) != websocket.StatusGoingAway && err == nil {
		t.Fatalf("client connection after Close: %v", err)
	}
}
