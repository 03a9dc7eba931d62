package http

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/sdk/go/connector"
	"github.com/sluicehq/sluice/sdk/go/conntest"
)

func newSource(t *testing.T, values map[string]any) *Source {
	t.Helper()
	s, err := NewSource(conntest.Config(t, sourceSpec, values), connector.Env{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func open(t *testing.T, s *Source, resume ...connector.Position) {
	t.Helper()
	if err := s.Open(context.Background(), resume); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
}

// drain reads until io.EOF, or until stop returns true, acking every batch.
func drain(t *testing.T, s *Source, stop func([]connector.Record) bool) []connector.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var all []connector.Record
	for {
		if stop != nil && stop(all) {
			return all
		}
		recs, err := s.Read(ctx)
		all = append(all, recs...)
		if errors.Is(err, io.EOF) {
			return all
		}
		if err != nil {
			t.Fatalf("Read after %d records: %v", len(all), err)
		}
		if len(recs) > 0 {
			if err := s.Ack(ctx, []connector.Position{recs[len(recs)-1].Position}); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// checkAll fails unless recs are exactly the fixture's lines from first on, in order, once each.
func checkAll(t *testing.T, recs []connector.Record, first int) {
	t.Helper()
	checkRange(t, recs, first, len(prices(t).lines))
}

// checkRange fails unless recs are exactly the fixture's lines [lo, hi), in order, once each.
func checkRange(t *testing.T, recs []connector.Record, lo, hi int) {
	t.Helper()
	fx := prices(t)
	want := fx.lines[lo:hi]
	if len(recs) != len(want) {
		t.Fatalf("got %d records, want %d", len(recs), len(want))
	}
	for i, r := range recs {
		if string(r.Value) != want[i] {
			t.Fatalf("record %d is %s, want %s", i, r.Value, want[i])
		}
		for _, h := range r.Headers {
			if h.Key == connector.HeaderMalformed {
				t.Fatalf("record %d marked malformed: %s", i, h.Value)
			}
		}
	}
}

func TestPaginationModes10kRecords100Pages(t *testing.T) {
	api := newFakeAPI(t, 100)
	srv := api.start(t)
	for _, tc := range []struct {
		name string
		cfg  map[string]any
	}{
		{"next link in body", map[string]any{"pagination": map[string]any{"next": "$.next"}}},
		{"Link header", map[string]any{"pagination": map[string]any{"link_header": true}}},
		{"page numbers", map[string]any{"pagination": map[string]any{"page_param": "page", "limit_param": "per_page", "limit": 100}}},
		{"page numbers until empty", map[string]any{"pagination": map[string]any{"page_param": "page"}}},
		{"offsets", map[string]any{"pagination": map[string]any{"offset_param": "offset", "limit_param": "limit", "limit": 100}}},
		{"cursor token", map[string]any{"pagination": map[string]any{"cursor": "$.meta.next_cursor", "cursor_param": "cursor"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := map[string]any{"url": srv.URL + "/v1/prices", "records": "$.data[*]"}
			for k, v := range tc.cfg {
				cfg[k] = v
			}
			s := newSource(t, cfg)
			open(t, s)
			before := len(api.pagesServed())
			recs := drain(t, s, nil)
			checkAll(t, recs, 0)
			if pages := len(api.pagesServed()) - before; pages < 100 || pages > 101 {
				t.Fatalf("%d pages requested, want 100 (101 when the end shows as an empty page)", pages)
			}
		})
	}
}

// TestResumeAtEveryKindOfPosition cuts a run at a record in the middle of a page and at a page's
// last record: a source opened there requests that page (or the next) and returns exactly the
// records after the cut.
func TestResumeAtEveryKindOfPosition(t *testing.T) {
	api := newFakeAPI(t, 100)
	srv := api.start(t)
	cfg := map[string]any{"url": srv.URL + "/v1/prices", "records": "$.data[*]", "pagination": map[string]any{"next": "$.next"}}
	first := newSource(t, cfg)
	open(t, first)
	all := drain(t, first, func(r []connector.Record) bool { return len(r) >= 300 })
	for _, cut := range []int{150, 199, 200, 0, 99} {
		t.Run(fmt.Sprintf("after record %d", cut), func(t *testing.T) {
			s := newSource(t, cfg)
			open(t, s, all[cut].Position)
			before := len(api.pagesServed())
			recs := drain(t, s, nil)
			checkAll(t, recs, cut+1)
			firstPage := api.pagesServed()[before]
			if want := fmt.Sprintf("|%d", (cut+1)/100*100); firstPage != want {
				t.Fatalf("resumed at page %q, want %q", firstPage, want)
			}
		})
	}
}

func TestRetriesHonourRetryAfterAndSurvive5xx(t *testing.T) {
	api := newFakeAPI(t, 500)
	api.fault = func(n int) (int, string) {
		switch n {
		case 3:
			return http.StatusTooManyRequests, "7"
		case 5, 6:
			return http.StatusInternalServerError, ""
		case 9:
			return http.StatusServiceUnavailable, time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
		case 12:
			return http.StatusBadGateway, ""
		}
		return 0, ""
	}
	srv := api.start(t)
	s := newSource(t, map[string]any{"url": srv.URL + "/v1/prices", "records": "$.data[*]", "pagination": map[string]any{"next": "$.next"},
		"retry": map[string]any{"initial_backoff": 100 * time.Millisecond, "max_backoff": 2 * time.Second}})
	open(t, s)
	var mu sync.Mutex
	var waits []time.Duration
	s.client.sleep = func(ctx context.Context, d time.Duration) error {
		mu.Lock()
		defer mu.Unlock()
		waits = append(waits, d)
		return nil
	}
	checkAll(t, drain(t, s, nil), 0)
	if len(waits) != 5 {
		t.Fatalf("%d retries, want 5: %v", len(waits), waits)
	}
	if waits[0] != 7*time.Second {
		t.Errorf("wait after 429 with Retry-After: 7 was %v", waits[0])
	}
	if waits[1] < 50*time.Millisecond || waits[1] > 100*time.Millisecond || waits[2] < 100*time.Millisecond || waits[2] > 200*time.Millisecond {
		t.Errorf("backoff after two 500s: %v, %v; want 50-100ms then 100-200ms", waits[1], waits[2])
	}
	if waits[3] < 80*time.Second || waits[3] > 90*time.Second {
		t.Errorf("wait after 503 with a Retry-After date 90s ahead was %v", waits[3])
	}
}

func TestRetriesGiveUpAndPermanentErrors(t *testing.T) {
	var status atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "nope", int(status.Load()))
	}))
	defer srv.Close()
	s := newSource(t, map[string]any{"url": srv.URL, "retry": map[string]any{"max_attempts": 3, "initial_backoff": time.Millisecond, "max_backoff": time.Millisecond}})
	open(t, s)
	status.Store(500)
	_, err := s.Read(context.Background())
	if err == nil || errors.Is(err, connector.ErrPermanent) || !strings.Contains(err.Error(), "3 attempts") {
		t.Fatalf("after 3 failed attempts: %v; want a retryable error saying so", err)
	}
	status.Store(404)
	_, err = s.Read(context.Background())
	if !errors.Is(err, connector.ErrPermanent) || !strings.Contains(err.Error(), "404") {
		t.Fatalf("404: %v; want a permanent error", err)
	}
}

func TestNetworkErrorsAreRetried(t *testing.T) {
	api := newFakeAPI(t, 1000)
	srv := api.start(t)
	var calls atomic.Int32
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1)%3 == 2 {
			// Cut the connection without an answer.
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close()
			return
		}
		u, _ := url.Parse(srv.URL)
		r.URL.Scheme, r.URL.Host, r.RequestURI = u.Scheme, u.Host, ""
		resp, err := http.DefaultTransport.RoundTrip(r)
		if err != nil {
			http.Error(w, err.Error(), 502)
			return
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	}))
	defer proxy.Close()
	s := newSource(t, map[string]any{"url": proxy.URL + "/v1/prices", "records": "$.data[*]", "pagination": map[string]any{"link_header": true},
		"retry": map[string]any{"initial_backoff": time.Millisecond, "max_backoff": time.Millisecond}})
	open(t, s)
	checkAll(t, drain(t, s, nil), 0)
}

func TestRateLimitSpacesRequests(t *testing.T) {
	api := newFakeAPI(t, 2500)
	srv := api.start(t)
	s := newSource(t, map[string]any{"url": srv.URL + "/v1/prices", "records": "$.data[*]", "pagination": map[string]any{"next": "$.next"},
		"rate_limit": map[string]any{"per_second": 1000.0, "burst": 1}})
	open(t, s)
	checkAll(t, drain(t, s, nil), 0)
	if tokens := s.client.limiter.Tokens(); tokens > 1 {
		t.Fatalf("limiter holds %v tokens", tokens)
	}
}

// TestIncrementalCursorAndConditionalRequests runs cycles on an interval: the second asks only
// for records after the largest updated_at of the first; without a cursor, an unchanged first page
// answers 304 and the cycle delivers nothing.
func TestIncrementalCursorAndConditionalRequests(t *testing.T) {
	fx := prices(t)
	api := newFakeAPI(t, 200)
	api.setData(fx.lines[:4000], fx.updated[:4000])
	srv := api.start(t)
	s := newSource(t, map[string]any{"url": srv.URL + "/v1/prices", "records": "$.data[*]", "pagination": map[string]any{"next": "$.next"},
		"cursor": map[string]any{"field": "$.updated_at", "param": "since"}, "interval": 5 * time.Millisecond})
	open(t, s)
	recs := drain(t, s, func(r []connector.Record) bool { return len(r) >= 4000 })
	api.setData(fx.lines, fx.updated)
	recs = append(recs, drain(t, s, func(r []connector.Record) bool { return len(r) >= 6000 })...)
	checkAll(t, recs, 0)
	var sinces []string
	for _, p := range api.pagesServed() {
		if strings.HasSuffix(p, "|4000") {
			sinces = append(sinces, strings.TrimSuffix(p, "|4000"))
		}
	}
	if len(sinces) == 0 || sinces[0] != fx.updated[3999] {
		t.Fatalf("the records after the first cycle were asked for with since %q, want %q", sinces, fx.updated[3999])
	}
	// The position of the last record names the next cycle's cursor.
	st, err := decodeState(recs[len(recs)-1].Position.Cursor)
	if err != nil || !st.Done || st.nextSince() != fx.updated[9999] {
		t.Fatalf("last position %s (%v): want a finished cycle with cursor %s", recs[len(recs)-1].Position.Cursor, err, fx.updated[9999])
	}

	t.Run("conditional", func(t *testing.T) {
		var notModified atomic.Int32
		inner := newFakeAPI(t, 10000)
		inner.setData(fx.lines[:50], fx.updated[:50])
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rec := httptest.NewRecorder()
			inner.ServeHTTP(rec, r)
			if rec.Code == http.StatusNotModified && notModified.Add(1) == 3 {
				inner.setData(fx.lines[:60], fx.updated[:60])
			}
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			w.Write(rec.Body.Bytes())
		}))
		defer srv.Close()
		s := newSource(t, map[string]any{"url": srv.URL + "/v1/prices", "records": "$.data[*]", "interval": time.Millisecond})
		open(t, s)
		recs := drain(t, s, func(r []connector.Record) bool { return len(r) >= 110 })
		if notModified.Load() < 3 {
			t.Fatalf("%d answers 304", notModified.Load())
		}
		if len(recs) != 110 || string(recs[50].Value) != fx.lines[0] || string(recs[109].Value) != fx.lines[59] {
			t.Fatalf("after a change the whole list comes again: got %d records", len(recs))
		}
	})
}

// TestBoundedRunsAfterACompletedCycle: a bounded source resumed at a finished cycle starts a new
// incremental cycle from the stored cursor, and reads nothing again without a cursor.
func TestBoundedRunsAfterACompletedCycle(t *testing.T) {
	fx := prices(t)
	api := newFakeAPI(t, 1000)
	api.setData(fx.lines[:3000], fx.updated[:3000])
	srv := api.start(t)
	inc := map[string]any{"url": srv.URL + "/v1/prices", "records": "$.data[*]", "pagination": map[string]any{"next": "$.next"},
		"cursor": map[string]any{"field": "$.updated_at", "param": "since"}}
	s := newSource(t, inc)
	open(t, s)
	recs := drain(t, s, nil)
	checkRange(t, recs, 0, 3000)
	api.setData(fx.lines[:3500], fx.updated[:3500])
	s2 := newSource(t, inc)
	open(t, s2, recs[len(recs)-1].Position)
	more := drain(t, s2, nil)
	checkRange(t, append(recs, more...), 0, 3500)
	if len(more) != 500 {
		t.Fatalf("second run read %d records, want the 500 new ones", len(more))
	}

	plain := map[string]any{"url": srv.URL + "/v1/prices", "records": "$.data[*]", "pagination": map[string]any{"next": "$.next"}}
	s3 := newSource(t, plain)
	open(t, s3)
	all := drain(t, s3, nil)
	s4 := newSource(t, plain)
	open(t, s4, all[len(all)-1].Position)
	if again := drain(t, s4, nil); len(again) != 0 {
		t.Fatalf("a finished bounded cycle without cursor read %d records again", len(again))
	}
}

func TestAuthentication(t *testing.T) {
	fx := prices(t)
	for _, tc := range []struct {
		name string
		auth map[string]any
		ok   func(r *http.Request) bool
	}{
		{"bearer", map[string]any{"bearer": "s3cret"}, func(r *http.Request) bool { return r.Header.Get("Authorization") == "Bearer s3cret" }},
		{"basic", map[string]any{"basic": map[string]any{"username": "ann", "password": "pw"}}, func(r *http.Request) bool {
			u, p, ok := r.BasicAuth()
			return ok && u == "ann" && p == "pw"
		}},
		{"api key header", map[string]any{"api_key": map[string]any{"name": "X-API-Key", "value": "k1"}}, func(r *http.Request) bool { return r.Header.Get("X-API-Key") == "k1" }},
		{"api key query", map[string]any{"api_key": map[string]any{"name": "apikey", "value": "k2", "in": "query"}}, func(r *http.Request) bool { return r.URL.Query().Get("apikey") == "k2" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			api := newFakeAPI(t, 100)
			api.setData(fx.lines[:500], fx.updated[:500])
			api.authorize = tc.ok
			srv := api.start(t)
			s := newSource(t, map[string]any{"url": srv.URL + "/v1/prices", "records": "$.data[*]", "pagination": map[string]any{"link_header": true}, "auth": tc.auth})
			open(t, s)
			if recs := drain(t, s, nil); len(recs) != 500 {
				t.Fatalf("%d records", len(recs))
			}
			wrong := newSource(t, map[string]any{"url": srv.URL + "/v1/prices", "records": "$.data[*]"})
			open(t, wrong)
			if _, err := wrong.Read(context.Background()); !errors.Is(err, connector.ErrPermanent) || !strings.Contains(err.Error(), "401") {
				t.Fatalf("without credentials: %v; want a permanent 401 error", err)
			}
		})
	}
}

// tokenServer is an OAuth2 token endpoint for the client credentials grant: it checks the client's
// credentials (HTTP basic or form), issues numbered tokens valid for ttl seconds, and can revoke them.
type tokenServer struct {
	ttl     int
	mu      sync.Mutex
	issued  int
	valid   map[string]bool
	scopes  []string
	refused int
}

func (ts *tokenServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id, secret, ok := r.BasicAuth()
	if !ok {
		id, secret = r.PostFormValue("client_id"), r.PostFormValue("client_secret")
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if r.PostFormValue("grant_type") != "client_credentials" || id != "sluice" || secret != "client-s3cret" {
		ts.refused++
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		w.Write([]byte(`{"error":"invalid_client"}`))
		return
	}
	ts.issued++
	tok := fmt.Sprintf("tok-%d", ts.issued)
	ts.valid[tok] = true
	ts.scopes = append(ts.scopes, r.PostFormValue("scope")+"|"+r.PostFormValue("audience"))
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"access_token":%q,"token_type":"Bearer","expires_in":%d}`, tok, ts.ttl)
}

func (ts *tokenServer) check(r *http.Request) bool {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.valid[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
}

func (ts *tokenServer) revokeAll() {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	clear(ts.valid)
}

func TestOAuth2ClientCredentials(t *testing.T) {
	fx := prices(t)
	ts := &tokenServer{ttl: 3600, valid: map[string]bool{}}
	tokSrv := httptest.NewServer(ts)
	defer tokSrv.Close()
	api := newFakeAPI(t, 100)
	api.setData(fx.lines[:1000], fx.updated[:1000])
	api.authorize = ts.check
	var revokeAt atomic.Int32
	revokeAt.Store(4)
	api.fault = func(n int) (int, string) {
		if int32(n) == revokeAt.Load() {
			ts.revokeAll() // the API revokes the token before its expiry: the source fetches another
		}
		return 0, ""
	}
	srv := api.start(t)
	oauth := map[string]any{"token_url": tokSrv.URL + "/oauth/token", "client_id": "sluice", "client_secret": "client-s3cret",
		"scopes": []any{"prices:read", "fx:read"}, "params": map[string]any{"audience": "prices-api"}}
	s := newSource(t, map[string]any{"url": srv.URL + "/v1/prices", "records": "$.data[*]", "pagination": map[string]any{"next": "$.next"},
		"auth": map[string]any{"oauth2": oauth}})
	open(t, s)
	checkRange(t, drain(t, s, nil), 0, 1000)
	ts.mu.Lock()
	issued, scopes := ts.issued, ts.scopes
	ts.mu.Unlock()
	if issued != 2 {
		t.Fatalf("%d tokens issued, want 2 (one at start, one after the revocation)", issued)
	}
	if scopes[0] != "prices:read fx:read|prices-api" {
		t.Fatalf("token request scope|audience = %q", scopes[0])
	}

	t.Run("expired tokens are renewed", func(t *testing.T) {
		ts2 := &tokenServer{ttl: 1, valid: map[string]bool{}} // oauth2 renews 10s before expiry: every request gets a new token
		tokSrv2 := httptest.NewServer(ts2)
		defer tokSrv2.Close()
		api2 := newFakeAPI(t, 100)
		api2.setData(fx.lines[:300], fx.updated[:300])
		api2.authorize = ts2.check
		srv2 := api2.start(t)
		o := map[string]any{"token_url": tokSrv2.URL, "client_id": "sluice", "client_secret": "client-s3cret"}
		s := newSource(t, map[string]any{"url": srv2.URL + "/v1/prices", "records": "$.data[*]", "pagination": map[string]any{"next": "$.next"}, "auth": map[string]any{"oauth2": o}})
		open(t, s)
		if n := len(drain(t, s, nil)); n != 300 {
			t.Fatalf("%d records", n)
		}
		if ts2.issued < 3 {
			t.Fatalf("%d tokens issued for 3 requests with tokens that expire at once", ts2.issued)
		}
	})

	t.Run("a refused client is a permanent error", func(t *testing.T) {
		bad := map[string]any{"token_url": tokSrv.URL, "client_id": "sluice", "client_secret": "wrong"}
		s := newSource(t, map[string]any{"url": srv.URL + "/v1/prices", "auth": map[string]any{"oauth2": bad}})
		err := s.Open(context.Background(), nil)
		s.Close(context.Background())
		if !errors.Is(err, connector.ErrPermanent) || !strings.Contains(err.Error(), "invalid_client") || strings.Contains(err.Error(), "wrong") {
			t.Fatalf("refused token request: %v; want a permanent error naming the reason, not the secret", err)
		}
	})
}

func TestMalformedResponsesGoToDeadLetters(t *testing.T) {
	t.Run("NDJSON with a broken line", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/x-ndjson")
			io.WriteString(w, "{\"id\":1}\n\n{\"id\":2,\"price\":\n{\"id\":3}\r\n")
		}))
		defer srv.Close()
		s := newSource(t, map[string]any{"url": srv.URL})
		open(t, s)
		recs := drain(t, s, nil)
		if len(recs) != 3 || string(recs[0].Value) != `{"id":1}` || string(recs[2].Value) != `{"id":3}` {
			t.Fatalf("records %v", recs)
		}
		if len(recs[1].Headers) != 1 || recs[1].Headers[0].Key != connector.HeaderMalformed || !strings.Contains(string(recs[1].Headers[0].Value), "not JSON") {
			t.Fatalf("broken line: %+v", recs[1])
		}
	})
	t.Run("an HTML error page with status 200", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			io.WriteString(w, "<html><body>Service temporarily unavailable</body></html>")
		}))
		defer srv.Close()
		s := newSource(t, map[string]any{"url": srv.URL, "records": "$.data[*]", "pagination": map[string]any{"next": "$.next"}})
		open(t, s)
		recs := drain(t, s, nil)
		if len(recs) != 1 || len(recs[0].Headers) != 1 || !strings.Contains(string(recs[0].Headers[0].Value), "text/html") {
			t.Fatalf("records %+v", recs)
		}
		if st, err := decodeState(recs[0].Position.Cursor); err != nil || !st.Done {
			t.Fatalf("the page that is not JSON ends the cycle: %s", recs[0].Position.Cursor)
		}
	})
	t.Run("a key that cannot be rendered", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, `[{"id":"a"},{"name":"no id"},{"id":7}]`)
		}))
		defer srv.Close()
		s := newSource(t, map[string]any{"url": srv.URL, "key": "item-{{id}}"})
		open(t, s)
		recs := drain(t, s, nil)
		if len(recs) != 3 || string(recs[0].Key) != "item-a" || string(recs[2].Key) != "item-7" || len(recs[1].Headers) != 1 {
			t.Fatalf("records %+v", recs)
		}
	})
}

func TestResponseShapes(t *testing.T) {
	for _, tc := range []struct {
		name, body, records string
		want                []string
	}{
		{"one object is one record", `{"price": 1.5, "commodity": "gold"}`, "", []string{`{"price": 1.5, "commodity": "gold"}`}},
		{"an array is one record per element", ` [ {"a":1} , 2, "x,]" ,[3,{"b":[]}] ] `, "", []string{`{"a":1}`, `2`, `"x,]"`, `[3,{"b":[]}]`}},
		{"nested member path", `{"result":{"items":[{"a":1},{"a":2}]}}`, "$.result.items[*]", []string{`{"a":1}`, `{"a":2}`}},
		{"the array itself", `{"items":[1,2]}`, "$.items", []string{`[1,2]`}},
		{"missing member", `{"other":[1]}`, "$.items[*]", nil},
		{"a filter re-encodes, keys sorted", `{"data":[{"c":"gold","p":2000.10,"n":"<a&b>"},{"c":"tin","p":3}]}`, `$.data[?@.c=="gold"]`, []string{`{"c":"gold","n":"<a&b>","p":2000.10}`}},
		{"descendants", `{"a":{"id":1,"b":{"id":2}}}`, "$..id", []string{"1", "2"}},
		{"object wildcard", `{"m":{"x":{"v":1}}}`, "$.m[*]", []string{`{"v":1}`}},
		{"numeric member name", `{"0":["z"]}`, "$['0'][*]", []string{`"z"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, tc.body) }))
			defer srv.Close()
			cfg := map[string]any{"url": srv.URL}
			if tc.records != "" {
				cfg["records"] = tc.records
			}
			s := newSource(t, cfg)
			open(t, s)
			var got []string
			for _, r := range drain(t, s, nil) {
				got = append(got, string(r.Value))
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestPostWithBodyTemplate(t *testing.T) {
	fx := prices(t)
	api := newFakeAPI(t, 100)
	api.setData(fx.lines[:450], fx.updated[:450])
	var bodies []string
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, r.Method+" "+r.Header.Get("Content-Type")+" "+string(b))
		mu.Unlock()
		var req struct{ Page, Size int }
		fmt.Sscanf(string(b), `{"page":%d,"size":%d}`, &req.Page, &req.Size)
		r.URL.RawQuery = fmt.Sprintf("page=%d&per_page=%d", req.Page, req.Size)
		api.ServeHTTP(w, r)
	}))
	defer srv.Close()
	s := newSource(t, map[string]any{"url": srv.URL + "/v1/prices/search", "method": "POST", "body": `{"page":{{page}},"size":{{limit}}}`,
		"records": "$.data[*]", "pagination": map[string]any{"page_param": "p", "limit": 100}})
	open(t, s)
	checkRange(t, drain(t, s, nil), 0, 450)
	if len(bodies) != 5 || bodies[0] != `POST application/json {"page":1,"size":100}` || bodies[4] != `POST application/json {"page":5,"size":100}` {
		t.Fatalf("request bodies %q", bodies)
	}
}

func TestNextLinkToAnotherHostIsRefused(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"data":[1],"next":"https://elsewhere.example/page2"}`)
	}))
	defer srv.Close()
	s := newSource(t, map[string]any{"url": srv.URL, "records": "$.data[*]", "pagination": map[string]any{"next": "$.next"}, "auth": map[string]any{"bearer": "t"}})
	open(t, s)
	if _, err := s.Read(context.Background()); !errors.Is(err, connector.ErrPermanent) || !strings.Contains(err.Error(), "elsewhere.example") {
		t.Fatalf("next link to another host: %v", err)
	}
}

func TestScheduleWaitsAndReadReturnsOnCancel(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, `[1,2]`) }))
	defer srv.Close()
	s := newSource(t, map[string]any{"url": srv.URL, "schedule": "0 2 * * *"})
	open(t, s)
	s.now = func() time.Time { return time.Date(2024, 3, 1, 1, 59, 0, 0, time.Local) }
	if next := s.nextCycle(); !next.Equal(time.Date(2024, 3, 1, 2, 0, 0, 0, time.Local)) {
		t.Fatalf("first cycle at %v", next)
	}
	s.last = &pageState{Cycle: time.Date(2024, 2, 27, 2, 0, 0, 0, time.Local).UnixMilli(), Done: true}
	if next := s.nextCycle(); !next.Equal(time.Date(2024, 2, 28, 2, 0, 0, 0, time.Local)) {
		t.Fatalf("after a cycle on Feb 27 the next is at %v: a missed run must happen at once", next)
	}
	s.last = nil
	s.now = time.Now
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(20 * time.Millisecond); cancel() }()
	if _, err := s.Read(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Read waiting for 2am: %v", err)
	}
}

func TestNextLinkParsing(t *testing.T) {
	for in, want := range map[string]string{
		`<https://api.x/p?page=2>; rel="next", <https://api.x/p?page=9>; rel="last"`: "https://api.x/p?page=2",
		`<https://api.x/p?page=1>; rel="prev first", </p?page=3>; rel=next`:          "/p?page=3",
		`<a>; title="x, rel=next"; rel="prev"`:                                       "",
		`<b>;rel="Next"`:                                                             "b",
		`garbage`:                                                                    "",
		``:                                                                           "",
	} {
		if got := nextLink([]string{in}); got != want {
			t.Errorf("nextLink(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCursorOrder(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{`10`, `9`, true}, {`9`, `10`, false}, {`1e3`, `999.5`, true}, {`18446744073709551616`, `18446744073709551615`, true},
		{`"2024-03-01T10:00:00+02:00"`, `"2024-03-01T09:00:00Z"`, false}, {`"2024-03-01T10:00:00.5Z"`, `"2024-03-01T10:00:00Z"`, true},
		{`"b"`, `"a"`, true}, {`"a"`, ``, true}, {`1`, `"a"`, false},
	} {
		if got := greater(cursorValue(tc.a), cursorValue(tc.b)); got != tc.want {
			t.Errorf("greater(%s, %s) = %v", tc.a, tc.b, got)
		}
	}
}

func TestConfigErrorsNameTheField(t *testing.T) {
	base := func(extra map[string]any) map[string]any {
		m := map[string]any{"url": "https://api.example.com/v1/prices"}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	for _, tc := range []struct {
		cfg   map[string]any
		field string
	}{
		{base(map[string]any{"url": "api.example.com/prices"}), "url"},
		{base(map[string]any{"url": "https://[::1/x"}), "url"},
		{base(map[string]any{"records": "$.data[*"}), "records"},
		{base(map[string]any{"records": "data"}), "records"},
		{base(map[string]any{"pagination": map[string]any{"next": "$..[?"}}), "pagination.next"},
		{base(map[string]any{"cursor": map[string]any{"field": "updated_at", "param": "since"}}), "cursor.field"},
		{base(map[string]any{"schedule": "0 25 * * *"}), "schedule"},
		{base(map[string]any{"schedule": "every day"}), "schedule"},
		{base(map[string]any{"schedule": "@daily", "interval": time.Minute}), "interval"},
		{base(map[string]any{"pagination": map[string]any{"next": "$.next", "link_header": true}}), "pagination.link_header"},
		{base(map[string]any{"pagination": map[string]any{"cursor": "$.c"}}), "pagination.cursor_param"},
		{base(map[string]any{"cursor": map[string]any{"field": "$.t"}}), "cursor.param"},
		{base(map[string]any{"auth": map[string]any{"bearer": "x", "basic": map[string]any{"username": "u"}}}), "auth.basic"},
		{base(map[string]any{"auth": map[string]any{"oauth2": map[string]any{"token_url": "/token", "client_id": "c"}}}), "auth.oauth2.token_url"},
		{base(map[string]any{"body": "{}"}), "body"},
		{base(map[string]any{"method": "POST", "body": "{{page"}), "body"},
		{base(map[string]any{"key": "{{}}"}), "key"},
		{base(map[string]any{"timeout": time.Duration(0)}), "timeout"},
	} {
		_, err := NewSource(conntest.Config(t, sourceSpec, tc.cfg), connector.Env{})
		var ce *connector.ConfigError
		if !errors.As(err, &ce) || ce.Field != tc.field {
			t.Errorf("%v: error %v; want a ConfigError at %s", tc.cfg, err, tc.field)
		}
	}
}

func TestConformance(t *testing.T) {
	conntest.TestSource(t, conntest.SourceHarness{
		Setup: func(t *testing.T, n int) conntest.SourceFactory {
			api := newFakeAPI(t, 37)
			fx := prices(t)
			api.setData(fx.lines[:n], fx.updated[:n])
			srv := api.start(t)
			cfg := conntest.Config(t, sourceSpec, map[string]any{"url": srv.URL + "/v1/prices", "records": "$.data[*]", "pagination": map[string]any{"next": "$.next"}})
			return func() (connector.Source, error) { return NewSource(cfg, connector.Env{}) }
		},
		Broken: func(t *testing.T) (connector.Source, error) {
			// Open fetches the OAuth2 token: an endpoint nobody listens on fails it.
			return NewSource(conntest.Config(t, sourceSpec, map[string]any{"url": "http://127.0.0.1:1/v1/prices",
				"auth": map[string]any{"oauth2": map[string]any{"token_url": "http://127.0.0.1:1/token", "client_id": "c"}}}), connector.Env{})
		},
	})
	conntest.TestSource(t, conntest.SourceHarness{
		Unbounded: true,
		Setup: func(t *testing.T, n int) conntest.SourceFactory {
			api := newFakeAPI(t, 50)
			fx := prices(t)
			api.setData(fx.lines[:n], fx.updated[:n])
			srv := api.start(t)
			cfg := conntest.Config(t, sourceSpec, map[string]any{"url": srv.URL + "/v1/prices", "records": "$.data[*]", "pagination": map[string]any{"link_header": true},
				"cursor": map[string]any{"field": "$.updated_at", "param": "since"}, "interval": 10 * time.Millisecond})
			return func() (connector.Source, error) { return NewSource(cfg, connector.Env{}) }
		},
	})
}

func TestTimeoutsAreRetried(t *testing.T) {
	var calls atomic.Int32
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			select { // hang past the source's timeout
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		io.WriteString(w, `[{"n":1}]`)
	}))
	defer srv.Close()
	defer close(release)
	s := newSource(t, map[string]any{"url": srv.URL, "timeout": 100 * time.Millisecond, "retry": map[string]any{"initial_backoff": time.Millisecond, "max_backoff": time.Millisecond}})
	open(t, s)
	if recs := drain(t, s, nil); len(recs) != 1 || calls.Load() != 2 {
		t.Fatalf("%d records after %d requests", len(recs), calls.Load())
	}
}
