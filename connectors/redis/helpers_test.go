package redis

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/sluicehq/sluice/internal/testenv"
	"github.com/sluicehq/sluice/sdk/go/connector"
	"github.com/sluicehq/sluice/sdk/go/conntest"
)

// sharedRedis is the address of the Redis `make services` runs. Tests use unique key names on it
// and never stop it.
func sharedRedis(t *testing.T) string {
	t.Helper()
	return testenv.Require(t, "REDIS_ADDR")
}

// unique returns a key prefix no other run of the test has used.
func unique(t *testing.T, prefix string) string {
	t.Helper()
	clean := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, t.Name())
	return fmt.Sprintf("sluicetest:%s:%s:%d", prefix, clean, time.Now().UnixNano())
}

func testCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// client returns a go-redis client of addr, closed with the test.
func client(t *testing.T, addr string) *goredis.Client {
	t.Helper()
	c := goredis.NewClient(&goredis.Options{Addr: addr})
	t.Cleanup(func() { c.Close() })
	return c
}

// dropKeys deletes the keys matching prefix+"*" at the end of the test.
func dropKeys(t *testing.T, c *goredis.Client, prefix string) {
	t.Helper()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		var keys []string
		for iter.Next(ctx) {
			if keys = append(keys, iter.Val()); len(keys) == 1000 {
				c.Unlink(ctx, keys...)
				keys = keys[:0]
			}
		}
		if len(keys) > 0 {
			c.Unlink(ctx, keys...)
		}
	})
}

// newSink builds a sink from manifest-like values through the spec.
func newSink(t *testing.T, values map[string]any, env connector.Env) *Sink {
	t.Helper()
	s, err := NewSink(conntest.Config(t, sinkSpec, values), env)
	if err != nil {
		t.Fatalf("NewSink(%v): %v", values, err)
	}
	return s
}

// openSink builds and opens a sink, closed with the test.
func openSink(t *testing.T, values map[string]any, env connector.Env) *Sink {
	t.Helper()
	s := newSink(t, values, env)
	ctx := testCtx(t, 30*time.Second)
	if err := s.Open(ctx); err != nil {
		s.Close(ctx)
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

func rec(value string) connector.Record { return connector.Record{Value: []byte(value)} }

// failedIndexes returns the indexes a *connector.BatchError names, or fails the test when err is
// not one.
func failedIndexes(t *testing.T, err error) (idx []int, reasons []string) {
	t.Helper()
	var be *connector.BatchError
	if !errors.As(err, &be) {
		t.Fatalf("got %v; want a *connector.BatchError", err)
	}
	for _, f := range be.Failed {
		idx = append(idx, f.Index)
		reasons = append(reasons, f.Err.Error())
	}
	return idx, reasons
}

// privateRedis is a redis-server of the test's own, on its own port and directory, with an
// append-only file fsynced on every write, so that it can be stopped and started again without
// losing what it acknowledged.
type privateRedis struct {
	t    *testing.T
	dir  string
	port int
	args []string
	cmd  *exec.Cmd
}

func startPrivateRedis(t *testing.T, extra ...string) *privateRedis {
	t.Helper()
	return startPrivateRedisOn(t, freePort(t), extra...)
}

func startPrivateRedisOn(t *testing.T, port int, extra ...string) *privateRedis {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("redis-server not found: %v (run `make services`, which installs it)", err)
		}
		t.Skipf("redis-server not found: %v (run `make services`, which installs it)", err)
	}
	p := &privateRedis{t: t, dir: t.TempDir(), port: port}
	p.args = append([]string{"--bind", "127.0.0.1", "--port", strconv.Itoa(p.port), "--dir", p.dir,
		"--save", "", "--appendonly", "yes", "--appendfsync", "always", "--logfile", "redis.log"}, extra...)
	p.args = append([]string{bin}, p.args...)
	p.start()
	t.Cleanup(p.stop)
	return p
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func (p *privateRedis) Addr() string { return fmt.Sprintf("127.0.0.1:%d", p.port) }

// start runs the server and waits until it accepts connections.
func (p *privateRedis) start() {
	p.t.Helper()
	p.cmd = exec.Command(p.args[0], p.args[1:]...)
	p.cmd.Dir = p.dir
	if err := p.cmd.Start(); err != nil {
		p.t.Fatalf("start redis-server: %v", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", p.Addr(), time.Second)
		if err == nil {
			conn.Close()
			return
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(p.dir + "/redis.log")
			p.t.Fatalf("private redis-server on %s did not start: %v\n%s", p.Addr(), err, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop kills the server (SIGKILL: what it acknowledged is in its fsynced append-only file).
func (p *privateRedis) stop() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Kill()
	_ = p.cmd.Wait()
	p.cmd = nil
}

// proxy forwards TCP connections to a Redis server and can lose traffic on purpose: hold
// replies (the server ran the commands, the client never hears back) or hold requests (the
// server never sees them), until cut closes every connection.
type proxy struct {
	l        net.Listener
	upstream string
	mu       sync.Mutex
	conns    []net.Conn
	holdUp   bool // requests are not forwarded
	holdDown bool // replies are not forwarded
	held     int  // bytes dropped while holding, both ways
	// atMulti, when set, is what set holds once a request with MULTI passes: a transaction's
	// request, or its reply, is lost while the round trip before it (WATCH, HMGET) is not.
	atMulti *[2]bool
}

func startProxy(t *testing.T, upstream string) *proxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{l: l, upstream: upstream}
	go p.serve()
	t.Cleanup(func() { l.Close(); p.cut() })
	return p
}

func (p *proxy) Addr() string { return p.l.Addr().String() }

func (p *proxy) serve() {
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		u, err := net.Dial("tcp", p.upstream)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, u)
		p.mu.Unlock()
		go p.pipe(u, c, p.holdRequest)
		go p.pipe(c, u, func([]byte) bool { return p.holdDown })
	}
}

// holdRequest reports whether a request is dropped, arming a holdAtMulti on its MULTI. Called
// with p.mu held.
func (p *proxy) holdRequest(req []byte) bool {
	if p.atMulti != nil && bytes.Contains(bytes.ToLower(req), []byte("\r\nmulti\r\n")) {
		p.holdUp, p.holdDown = p.atMulti[0], p.atMulti[1]
		p.atMulti = nil
	}
	return p.holdUp
}

// pipe copies from src to dst, dropping what arrives while hold says so.
func (p *proxy) pipe(dst, src net.Conn, hold func([]byte) bool) {
	buf := make([]byte, 64<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			h := hold(buf[:n])
			if h {
				p.held += n
			}
			p.mu.Unlock()
			if !h {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
			}
		}
		if err != nil {
			dst.Close()
			return
		}
	}
}

// set chooses what is held from now on.
func (p *proxy) set(holdUp, holdDown bool) {
	p.mu.Lock()
	p.holdUp, p.holdDown = holdUp, holdDown
	p.mu.Unlock()
}

// holdAtMulti is set for the next request with MULTI, from that request on.
func (p *proxy) holdAtMulti(holdUp, holdDown bool) {
	p.mu.Lock()
	p.atMulti = &[2]bool{holdUp, holdDown}
	p.mu.Unlock()
}

// heldBytes is how many bytes were dropped while holding.
func (p *proxy) heldBytes() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.held
}

// cut closes every connection and stops holding anything.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
	p.holdUp, p.holdDown, p.atMulti = false, false, nil
}
