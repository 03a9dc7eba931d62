package main

import (
	"context"
	"encoding/json"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/sluicehq/sluice/examples/rental-listings/truth"
)

func newTestServer(feed int) *server {
	cfg := siteConfig{seed: 2, pages: 5, perPage: 4}
	return &server{cfg: cfg, site: generate(cfg, "http://site"), flakyServed: map[int]bool{}, feedLeft: feed, rng: rand.New(rand.NewSource(3))}
}

// The feed sends its quota once over all connections, and counts an event delivered once its
// write returned: a client that goes away mid-way leaves the rest to the next one.
func TestFeedSendsItsQuotaOnce(t *testing.T) {
	s := newTestServer(300)
	srv := httptest.NewServer(s.feed(5000))
	defer srv.Close()
	url := "ws" + strings.TrimPrefix(srv.URL, "http")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	seen := map[string]bool{}
	// read takes n events (all it gets within a second of quiet when n is 0), then goes away.
	read := func(n int) {
		c, _, err := websocket.Dial(ctx, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseNow()
		for i := 0; n == 0 || i < n; i++ {
			rctx, rcancel := context.WithTimeout(ctx, time.Second)
			_, b, err := c.Read(rctx)
			rcancel()
			if err != nil && n == 0 {
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var e truth.Event
			if err := json.Unmarshal(b, &e); err != nil || e.Via != "feed" || e.ListingID == "" {
				t.Fatalf("event %s: %v", b, err)
			}
			if seen[e.ID] {
				t.Fatalf("event %s twice", e.ID)
			}
			seen[e.ID] = true
		}
	}
	read(100) // then goes away
	read(0)   // the rest, on a new connection
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.feedLeft != 0 || s.feedSent != 300 || len(s.events) != 300 {
		t.Fatalf("feed: %d sent, %d left, %d delivered", s.feedSent, s.feedLeft, len(s.events))
	}
	counted := map[string]bool{}
	for _, e := range s.events {
		counted[e.ID] = true
	}
	// Every event read was counted. Events written to the first connection as it went away
	// count as sent without having been read: a feed cannot know (the source's README says so).
	for id := range seen {
		if !counted[id] {
			t.Fatalf("event %s read but not counted", id)
		}
	}
	t.Logf("%d events read of %d sent", len(seen), s.feedSent)
}

// The poster waits for the webhook's health, retries a batch until it is answered 2xx, and counts
// exactly the events of the batches answered 2xx.
func TestPosterCountsWhatWasTaken(t *testing.T) {
	s := newTestServer(0)
	var mu sync.Mutex
	healthy, tries, posts, refused := false, 0, 0, 0
	var taken []truth.Event
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.URL.Path == "/healthz" {
			tries++
			healthy = healthy || tries > 3
			if !healthy {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
			return
		}
		if !healthy {
			t.Error("posted before the webhook was healthy")
		}
		var evs []truth.Event
		if err := json.NewDecoder(r.Body).Decode(&evs); err != nil {
			t.Error(err)
		}
		posts++
		if posts%3 == 1 { // busy: the batch is not taken, and must come again
			refused++
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		taken = append(taken, evs...)
	}))
	defer hook.Close()
	s.postEvents(context.Background(), hook.URL+"/events", hook.URL+"/healthz", 95, 10, 100000)
	mu.Lock()
	defer mu.Unlock()
	if len(taken) != 95 || s.webhookSent != 95 || len(s.events) != 95 || !s.webhookDone || refused == 0 {
		t.Fatalf("taken %d, sent %d, delivered %d, done %v, %d refused", len(taken), s.webhookSent, len(s.events), s.webhookDone, refused)
	}
	for i := range taken {
		if taken[i] != s.events[i] {
			t.Fatalf("event %d: taken %+v, counted %+v", i, taken[i], s.events[i])
		}
	}
}
