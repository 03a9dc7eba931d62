// Command listingsite serves a local rental listings site for the rental-listings example: a few
// hundred pages of listings with pagination, duplicates (a listing on several pages), broken items
// (no id, no price, a price on request or too low), low-quality items, pages that always answer
// 500 and pages that answer 503 once; every listing carries its landlord's name, email and phone.
// It also produces user interaction events (views and favourites of the listings): a WebSocket
// feed, and a generator posting them to a webhook. It knows what it served and says so on
// GET /truth, so that every record can be accounted for. Everything is drawn from -seed.
//
//	GET /listings?page=N    a page of listings (article.listing), with nav.pagination links
//	GET /promoted/N         always 500
//	GET /robots.txt         allows everything but /truth
//	GET /truth              what was served and delivered (examples/rental-listings/truth)
//	GET /events/feed        WebSocket: -feed-events events in all, one JSON message each
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"math/rand"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/coder/websocket"

	"github.com/sluicehq/sluice/examples/rental-listings/truth"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "listingsite:", err)
		os.Exit(1)
	}
}

// server is the running site.
type server struct {
	cfg  siteConfig
	site *site

	mu          sync.Mutex
	flakyServed map[int]bool
	events      []truth.Event
	webhookSent int
	feedSent    int
	webhookDone bool
	feedLeft    int
	rng         *rand.Rand
	nextEvent   int
}

func run(args []string) error {
	fs := flag.NewFlagSet("listingsite", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:8790", "address to listen on (port 0 picks a free one; see -ready-file)")
	readyFile := fs.String("ready-file", "", "once listening, write the site's base URL (http://host:port) to this file")
	var cfg siteConfig
	fs.Int64Var(&cfg.seed, "seed", 1, "seed of every random draw: the same seed and flags serve the same site")
	fs.IntVar(&cfg.pages, "pages", 300, "listing pages")
	fs.IntVar(&cfg.perPage, "per-page", 8, "items per page")
	fs.Float64Var(&cfg.dup, "dup", 0.08, "share of items that repeat a listing of an earlier page")
	fs.Float64Var(&cfg.broken, "broken", 0.05, "share of broken items (no id, no price, a price on request or too low)")
	fs.Float64Var(&cfg.low, "low", 0.03, "share of low-quality items (short title, no city, no rooms)")
	fs.Float64Var(&cfg.degraded, "degraded", 0.05, "share of valid listings without an area")
	fs.IntVar(&cfg.errorPages, "error-pages", 3, "promoted pages that always answer 500")
	fs.IntVar(&cfg.flakyEvery, "flaky-every", 25, "every n-th page answers 503 to its first request (0: none)")
	webhook := fs.String("webhook", "", "post -webhook-events interaction events to this URL (the sluice webhook source)")
	webhookReady := fs.String("webhook-ready", "", "wait until this URL answers 200 (the webhook's health_path) before posting events")
	webhookEvents := fs.Int("webhook-events", 2000, "events to post to -webhook")
	webhookBatch := fs.Int("webhook-batch", 50, "events per request to -webhook")
	feedEvents := fs.Int("feed-events", 2000, "events the WebSocket feed sends, over all its connections")
	eventRate := fs.Float64("event-rate", 1000, "events per second of each of the feed and the webhook poster")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case cfg.pages < 1 || cfg.perPage < 1:
		return fmt.Errorf("-pages and -per-page must be at least 1, got %d and %d", cfg.pages, cfg.perPage)
	case cfg.dup < 0 || cfg.broken < 0 || cfg.low < 0 || cfg.dup+cfg.broken+cfg.low > 1:
		return fmt.Errorf("-dup, -broken and -low must be at least 0 and add up to at most 1")
	case *webhookEvents < 0 || *feedEvents < 0 || *webhookBatch < 1 || *eventRate <= 0:
		return fmt.Errorf("-webhook-events and -feed-events must be at least 0, -webhook-batch at least 1, -event-rate above 0")
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	base := "http://" + ln.Addr().String()
	s := &server{cfg: cfg, site: generate(cfg, base), flakyServed: map[int]bool{}, feedLeft: *feedEvents,
		rng: rand.New(rand.NewSource(cfg.seed + 1)), webhookDone: *webhook == "" || *webhookEvents == 0}
	if len(s.site.truth.Listings) == 0 {
		return errors.New("the site has no valid listing to send events about: raise -pages")
	}
	if *webhook == "" {
		*webhookEvents = 0
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /listings", s.listings)
	mux.HandleFunc("GET /promoted/", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "promoted listings are unavailable", http.StatusInternalServerError)
	})
	mux.HandleFunc("GET /robots.txt", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "User-agent: *\nDisallow: /truth\nDisallow: /events/\n")
	})
	mux.HandleFunc("GET /truth", s.truthHandler)
	mux.HandleFunc("GET /events/feed", s.feed(*eventRate))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *webhook != "" && *webhookEvents > 0 {
		go s.postEvents(ctx, *webhook, *webhookReady, *webhookEvents, *webhookBatch, *eventRate)
	}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if *readyFile != "" {
		if err := os.WriteFile(*readyFile, []byte(base+"\n"), 0o644); err != nil {
			return err
		}
	}
	t := &s.site.truth
	log.Printf("listingsite on %s: %d pages, %d items (%d distinct valid listings, %d duplicates, %d to reject), %d error pages",
		base, t.Pages, t.ItemsServed, len(t.Listings), t.Duplicates, len(t.Rejected), len(t.ErrorPages))
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func (s *server) listings(w http.ResponseWriter, r *http.Request) {
	p, err := strconv.Atoi(r.URL.Query().Get("page"))
	if err != nil || p < 1 || p > s.cfg.pages {
		http.Error(w, fmt.Sprintf("no such page: page must be 1 to %d", s.cfg.pages), http.StatusNotFound)
		return
	}
	if s.cfg.flakyEvery > 0 && p%s.cfg.flakyEvery == 0 {
		s.mu.Lock()
		first := !s.flakyServed[p]
		s.flakyServed[p] = true
		s.mu.Unlock()
		if first {
			w.Header().Set("Retry-After", "0")
			http.Error(w, "busy, try again", http.StatusServiceUnavailable)
			return
		}
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprint(w, s.site.render(s.cfg, p))
}

func (s *server) truthHandler(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	t := s.site.truth
	t.FlakyPages = len(s.flakyServed)
	t.Events = append([]truth.Event(nil), s.events...)
	t.WebhookSent, t.FeedSent = s.webhookSent, s.feedSent
	t.EventsDone = s.webhookDone && s.feedLeft == 0
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(t)
}

// newEvent draws an event about a valid listing; s.mu is held.
func (s *server) newEvent(via string) truth.Event {
	s.nextEvent++
	ls := s.site.truth.Listings
	kind := "view"
	if s.rng.Float64() < 0.15 {
		kind = "favourite"
	}
	return truth.Event{ID: fmt.Sprintf("%s-%06d", via, s.nextEvent), Kind: kind,
		ListingID: ls[s.rng.Intn(len(ls))].ID, User: fmt.Sprintf("u%d", 1+s.rng.Intn(500)),
		TS: time.Now().UnixMilli(), Via: via}
}

// feed sends events on a WebSocket connection until the feed's quota is spent; an event counts as
// delivered once its write returned.
func (s *server) feed(rate float64) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		ctx := c.CloseRead(r.Context()) // answers pings; done when the client goes
		tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			s.mu.Lock()
			if s.feedLeft == 0 {
				s.mu.Unlock()
				continue // stay connected, idle
			}
			s.feedLeft--
			e := s.newEvent("feed")
			s.mu.Unlock()
			b, _ := json.Marshal(e)
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := c.Write(wctx, websocket.MessageText, b)
			cancel()
			s.mu.Lock()
			if err != nil {
				s.feedLeft++ // not delivered: sent again on the next connection
				s.mu.Unlock()
				return
			}
			s.events = append(s.events, e)
			s.feedSent++
			s.mu.Unlock()
		}
	}
}

// postEvents posts n events to url in batches (JSON arrays), retrying a batch until it is
// answered 2xx; a batch counts as delivered once it is. With ready set, it first waits until
// ready answers 200, so that the first events are not minutes old when the webhook opens.
func (s *server) postEvents(ctx context.Context, url, ready string, n, batch int, rate float64) {
	for attempt := 1; ready != ""; attempt++ {
		resp, err := http.Get(ready)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
			err = fmt.Errorf("%s", resp.Status)
		}
		if attempt%50 == 0 {
			log.Printf("webhook health %s: %v; still waiting", ready, err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
	interval := time.Duration(float64(batch) * float64(time.Second) / rate)
	for sent := 0; sent < n; {
		k := min(batch, n-sent)
		s.mu.Lock()
		evs := make([]truth.Event, k)
		for i := range evs {
			evs[i] = s.newEvent("webhook")
		}
		s.mu.Unlock()
		body, _ := json.Marshal(evs)
		for attempt := 0; ; attempt++ {
			if ctx.Err() != nil {
				return
			}
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode/100 == 2 {
					break
				}
				err = fmt.Errorf("%s", resp.Status)
			}
			if attempt%20 == 19 {
				log.Printf("webhook %s: %v; still retrying", url, err)
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(250 * time.Millisecond):
			}
		}
		s.mu.Lock()
		s.events = append(s.events, evs...)
		s.webhookSent += k
		s.mu.Unlock()
		sent += k
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
	}
	s.mu.Lock()
	s.webhookDone = true
	s.mu.Unlock()
	log.Printf("webhook %s: %d events delivered", url, n)
}
