package http

import (
	"bufio"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fixture is testdata/prices.jsonl.gz: 10,000 commodity prices ordered by updated_at, one JSON
// object per line (a few with notes holding quotes and non-ASCII text).
type fixture struct {
	lines   []string
	updated []string
}

var loadFixture = sync.OnceValues(func() (*fixture, error) {
	f, err := os.Open("testdata/prices.jsonl.gz")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, err
	}
	fx := &fixture{}
	sc := bufio.NewScanner(zr)
	for sc.Scan() {
		var r struct {
			UpdatedAt string `json:"updated_at"`
		}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, err
		}
		fx.lines = append(fx.lines, sc.Text())
		fx.updated = append(fx.updated, r.UpdatedAt)
	}
	return fx, sc.Err()
})

func prices(t testing.TB) *fixture {
	t.Helper()
	fx, err := loadFixture()
	if err != nil {
		t.Fatal(err)
	}
	return fx
}

// fakeAPI serves a fixture as a paginated prices API, the way real ones do:
//
//	GET /v1/prices?since=T&page=N&per_page=K        page numbers
//	GET /v1/prices?since=T&offset=N&limit=K         offsets
//	GET /v1/prices?since=T&cursor=C                 a next-page token in meta.next_cursor
//	and a next link in the body ("next") and in the Link header, on every page
//
// since keeps the records updated strictly after it. The body is {"data": [...], "next": URL|null,
// "meta": {"next_cursor": C|null, "total": N}}; ETag and If-None-Match are honoured.
type fakeAPI struct {
	t       testing.TB
	perPage int
	// fault, when set, decides the fate of request number n (from 1): a status to answer instead
	// (0: serve normally) and a Retry-After value.
	fault func(n int) (status int, retryAfter string)
	// authorize, when set, checks a request's credentials.
	authorize func(r *http.Request) bool
	delay     time.Duration

	mu       sync.Mutex
	lines    []string
	updated  []string
	requests []string // "since|start" of each page served
	served   map[int]int
	n        int
}

func newFakeAPI(t testing.TB, perPage int) *fakeAPI {
	fx := prices(t)
	return &fakeAPI{t: t, perPage: perPage, lines: fx.lines, updated: fx.updated, served: map[int]int{}}
}

func (a *fakeAPI) start(t testing.TB) *httptest.Server {
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	return srv
}

// setData replaces the served records (to show new ones appearing between cycles).
func (a *fakeAPI) setData(lines, updated []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.lines, a.updated = lines, updated
}

func (a *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	a.n++
	n := a.n
	a.mu.Unlock()
	if a.delay > 0 {
		time.Sleep(a.delay)
	}
	if a.authorize != nil && !a.authorize(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="prices"`)
		http.Error(w, `{"error":"unauthorized"}`, http.StatusUnauthorized)
		return
	}
	if a.fault != nil {
		if status, ra := a.fault(n); status != 0 {
			if ra != "" {
				w.Header().Set("Retry-After", ra)
			}
			http.Error(w, fmt.Sprintf(`{"error":"%s"}`, http.StatusText(status)), status)
			return
		}
	}
	q := r.URL.Query()
	since := q.Get("since")
	a.mu.Lock()
	lines, updated := a.lines, a.updated
	a.mu.Unlock()
	first := 0
	for first < len(lines) && since != "" && updated[first] <= since {
		first++
	}
	lines = lines[first:]
	per := a.perPage
	if v := q.Get("per_page"); v != "" {
		per, _ = strconv.Atoi(v)
	}
	if v := q.Get("limit"); v != "" {
		per, _ = strconv.Atoi(v)
	}
	start := 0
	switch {
	case q.Get("page") != "":
		p, _ := strconv.Atoi(q.Get("page"))
		start = (p - 1) * per
	case q.Get("offset") != "":
		start, _ = strconv.Atoi(q.Get("offset"))
	case q.Get("cursor") != "":
		start, _ = strconv.Atoi(strings.TrimPrefix(q.Get("cursor"), "c"))
	}
	start = min(max(start, 0), len(lines))
	end := min(start+per, len(lines))
	page := lines[start:end]
	var body strings.Builder
	body.WriteString(`{"data":[`)
	body.WriteString(strings.Join(page, ","))
	body.WriteString(`],"next":`)
	next := ""
	if end < len(lines) {
		nq := fmt.Sprintf("cursor=c%d", end)
		if since != "" {
			nq += "&since=" + since
		}
		next = "/v1/prices?" + nq
		fmt.Fprintf(&body, "%q", next)
		w.Header().Set("Link", fmt.Sprintf(`<%s>; rel="next", </v1/prices>; rel="first"`, next))
	} else {
		body.WriteString("null")
	}
	body.WriteString(`,"meta":{"next_cursor":`)
	if end < len(lines) {
		fmt.Fprintf(&body, `"c%d"`, end)
	} else {
		body.WriteString("null")
	}
	fmt.Fprintf(&body, `,"total":%d}}`, len(lines))
	sum := sha256.Sum256([]byte(body.String()))
	etag := `"` + hex.EncodeToString(sum[:8]) + `"`
	w.Header().Set("ETag", etag)
	if r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	a.mu.Lock()
	a.requests = append(a.requests, fmt.Sprintf("%s|%d", since, first+start))
	a.served[first+start]++
	a.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(body.String()))
}

// pagesServed returns the log of pages served ("since|first record index").
func (a *fakeAPI) pagesServed() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.requests...)
}

func (a *fakeAPI) requestCount() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.n
}
