package scraper

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// forwardProxy is a minimal HTTP forward proxy counting the requests it carried.
func forwardProxy(t *testing.T) (*httptest.Server, *atomic.Int64) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		out, err := http.NewRequestWithContext(r.Context(), r.Method, r.URL.String(), nil)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		out.Header = r.Header.Clone()
		resp, err := http.DefaultTransport.RoundTrip(out)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func TestProxiesRotateAndAFailingOneIsLeftOut(t *testing.T) {
	site := newSite(t, 2, 5)
	good, carried := forwardProxy(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close() // nothing listens there
	cfg := site.config()
	cfg["proxies"] = []any{dead, good.URL}
	cfg["proxy_cooldown"] = time.Hour
	s := open(t, cfg, t.TempDir())
	defer s.Close(context.Background())
	items, _ := drain(t, s, nil)
	if want := len(site.expected()); len(items) != want {
		t.Fatalf("%d items through the proxies, want %d", len(items), want)
	}
	if carried.Load() == 0 {
		t.Fatal("the working proxy carried nothing")
	}
	s.fetch.proxies.mu.Lock()
	defer s.fetch.proxies.mu.Unlock()
	if !s.fetch.proxies.list[0].badUntil.After(time.Now()) {
		t.Fatal("the dead proxy is not cooling down")
	}
}

func TestRetryAfter(t *testing.T) {
	if d := retryAfter("3"); d != 3*time.Second {
		t.Errorf("seconds: %v", d)
	}
	if d := retryAfter(time.Now().Add(10 * time.Second).UTC().Format(http.TimeFormat)); d < 8*time.Second || d > 10*time.Second {
		t.Errorf("date: %v", d)
	}
	if d := retryAfter("soon"); d != 0 {
		t.Errorf("garbage: %v", d)
	}
}
