package scraper

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/temoto/robotstxt"

	"github.com/sluicehq/sluice/connectors/internal/pause"
)

// fetcher fetches pages politely: robots.txt, a delay and a concurrency limit per host, retries
// with backoff on 429, 5xx and network errors (honouring Retry-After), and proxy rotation.
type fetcher struct {
	client       *http.Client
	userAgent    string
	headers      map[string]string
	delay        time.Duration
	perHost      int
	retries      int
	maxRetryWait time.Duration
	maxBody      int64
	robots       bool
	log          *slog.Logger
	proxies      *proxyPool

	mu    sync.Mutex
	hosts map[string]*hostGate
	rules map[string]*robotstxt.Group // by scheme://host; nil group: everything allowed
}

type hostGate struct {
	sem        chan struct{}
	mu         sync.Mutex
	next       time.Time // earliest start of the next request to the host
	crawlDelay time.Duration
}

// page is a fetched page.
type page struct {
	url         *url.URL // after redirects
	status      int
	contentType string
	body        []byte
}

// errDisallowed marks a page robots.txt forbids.
var errDisallowed = errors.New("disallowed by robots.txt")

func (f *fetcher) gate(host string) *hostGate {
	f.mu.Lock()
	defer f.mu.Unlock()
	g := f.hosts[host]
	if g == nil {
		g = &hostGate{sem: make(chan struct{}, f.perHost)}
		f.hosts[host] = g
	}
	return g
}

// acquire waits for a free slot of the host and for its delay since the previous request.
func (g *hostGate) acquire(ctx context.Context, delay time.Duration) error {
	select {
	case g.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	g.mu.Lock()
	d := max(delay, g.crawlDelay)
	wait := time.Until(g.next)
	start := time.Now().Add(max(wait, 0))
	g.next = start.Add(d)
	g.mu.Unlock()
	if wait > 0 && pause.Sleep(ctx, wait) != nil {
		<-g.sem
		return ctx.Err()
	}
	return nil
}

func (g *hostGate) release() { <-g.sem }

// holdOff pushes the host's next request back (a 429 or 503 with Retry-After).
func (g *hostGate) holdOff(d time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if t := time.Now().Add(d); t.After(g.next) {
		g.next = t
	}
}

// allowed checks robots.txt for the URL, fetching and caching the host's rules once per round.
func (f *fetcher) allowed(ctx context.Context, u *url.URL) (bool, error) {
	if !f.robots {
		return true, nil
	}
	origin := u.Scheme + "://" + u.Host
	f.mu.Lock()
	grp, ok := f.rules[origin]
	f.mu.Unlock()
	if !ok {
		robotsURL := &url.URL{Scheme: u.Scheme, Host: u.Host, Path: "/robots.txt"}
		p, err := f.get(ctx, robotsURL)
		var data *robotstxt.RobotsData
		switch {
		case err != nil && ctx.Err() != nil:
			return false, ctx.Err()
		case err != nil:
			// Unreachable robots.txt: be conservative for this round, as crawlers commonly are.
			f.log.Warn("robots.txt unreachable; not crawling the host this round", "url", robotsURL.String(), "err", err)
			data, _ = robotstxt.FromStatusAndBytes(http.StatusServiceUnavailable, nil)
		default:
			data, err = robotstxt.FromStatusAndBytes(p.status, p.body)
			if err != nil {
				f.log.Warn("robots.txt unreadable; treating it as allowing everything", "url", robotsURL.String(), "err", err)
				data, _ = robotstxt.FromStatusAndBytes(http.StatusNotFound, nil)
			}
		}
		grp = data.FindGroup(f.userAgent)
		if grp.CrawlDelay > 0 {
			g := f.gate(u.Host)
			g.mu.Lock()
			g.crawlDelay = grp.CrawlDelay
			g.mu.Unlock()
		}
		f.mu.Lock()
		f.rules[origin] = grp
		f.mu.Unlock()
	}
	path := u.EscapedPath()
	if u.RawQuery != "" {
		path += "?" + u.RawQuery
	}
	return grp.Test(path), nil
}

// forgetRobots drops the cached robots.txt rules, so a new round reads them again.
func (f *fetcher) forgetRobots() {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.rules)
}

// fetch gets a page, retrying what may succeed later. A page that still fails is an error
// saying why; a status other than 2xx after the retries is returned as a page with that status.
func (f *fetcher) fetch(ctx context.Context, u *url.URL) (*page, error) {
	ok, err := f.allowed(ctx, u)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errDisallowed
	}
	return f.get(ctx, u)
}

func (f *fetcher) get(ctx context.Context, u *url.URL) (*page, error) {
	g := f.gate(u.Host)
	var lastErr error
	for attempt := 0; ; attempt++ {
		if err := g.acquire(ctx, f.delay); err != nil {
			return nil, err
		}
		p, retryAfter, err := f.once(ctx, u)
		g.release()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		retryable := err != nil || p.status == http.StatusTooManyRequests || p.status >= 500
		if !retryable {
			return p, nil
		}
		if err != nil {
			lastErr = err
		} else {
			lastErr = fmt.Errorf("HTTP %d", p.status)
		}
		if attempt >= f.retries {
			if err != nil {
				return nil, fmt.Errorf("%w (after %d attempts)", lastErr, attempt+1)
			}
			return p, nil
		}
		wait := pause.Backoff(attempt+1, time.Second, f.maxRetryWait)
		if retryAfter > 0 {
			wait = min(retryAfter, f.maxRetryWait)
			g.holdOff(wait)
		}
		f.log.Debug("page fetch failed; retrying", "url", u.String(), "err", lastErr, "wait", wait)
		if pause.Sleep(ctx, wait) != nil {
			return nil, ctx.Err()
		}
	}
}

// once makes one request. retryAfter is the server's Retry-After, when it sent one.
func (f *fetcher) once(ctx context.Context, u *url.URL) (*page, time.Duration, error) {
	var proxy *proxyState
	if f.proxies != nil {
		proxy = f.proxies.pick()
		ctx = context.WithValue(ctx, proxyKey{}, proxy)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("User-Agent", f.userAgent)
	req.Header.Set("Accept", "text/html,application/xhtml+xml;q=0.9,*/*;q=0.5")
	for k, v := range f.headers {
		req.Header.Set(k, v)
	}
	resp, err := f.client.Do(req)
	if err != nil {
		if proxy != nil && ctx.Err() == nil {
			f.proxies.failed(proxy, err, f.log)
		}
		return nil, 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, f.maxBody+1))
	if err != nil {
		return nil, 0, err
	}
	if int64(len(body)) > f.maxBody {
		return nil, 0, fmt.Errorf("page larger than max_page_bytes (%d)", f.maxBody)
	}
	if proxy != nil && resp.StatusCode == http.StatusProxyAuthRequired {
		f.proxies.failed(proxy, errors.New(resp.Status), f.log)
	}
	return &page{url: resp.Request.URL, status: resp.StatusCode, contentType: resp.Header.Get("Content-Type"), body: body},
		retryAfter(resp.Header.Get("Retry-After")), nil
}

func retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}

// ---- proxies ----

type proxyKey struct{}

type proxyState struct {
	url      *url.URL
	badUntil time.Time
}

// proxyPool rotates over the configured proxies, leaving out for a while one that failed.
type proxyPool struct {
	mu       sync.Mutex
	list     []*proxyState
	next     int
	cooldown time.Duration
}

func (p *proxyPool) pick() *proxyState {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	for range p.list {
		s := p.list[p.next%len(p.list)]
		p.next++
		if now.After(s.badUntil) {
			return s
		}
	}
	// Every proxy is cooling down: take the one that recovers first.
	best := p.list[0]
	for _, s := range p.list[1:] {
		if s.badUntil.Before(best.badUntil) {
			best = s
		}
	}
	return best
}

func (p *proxyPool) failed(s *proxyState, err error, log *slog.Logger) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s.badUntil = time.Now().Add(p.cooldown)
	log.Warn("proxy failed; leaving it out for a while", "proxy", s.url.Redacted(), "cooldown", p.cooldown, "err", err)
}

// proxyFor is the transport's Proxy function: the proxy the request's context names.
func proxyFor(req *http.Request) (*url.URL, error) {
	if s, ok := req.Context().Value(proxyKey{}).(*proxyState); ok && s != nil {
		return s.url, nil
	}
	return nil, nil
}
