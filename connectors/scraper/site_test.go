package scraper

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// site is a local listings site with what real ones have: pagination, duplicate links, a
// robots.txt disallow, broken HTML, slow pages, 429s with Retry-After, flaky and dead pages, and
// listings missing a field.
type site struct {
	srv      *httptest.Server
	pages    int // index pages
	perPage  int
	mu       sync.Mutex
	hits     map[string]int
	rent     map[int]int // listing → rent, changeable between rounds
	flaky    map[string]bool
	throttle map[string]bool
}

const (
	deadListing    = 13 // always 500
	noRentListing  = 21 // missing the rent: a dead-letter item
	brokenListing  = 8  // unclosed tags, still parseable
	slowListing    = 30
	flakyListing   = 5  // 500 once, then fine
	limitedListing = 17 // 429 once, then fine
)

func newSite(t *testing.T, pages, perPage int) *site {
	s := &site{pages: pages, perPage: perPage, hits: map[string]int{}, rent: map[int]int{}, flaky: map[string]bool{}, throttle: map[string]bool{}}
	for id := 1; id <= pages*perPage; id++ {
		s.rent[id] = 1000 + id
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/robots.txt", func(w http.ResponseWriter, r *http.Request) {
		s.hit(r)
		fmt.Fprint(w, "User-agent: *\nDisallow: /private/\n")
	})
	mux.HandleFunc("/listings", func(w http.ResponseWriter, r *http.Request) {
		s.hit(r)
		n, _ := strconv.Atoi(r.URL.Query().Get("page"))
		if n < 1 || n > s.pages {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		var b strings.Builder
		fmt.Fprintf(&b, "<html><head><title>Page %d</title></head><body><ul>", n)
		for i := 1; i <= s.perPage; i++ {
			id := (n-1)*s.perPage + i
			fmt.Fprintf(&b, `<li><a class="listing-link" href="/listing/%d#photos">Flat %d</a></li>`, id, id)
		}
		if n > 1 { // a duplicate link to the previous page's first listing
			fmt.Fprintf(&b, `<li><a class="listing-link" href="http://%s/listing/%d">again</a></li>`, r.Host, (n-2)*s.perPage+1)
		}
		b.WriteString(`<li><a class="listing-link" href="/private/secret">secret</a></li>`)
		b.WriteString(`<li><a class="listing-link" href="https://elsewhere.example.org/listing/1">elsewhere</a></li>`)
		b.WriteString("</ul>")
		if n < s.pages {
			fmt.Fprintf(&b, `<a class="next" href="?page=%d">next</a>`, n+1)
		}
		b.WriteString("</body></html>")
		fmt.Fprint(w, b.String())
	})
	mux.HandleFunc("/private/", func(w http.ResponseWriter, r *http.Request) {
		s.hit(r)
		fmt.Fprint(w, `<div class="listing" data-id="999"><h1 class="title">Secret</h1><span class="rent">1</span></div>`)
	})
	mux.HandleFunc("/listing/", func(w http.ResponseWriter, r *http.Request) {
		s.hit(r)
		id, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/listing/"))
		s.mu.Lock()
		rent, ok := s.rent[id]
		first := !s.flaky[r.URL.Path]
		s.flaky[r.URL.Path] = true
		s.mu.Unlock()
		switch {
		case err != nil || !ok:
			http.NotFound(w, r)
			return
		case id == deadListing:
			http.Error(w, "boom", http.StatusInternalServerError)
			return
		case id == flakyListing && first:
			http.Error(w, "try again", http.StatusBadGateway)
			return
		case id == limitedListing && first:
			w.Header().Set("Retry-After", "0")
			http.Error(w, "slow down", http.StatusTooManyRequests)
			return
		case id == slowListing:
			time.Sleep(200 * time.Millisecond)
		}
		w.Header().Set("Content-Type", "text/html")
		rentHTML := fmt.Sprintf(`<span class="rent">€%d,%03d/month</span>`, rent/1000, rent%1000)
		if id == noRentListing {
			rentHTML = `<span class="rent-missing">on request</span>`
		}
		if id == brokenListing {
			fmt.Fprintf(w, `<html><body><div class="listing" data-id="%d"><h1 class="title">Flat %d<p>no closing tags %s`, id, id, rentHTML)
			return
		}
		fmt.Fprintf(w, `<html><body><div class="listing" data-id="%d"><h1 class="title">Flat %d</h1>%s<a href="/listing/%d">self</a></div></body></html>`, id, id, rentHTML, id)
	})
	s.srv = httptest.NewServer(mux)
	t.Cleanup(s.srv.Close)
	return s
}

func (s *site) hit(r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hits[r.URL.RequestURI()]++
}

func (s *site) hitsOf(uri string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits[uri]
}

func (s *site) setRent(id, rent int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rent[id] = rent
}

func (s *site) config() map[string]any {
	return map[string]any{
		"start_urls":           []any{s.srv.URL + "/listings?page=1"},
		"follow":               []any{"a.listing-link", "a.next"},
		"delay":                time.Duration(0),
		"concurrency":          4,
		"per_host_concurrency": 4,
		"max_retry_wait":       20 * time.Millisecond,
		"item": map[string]any{
			"selector": "div.listing",
			"fields": map[string]any{
				"id":    map[string]any{"attr": "data-id", "type": "int"},
				"title": map[string]any{"selector": "h1.title"},
				"rent":  map[string]any{"selector": "span.rent", "type": "number"},
			},
		},
	}
}

// expected is what a full crawl must yield: every listing once, less the dead and rentless ones.
func (s *site) expected() map[string]string {
	out := map[string]string{}
	for id := 1; id <= s.pages*s.perPage; id++ {
		if id == deadListing || id == noRentListing {
			continue
		}
		title := fmt.Sprintf("Flat %d", id)
		if id == brokenListing {
			title = fmt.Sprintf("Flat %dno closing tags €%d,%03d/month", id, s.rent[id]/1000, s.rent[id]%1000)
		}
		out[strconv.Itoa(id)] = fmt.Sprintf(`{"id":%d,"rent":%d,"title":%q}`, id, s.rent[id], title)
	}
	return out
}

func mustURL(t *testing.T, raw string) *url.URL {
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
