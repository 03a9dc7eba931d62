package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/testenv"
	"github.com/sluicehq/sluice/sdk/go/connector"
	"github.com/sluicehq/sluice/sdk/go/conntest"
)

// start builds and opens a webhook source on a free port of the loopback interface.
func start(t *testing.T, dir string, values map[string]any, resume ...connector.Position) *Source {
	t.Helper()
	cfg := map[string]any{"address": "127.0.0.1:0", "path": "/events"}
	for k, v := range values {
		cfg[k] = v
	}
	s, err := NewSource(conntest.Config(t, sourceSpec, cfg), connector.Env{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Open(context.Background(), resume); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

func post(t *testing.T, s *Source, body string, header ...string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+s.Addr()+"/events", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, strings.TrimSpace(string(b))
}

// readN reads until n records came, acking nothing.
func readN(t *testing.T, s *Source, n int) []connector.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return conntest.ReadN(t, ctx, s, n)
}

func values(recs []connector.Record) string {
	var b []string
	for _, r := range recs {
		b = append(b, string(r.Value))
	}
	return strings.Join(b, " ")
}

func TestBodiesAndPositions(t *testing.T) {
	s := start(t, t.TempDir(), map[string]any{"headers": []any{"X-GitHub-Event", "Sluice-Malformed"}})
	for _, tc := range []struct{ body, ct, want string }{
		{`{"action":"opened","number":7}`, "application/json", `{"action":"opened","number":7}`},
		{` [ {"a":1}, {"a":[2,3]} , "s" ] `, "application/json", `{"a":1} {"a":[2,3]} "s"`},
		{"{\"n\":1}\n\n{\"n\":2}\r\n", "application/x-ndjson", `{"n":1} {"n":2}`},
		{"{\"n\":3}\n{\"n\":4}", "text/plain", `{"n":3} {"n":4}`},
		{"[1,2]\n[3]", "application/x-ndjson", `[1,2] [3]`},
	} {
		status, _, body := post(t, s, tc.body, "Content-Type", tc.ct, "X-GitHub-Event", "pull_request", "Sluice-Malformed", "ignored")
		if status != http.StatusOK {
			t.Fatalf("%q: %d %s", tc.body, status, body)
		}
		n := strings.Count(tc.want, " ") + 1
		recs := readN(t, s, n)
		if got := values(recs); got != tc.want {
			t.Fatalf("%q gave %s, want %s", tc.body, got, tc.want)
		}
		if body != fmt.Sprintf(`{"accepted":%d}`, n) {
			t.Fatalf("answer %s", body)
		}
		for _, r := range recs {
			if len(r.Headers) != 1 || r.Headers[0].Key != "X-Github-Event" || string(r.Headers[0].Value) != "pull_request" {
				t.Fatalf("headers %v", r.Headers)
			}
		}
	}
	for _, bad := range []string{`{"a":`, "{\"n\":1}\n{\"n\":2,}\n"} {
		status, _, body := post(t, s, bad)
		if status != http.StatusBadRequest || !strings.Contains(body, "not JSON") {
			t.Fatalf("%q: %d %s", bad, status, body)
		}
	}
	if status, _, body := post(t, s, "\n"); status != http.StatusOK || body != `{"accepted":0}` {
		t.Fatalf("empty body: %d %s", status, body)
	}
	if code, _, _ := post(t, s, "[1]", "Content-Type", "application/json"); code != 200 {
		t.Fatal(code)
	}
	last := readN(t, s, 1)[0]
	if last.Position.Offset != 11 {
		t.Fatalf("the 11th record has offset %d", last.Position.Offset)
	}
	resp, err := http.Get("http://" + s.Addr() + "/events")
	if err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET: %v %v", resp.StatusCode, err)
	}
	resp.Body.Close()
}

// TestDurableRecordsSurviveARestart: records answered 2xx and not acked come back after the
// source is closed and opened again at the checkpoint; acked ones do not.
func TestDurableRecordsSurviveARestart(t *testing.T) {
	dir := t.TempDir()
	s := start(t, dir, nil)
	for i := range 10 {
		if code, _, body := post(t, s, fmt.Sprintf(`[{"i":%d},{"i":%d}]`, 2*i, 2*i+1)); code != 200 {
			t.Fatalf("%d %s", code, body)
		}
	}
	recs := readN(t, s, 20)
	// The engine checkpointed the 7th record, and acked only the 5th before the crash.
	if err := s.Ack(context.Background(), []connector.Position{recs[4].Position}); err != nil {
		t.Fatal(err)
	}
	s.Close(context.Background())
	s2 := start(t, dir, nil, recs[6].Position)
	again := readN(t, s2, 13)
	if got, want := values(again), values(recs[7:]); got != want {
		t.Fatalf("after the restart: %s, want %s", got, want)
	}
	if again[0].Position.Offset != recs[7].Position.Offset {
		t.Fatalf("replayed record has offset %d, want %d", again[0].Position.Offset, recs[7].Position.Offset)
	}
	if code, _, _ := post(t, s2, `{"i":20}`); code != 200 {
		t.Fatal(code)
	}
	if r := readN(t, s2, 1)[0]; r.Position.Offset != 21 || string(r.Value) != `{"i":20}` {
		t.Fatalf("new record after restart: %s at %d", r.Value, r.Position.Offset)
	}
}

func TestDeliveredAnswersOnceAcked(t *testing.T) {
	s := start(t, "", map[string]any{"ack": "delivered", "delivery_timeout": 300 * time.Millisecond})
	type result struct {
		code int
		body string
	}
	done := make(chan result, 1)
	go func() {
		code, _, body := post(t, s, `[{"a":1},{"a":2}]`)
		done <- result{code, body}
	}()
	recs := readN(t, s, 2)
	select {
	case r := <-done:
		t.Fatalf("answered %d %s before the records were acked", r.code, r.body)
	case <-time.After(50 * time.Millisecond):
	}
	s.Ack(context.Background(), []connector.Position{recs[0].Position})
	select {
	case r := <-done:
		t.Fatalf("answered %d %s with one of two records acked", r.code, r.body)
	case <-time.After(50 * time.Millisecond):
	}
	s.Ack(context.Background(), []connector.Position{recs[1].Position})
	if r := <-done; r.code != 200 || r.body != `{"accepted":2}` {
		t.Fatalf("after the ack: %d %s", r.code, r.body)
	}
	// Never acked: 503 after delivery_timeout, with Retry-After.
	code, h, _ := post(t, s, `{"late":true}`)
	if code != http.StatusServiceUnavailable || h.Get("Retry-After") != "1" {
		t.Fatalf("undelivered: %d, Retry-After %q", code, h.Get("Retry-After"))
	}
}

func TestSaturationAnswersBusyWithRetryAfter(t *testing.T) {
	for _, mode := range []string{"durable", "delivered"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			s := start(t, dir, map[string]any{"ack": mode, "max_pending": 5, "max_pending_bytes": 2048, "max_body": 2048, "retry_after": 2 * time.Second, "delivery_timeout": time.Minute})
			answers := make(chan int, 10)
			for i := range 5 {
				go func() { code, _, _ := post(t, s, fmt.Sprintf(`{"i":%d}`, i)); answers <- code }()
			}
			recs := readN(t, s, 5)
			if mode == "durable" {
				for range 5 {
					if code := <-answers; code != 200 {
						t.Fatal(code)
					}
				}
			}
			code, h, body := post(t, s, `{"i":5}`)
			if code != http.StatusTooManyRequests || h.Get("Retry-After") != "2" {
				t.Fatalf("over max_pending: %d %s, Retry-After %q", code, body, h.Get("Retry-After"))
			}
			// A body whose Content-Length cannot fit is refused before it is read.
			big := `{"pad":"` + strings.Repeat("x", 1900) + `"}`
			if code, _, _ := post(t, s, big); code != http.StatusTooManyRequests {
				t.Fatalf("big body: %d", code)
			}
			s.Ack(context.Background(), []connector.Position{recs[4].Position})
			if mode == "delivered" {
				for range 5 {
					if code := <-answers; code != 200 {
						t.Fatal(code)
					}
				}
				go func() { code, _, _ := post(t, s, `{"i":5}`); answers <- code }()
				r := readN(t, s, 1)
				s.Ack(context.Background(), []connector.Position{r[0].Position})
				if code := <-answers; code != 200 {
					t.Fatal(code)
				}
				return
			}
			if code, _, body := post(t, s, `{"i":5}`); code != 200 {
				t.Fatalf("after the ack: %d %s", code, body)
			}
		})
	}
}

func TestBodyLimit(t *testing.T) {
	s := start(t, t.TempDir(), map[string]any{"max_body": 100})
	if code, _, _ := post(t, s, `{"pad":"`+strings.Repeat("x", 200)+`"}`); code != http.StatusRequestEntityTooLarge {
		t.Fatalf("over max_body: %d", code)
	}
	// Without Content-Length (chunked), the limit cuts the read.
	pr, pw := io.Pipe()
	go func() { pw.Write([]byte(`{"pad":"` + strings.Repeat("y", 300) + `"}`)); pw.Close() }()
	resp, err := http.Post("http://"+s.Addr()+"/events", "application/json", pr)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("chunked over max_body: %d", resp.StatusCode)
	}
	if code, _, _ := post(t, s, `{"ok":1}`); code != 200 {
		t.Fatal(code)
	}
}

func sign(body, secret string, sha512sum bool) (hexSig, b64 string) {
	h := hmac.New(sha256.New, []byte(secret))
	if sha512sum {
		h = hmac.New(sha512.New, []byte(secret))
	}
	h.Write([]byte(body))
	return hex.EncodeToString(h.Sum(nil)), base64.StdEncoding.EncodeToString(h.Sum(nil))
}

func TestAuthenticationRejections(t *testing.T) {
	body := `{"zen":"Keep it logically awesome.","hook_id":1}`
	t.Run("hmac github style", func(t *testing.T) {
		s := start(t, t.TempDir(), map[string]any{"auth": map[string]any{"hmac": map[string]any{"header": "X-Hub-Signature-256", "secret": "It's a Secret to Everybody", "prefix": "sha256="}}})
		good, _ := sign(body, "It's a Secret to Everybody", false)
		wrong, _ := sign(body, "another secret", false)
		tampered, _ := sign(body+" ", "It's a Secret to Everybody", false)
		for _, tc := range []struct {
			header []string
			want   int
		}{
			{[]string{"X-Hub-Signature-256", "sha256=" + good}, 200},
			{[]string{"X-Hub-Signature-256", "sha256=" + strings.ToUpper(good)}, 200},
			{[]string{"X-Hub-Signature-256", "sha256=" + wrong}, 401},
			{[]string{"X-Hub-Signature-256", "sha256=" + tampered}, 401},
			{[]string{"X-Hub-Signature-256", good}, 401},
			{[]string{"X-Hub-Signature-256", "sha256=zz"}, 401},
			{nil, 401},
		} {
			if code, _, resp := post(t, s, body, tc.header...); code != tc.want {
				t.Errorf("%v: %d %s, want %d", tc.header, code, resp, tc.want)
			}
		}
		if recs := readN(t, s, 2); values(recs) != body+" "+body {
			t.Fatalf("taken: %s", values(recs))
		}
	})
	t.Run("hmac sha512 base64", func(t *testing.T) {
		s := start(t, t.TempDir(), map[string]any{"auth": map[string]any{"hmac": map[string]any{"header": "X-Signature", "secret": "k", "algorithm": "sha512", "encoding": "base64"}}})
		_, good := sign(body, "k", true)
		_, sha256b64 := sign(body, "k", false)
		if code, _, _ := post(t, s, body, "X-Signature", good); code != 200 {
			t.Fatal(code)
		}
		if code, _, _ := post(t, s, body, "X-Signature", sha256b64); code != 401 {
			t.Fatal(code)
		}
	})
	t.Run("bearer", func(t *testing.T) {
		s := start(t, t.TempDir(), map[string]any{"auth": map[string]any{"bearer": "t0ken"}})
		for _, tc := range []struct {
			auth string
			want int
		}{{"Bearer t0ken", 200}, {"Bearer t0ken2", 401}, {"Bearer ", 401}, {"Basic dDBrZW4=", 401}, {"", 401}} {
			code, h, _ := post(t, s, body, "Authorization", tc.auth)
			if code != tc.want {
				t.Errorf("Authorization %q: %d, want %d", tc.auth, code, tc.want)
			}
			if code == 401 && h.Get("WWW-Authenticate") == "" {
				t.Errorf("401 without WWW-Authenticate")
			}
		}
	})
}

func TestHealthAndDrain(t *testing.T) {
	s := start(t, t.TempDir(), map[string]any{"health_path": "/healthz", "max_pending": 2})
	health := func() int {
		resp, err := http.Get("http://" + s.Addr() + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if h := health(); h != 200 {
		t.Fatalf("health %d", h)
	}
	post(t, s, `[1,2]`)
	if h := health(); h != 503 {
		t.Fatalf("health when saturated: %d", h)
	}
	recs := readN(t, s, 2)
	s.Ack(context.Background(), []connector.Position{recs[1].Position})
	if h := health(); h != 200 {
		t.Fatalf("health after the ack: %d", h)
	}
	// The pipeline stops reading: new requests are turned away until it reads again.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Read(ctx); !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	if code, h, _ := post(t, s, `{"late":1}`); code != 503 || h.Get("Retry-After") == "" {
		t.Fatalf("while draining: %d", code)
	}
	if h := health(); h != 503 {
		t.Fatalf("health while draining: %d", h)
	}
}

func TestOpenNeedsDataDirForDurable(t *testing.T) {
	s, err := NewSource(conntest.Config(t, sourceSpec, map[string]any{"address": "127.0.0.1:0"}), connector.Env{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	if err := s.Open(context.Background(), nil); !errors.Is(err, connector.ErrPermanent) || !strings.Contains(err.Error(), "data directory") {
		t.Fatalf("Open without a data directory: %v", err)
	}
}

func TestConfigErrorsNameTheField(t *testing.T) {
	for _, tc := range []struct {
		cfg   map[string]any
		field string
	}{
		{map[string]any{"address": "8080"}, "address"},
		{map[string]any{"address": ":http-alt"}, "address"},
		{map[string]any{"address": ":8080", "path": "events"}, "path"},
		{map[string]any{"address": ":8080", "health_path": "/"}, "health_path"},
		{map[string]any{"address": ":8080", "tls": map[string]any{"cert_file": "c.pem"}}, "tls.key_file"},
		{map[string]any{"address": ":8080", "auth": map[string]any{"hmac": map[string]any{"header": "X-Sig"}}}, "auth.hmac.secret"},
		{map[string]any{"address": ":8080", "auth": map[string]any{"hmac": map[string]any{"secret": "s"}}}, "auth.hmac.header"},
		{map[string]any{"address": ":8080", "busy_status": 500}, "busy_status"},
		{map[string]any{"address": ":8080", "max_body": 1 << 20, "max_pending_bytes": 1000}, "max_pending_bytes"},
		{map[string]any{"address": ":8080", "max_pending": 0}, "max_pending"},
	} {
		_, err := NewSource(conntest.Config(t, sourceSpec, tc.cfg), connector.Env{})
		var ce *connector.ConfigError
		if !errors.As(err, &ce) || ce.Field != tc.field {
			t.Errorf("%v: %v; want a ConfigError at %s", tc.cfg, err, tc.field)
		}
	}
}

func TestWALRecordEncoding(t *testing.T) {
	r := connector.Record{Value: []byte(`{"a":1}`), Time: time.Unix(1700000000, 123456789),
		Headers: []connector.Header{{Key: "X-Event", Value: []byte("push")}, {Key: "X-Empty", Value: []byte{}}}}
	got, err := decodeRecord(encodeRecord(&r))
	if err != nil || !got.Time.Equal(r.Time) || string(got.Value) != string(r.Value) || len(got.Headers) != 2 || got.Headers[0].Key != "X-Event" || string(got.Headers[0].Value) != "push" {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	enc := encodeRecord(&r)
	for i := 0; i < 12; i++ {
		if _, err := decodeRecord(enc[:i]); err == nil {
			t.Fatalf("a record cut to %d bytes decoded", i)
		}
	}
}

// TestConformance runs the suite on ack: durable. The prepared data is a write-ahead store
// filled over HTTP (each record posted and answered 2xx); every source the factory builds opens a
// copy of it, as a restarted process would open the store its predecessor left.
func TestConformance(t *testing.T) {
	conntest.TestSource(t, conntest.SourceHarness{
		Unbounded: true,
		Setup: func(t *testing.T, n int) conntest.SourceFactory {
			prepared := t.TempDir()
			s := start(t, prepared, nil)
			var batch bytes.Buffer
			for i := range n {
				fmt.Fprintf(&batch, "{\"event\":%d}\n", i)
				if i%50 == 49 || i == n-1 {
					if code, _, body := post(t, s, batch.String(), "Content-Type", "application/x-ndjson"); code != 200 {
						t.Fatalf("%d %s", code, body)
					}
					batch.Reset()
				}
			}
			if err := s.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			data, err := os.ReadFile(filepath.Join(prepared, walFile))
			if err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			return func() (connector.Source, error) {
				mu.Lock()
				defer mu.Unlock()
				dir := t.TempDir()
				if err := os.WriteFile(filepath.Join(dir, walFile), data, 0o600); err != nil {
					return nil, err
				}
				return NewSource(conntest.Config(t, sourceSpec, map[string]any{"address": "127.0.0.1:0"}), connector.Env{DataDir: dir})
			}
		},
		Broken: func(t *testing.T) (connector.Source, error) {
			// The data directory is a file: the store cannot be created.
			f := filepath.Join(t.TempDir(), "file")
			os.WriteFile(f, nil, 0o600)
			return NewSource(conntest.Config(t, sourceSpec, map[string]any{"address": "127.0.0.1:0"}), connector.Env{DataDir: f})
		},
	})
}

// selfSigned writes a certificate for 127.0.0.1 and its key, and returns their paths and a pool
// trusting it.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	c := testenv.Certs(t, t.TempDir())
	return c.ServerCert, c.ServerKey, c.Pool
}

func TestTLS(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	s := start(t, t.TempDir(), map[string]any{"tls": map[string]any{"cert_file": certFile, "key_file": keyFile}})
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := hc.Post("https://"+s.Addr()+"/events", "application/json", strings.NewReader(`{"secure":true}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.TLS == nil {
		t.Fatalf("HTTPS post: %d", resp.StatusCode)
	}
	if r := readN(t, s, 1); string(r[0].Value) != `{"secure":true}` {
		t.Fatalf("record %s", r[0].Value)
	}
	// Plain HTTP to the TLS port gets no 2xx.
	if resp, err := http.Post("http://"+s.Addr()+"/events", "application/json", strings.NewReader(`{}`)); err == nil {
		resp.Body.Close()
		if resp.StatusCode/100 == 2 {
			t.Fatal("plain HTTP accepted on the TLS port")
		}
	}
	// A missing key file fails Open.
	bad, err := NewSource(conntest.Config(t, sourceSpec, map[string]any{"address": "127.0.0.1:0", "ack": "delivered",
		"tls": map[string]any{"cert_file": certFile, "key_file": filepath.Join(t.TempDir(), "missing.pem")}}), connector.Env{})
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close(context.Background())
	if err := bad.Open(context.Background(), nil); err == nil || !strings.Contains(err.Error(), "tls") {
		t.Fatalf("Open with a missing key: %v", err)
	}
}

// TestOpenAgainAfterAFailedOpen: the runtime retries a failed Open on the same source (the port
// was taken); the retry must find the store free and replay it once.
func TestOpenAgainAfterAFailedOpen(t *testing.T) {
	dir := t.TempDir()
	first := start(t, dir, nil)
	post(t, first, `[1,2,3]`)
	addr := first.Addr()
	s, err := NewSource(conntest.Config(t, sourceSpec, map[string]any{"address": addr}), connector.Env{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	if err := s.Open(context.Background(), nil); err == nil || !strings.Contains(err.Error(), "listen") {
		t.Fatalf("Open on a taken port: %v", err)
	}
	first.Close(context.Background())
	if err := s.Open(context.Background(), nil); err != nil {
		t.Fatalf("second Open: %v", err)
	}
	if got := values(readN(t, s, 3)); got != "1 2 3" {
		t.Fatalf("replayed %s", got)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queue) != 0 || s.pendRecords != 3 {
		t.Fatalf("after one replay: %d queued, %d pending", len(s.queue), s.pendRecords)
	}
}

// TestRealDeliveries posts the fixtures of testdata as their senders would: a signed GitHub-style
// ping, a Stripe-style array of events, a batch of web analytics as NDJSON. Each record is the
// sender's JSON, byte for byte (an array element or line as written, whitespace inside kept).
func TestRealDeliveries(t *testing.T) {
	const secret = "It's a Secret to Everybody"
	s := start(t, t.TempDir(), map[string]any{"auth": map[string]any{"hmac": map[string]any{"header": "X-Hub-Signature-256", "secret": secret, "prefix": "sha256="}},
		"headers": []any{"X-GitHub-Event", "X-GitHub-Delivery"}})
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	signed := func(body string) string { sig, _ := sign(body, secret, false); return "sha256=" + sig }

	ping := read("github_ping.json")
	if code, _, body := post(t, s, ping, "X-Hub-Signature-256", signed(ping), "X-GitHub-Event", "ping", "X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"); code != 200 {
		t.Fatalf("ping: %d %s", code, body)
	}
	r := readN(t, s, 1)[0]
	if string(r.Value) != strings.TrimSpace(ping) || len(r.Headers) != 2 || string(r.Headers[0].Value) != "ping" {
		t.Fatalf("ping record %s %v", r.Value, r.Headers)
	}

	payments := read("payments.json")
	var want []json.RawMessage
	if err := json.Unmarshal([]byte(payments), &want); err != nil {
		t.Fatal(err)
	}
	if code, _, body := post(t, s, payments, "X-Hub-Signature-256", signed(payments)); code != 200 || body != `{"accepted":25}` {
		t.Fatalf("payments: %d %s", code, body)
	}
	for i, r := range readN(t, s, 25) {
		if string(r.Value) != string(want[i]) {
			t.Fatalf("payment %d: %s, want %s", i, r.Value, want[i])
		}
	}

	analytics := read("analytics.ndjson")
	if code, _, body := post(t, s, analytics, "Content-Type", "application/x-ndjson", "X-Hub-Signature-256", signed(analytics)); code != 200 || body != `{"accepted":200}` {
		t.Fatalf("analytics: %d %s", code, body)
	}
	lines := strings.Split(strings.TrimSpace(analytics), "\n")
	for i, r := range readN(t, s, 200) {
		if string(r.Value) != lines[i] {
			t.Fatalf("analytics line %d: %s", i, r.Value)
		}
	}
}

// TestGitHubSignatureExample checks the signature against the example in GitHub's webhook
// documentation (secret "It's a Secret to Everybody", payload "Hello, World!").
func TestGitHubSignatureExample(t *testing.T) {
	s := start(t, t.TempDir(), map[string]any{"auth": map[string]any{"hmac": map[string]any{"header": "X-Hub-Signature-256", "secret": "It's a Secret to Everybody", "prefix": "sha256="}}})
	req, _ := http.NewRequest(http.MethodPost, "http://"+s.Addr()+"/events", strings.NewReader("Hello, World!"))
	req.Header.Set("X-Hub-Signature-256", "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// The signature is right; the body is not JSON, so it is refused for that (400), not 401.
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("GitHub's example delivery: %d, want 400 (signature accepted, body not JSON)", resp.StatusCode)
	}
}
