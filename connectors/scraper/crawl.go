package scraper

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"mime"
	"net/url"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/robfig/cron/v3"
	"github.com/sluicehq/sluice/connectors/internal/pause"
	"github.com/sluicehq/sluice/sdk/go/connector"
	bolt "go.etcd.io/bbolt"
)

// readBatch is the most records Read returns at once (whole pages are never split).
const readBatch = 1024

// Source is the scraper source.
type Source struct {
	env      connector.Env
	log      *slog.Logger
	cfg      config
	start    []*url.URL
	domains  []string
	follow   []goquery.Matcher
	allow    []*regexp.Regexp
	deny     []*regexp.Regexp
	item     *itemSpec
	schedule cron.Schedule
	fetch    *fetcher

	st    *store
	cond  *sync.Cond // on st.mu: the frontier, pages in progress and pending changed
	queue []entry    // frontier entries not yet taken, in order (guarded by st.mu)
	// guarded by st.mu:
	inProgress int
	fetched    int               // pages taken this round
	pending    []pendingRef      // pages handed out, not yet acked, by last record sequence
	seen       map[string]uint64 // item key → hash, delivered or handed out

	persist chan completion
	out     chan []connector.Record
	ended   chan struct{} // closed when a crawl without re-crawl is done

	cancel context.CancelFunc
	wg     sync.WaitGroup
	errMu  sync.Mutex
	err    error
	errCh  chan struct{}
	closed bool
}

type pendingRef struct {
	lastSeq uint64
	url     string
	items   map[string]uint64
}

var _ connector.Source = (*Source)(nil)

// Open loads the crawl state and starts the crawl (or resumes it). Positions handed back by the
// runtime are not needed: the crawl state holds everything, and pages whose records were not
// acknowledged are fetched again.
func (s *Source) Open(ctx context.Context, _ []connector.Position) error {
	if s.st != nil {
		return errors.New("scraper: already open")
	}
	dir := s.env.DataDir
	if dir == "" {
		s.log.Warn("no data directory: the crawl state is kept in memory and a restart crawls again from the start")
	} else {
		dir = filepath.Join(dir, "scraper")
	}
	st, err := openStore(dir)
	if err != nil {
		return fmt.Errorf("scraper: %w: %w", err, connector.ErrPermanent)
	}
	s.st = st
	s.cond = sync.NewCond(&st.mu)
	s.seen = map[string]uint64{}
	for k, h := range st.mem.items {
		s.seen[k] = h
	}
	s.queue = sortedFrontier(st.mem.frontier)
	s.fetched = len(st.mem.visited)
	s.out = make(chan []connector.Record, s.cfg.Concurrency*2)
	s.persist = make(chan completion, s.cfg.Concurrency*4)
	s.ended = make(chan struct{})
	s.errCh = make(chan struct{})
	if st.mem.round == 0 {
		if err := s.startRound(); err != nil {
			return fmt.Errorf("scraper: %w", err)
		}
	} else if len(s.queue) > 0 {
		s.log.Info("resuming the crawl", "round", st.mem.round, "frontier", len(s.queue), "visited", len(st.mem.visited))
	}
	bg, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	context.AfterFunc(bg, func() {
		s.st.mu.Lock()
		s.cond.Broadcast()
		s.st.mu.Unlock()
	})
	for range s.cfg.Concurrency {
		s.wg.Add(1)
		go s.worker(bg)
	}
	s.wg.Add(2)
	go s.rounds(bg)
	go s.persister(bg)
	return nil
}

func sortedFrontier(m map[string]entry) []entry {
	q := make([]entry, 0, len(m))
	for _, e := range m {
		q = append(q, e)
	}
	sort.Slice(q, func(i, j int) bool { return q[i].Order < q[j].Order })
	return q
}

// startRound puts the start URLs in the frontier and forgets the visited set.
func (s *Source) startRound() error {
	var fresh []entry
	err := s.st.update(func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket(bVisited); err != nil {
			return err
		}
		if _, err := tx.CreateBucket(bVisited); err != nil {
			return err
		}
		fresh = fresh[:0]
		order := s.st.mem.order
		for _, u := range s.start {
			order++
			e := entry{URL: u.String(), Depth: 0, Order: order}
			fresh = append(fresh, e)
			if err := putJSON(tx.Bucket(bFrontier), []byte(e.URL), e); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bMeta)
		if err := meta.Put(kRound, u64(s.st.mem.round+1)); err != nil {
			return err
		}
		return meta.Delete(kDoneAt)
	}, func(m *memState) {
		clear(m.visited)
		m.round++
		m.doneAt = time.Time{}
		for _, e := range fresh {
			if _, dup := m.frontier[e.URL]; !dup {
				m.frontier[e.URL] = e
				s.queue = append(s.queue, e)
			}
			m.order = max(m.order, e.Order)
		}
		s.fetched = 0
		s.cond.Broadcast()
	})
	if err == nil {
		s.fetch.forgetRobots()
		s.log.Info("crawl round started", "round", s.st.mem.round, "start_urls", len(s.start))
	}
	return err
}

// finishedLocked reports whether the round is over: nothing to take, nothing being fetched, nothing
// waiting for its acknowledgement.
func (s *Source) finishedLocked() bool {
	limit := s.cfg.MaxPages > 0 && s.fetched >= s.cfg.MaxPages
	return s.inProgress == 0 && len(s.pending) == 0 && (len(s.queue) == 0 || limit)
}

// rounds waits for each round to finish, records it, and starts the next one on schedule (or
// ends the source).
func (s *Source) rounds(ctx context.Context) {
	defer s.wg.Done()
	for {
		s.st.mu.Lock()
		for !s.finishedLocked() && ctx.Err() == nil {
			s.cond.Wait()
		}
		doneAt := s.st.mem.doneAt
		leftover := s.queue
		s.st.mu.Unlock()
		if ctx.Err() != nil {
			return
		}
		if doneAt.IsZero() {
			doneAt = time.Now()
			err := s.st.update(func(tx *bolt.Tx) error {
				for _, e := range leftover { // over max_pages: not this round
					if err := tx.Bucket(bFrontier).Delete([]byte(e.URL)); err != nil {
						return err
					}
				}
				return tx.Bucket(bMeta).Put(kDoneAt, u64(uint64(doneAt.UnixNano())))
			}, func(m *memState) {
				for _, e := range leftover {
					delete(m.frontier, e.URL)
				}
				s.queue = s.queue[:0]
				m.doneAt = doneAt
			})
			if err != nil {
				s.fail(err)
				return
			}
			s.log.Info("crawl round finished", "round", s.st.mem.round, "pages", len(s.st.mem.visited))
		}
		next, again := s.nextRound(doneAt)
		if !again {
			close(s.ended)
			return
		}
		if pause.Sleep(ctx, time.Until(next)) != nil {
			return
		}
		if err := s.startRound(); err != nil {
			s.fail(err)
			return
		}
	}
}

func (s *Source) fail(err error) {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	if s.err == nil {
		s.err = fmt.Errorf("scraper: %w", err)
		close(s.errCh)
	}
}

// take hands a worker the next page to fetch.
func (s *Source) take(ctx context.Context) (entry, bool) {
	s.st.mu.Lock()
	defer s.st.mu.Unlock()
	for {
		if ctx.Err() != nil {
			return entry{}, false
		}
		if len(s.queue) > 0 && (s.cfg.MaxPages == 0 || s.fetched < s.cfg.MaxPages) {
			e := s.queue[0]
			s.queue = s.queue[1:]
			s.inProgress++
			s.fetched++
			return e, true
		}
		s.cond.Wait()
	}
}

func (s *Source) worker(ctx context.Context) {
	defer s.wg.Done()
	for {
		e, ok := s.take(ctx)
		if !ok {
			return
		}
		if err := s.process(ctx, e); err != nil && ctx.Err() == nil {
			s.fail(err)
		}
		if ctx.Err() != nil {
			return
		}
	}
}

// process fetches one page, records its links and hands out its items. An error is a failure of
// the crawl state; page failures become dead-letter records.
func (s *Source) process(ctx context.Context, e entry) error {
	u, err := url.Parse(e.URL)
	if err != nil {
		return s.complete(ctx, e, nil, []connector.Record{s.pageFailure(e, fmt.Sprintf("page %s: bad URL: %v", e.URL, err))}, nil)
	}
	p, err := s.fetch.fetch(ctx, u)
	switch {
	case ctx.Err() != nil:
		return nil // stopping: the page stays in the frontier file and is fetched after the restart
	case errors.Is(err, errDisallowed):
		s.log.Debug("page disallowed by robots.txt; skipped", "url", e.URL)
		return s.complete(ctx, e, nil, nil, nil)
	case err != nil:
		return s.complete(ctx, e, nil, []connector.Record{s.pageFailure(e, fmt.Sprintf("page %s: %v", e.URL, err))}, nil)
	case p.status < 200 || p.status > 299:
		return s.complete(ctx, e, nil, []connector.Record{s.pageFailure(e, fmt.Sprintf("page %s: HTTP %d", e.URL, p.status))}, nil)
	}
	if mt, _, _ := mime.ParseMediaType(p.contentType); p.contentType != "" && mt != "text/html" && mt != "application/xhtml+xml" {
		s.log.Debug("not an HTML page; skipped", "url", e.URL, "content_type", p.contentType)
		return s.complete(ctx, e, nil, nil, nil)
	}
	doc, err := goquery.NewDocumentFromReader(bytes.NewReader(p.body))
	if err != nil {
		return s.complete(ctx, e, nil, []connector.Record{s.pageFailure(e, fmt.Sprintf("page %s: unreadable HTML: %v", e.URL, err))}, nil)
	}
	base := p.url
	if href, ok := doc.Find("base[href]").First().Attr("href"); ok {
		if b, err := p.url.Parse(href); err == nil {
			base = b
		}
	}
	var links []entry
	if s.cfg.MaxDepth == 0 || e.Depth < s.cfg.MaxDepth {
		for _, m := range s.follow {
			doc.FindMatcher(m).Each(func(_ int, a *goquery.Selection) {
				href, ok := a.Attr("href")
				if !ok {
					return
				}
				lu, err := base.Parse(href)
				if err != nil {
					return
				}
				lu = normalize(lu)
				if s.followable(lu) {
					links = append(links, entry{URL: lu.String(), Depth: e.Depth + 1})
				}
			})
		}
	}
	now := time.Now()
	var recs []connector.Record
	hashes := map[string]uint64{}
	for _, it := range s.item.extractItems(doc, p.url) {
		rec := connector.Record{Key: []byte(it.key), Value: it.value, Time: now, Headers: s.headers(e)}
		if it.reason != "" {
			rec.Headers = append(rec.Headers, connector.Header{Key: connector.HeaderMalformed, Value: []byte(it.reason)})
			recs = append(recs, rec)
			continue
		}
		h := fnv.New64a()
		h.Write(it.value)
		sum := h.Sum64()
		s.st.mu.Lock()
		old, known := s.seen[it.key]
		if !known || old != sum {
			s.seen[it.key] = sum
		}
		s.st.mu.Unlock()
		if known && old == sum {
			continue // unchanged since it was last handed out: a duplicate or a re-crawl without change
		}
		hashes[it.key] = sum
		recs = append(recs, rec)
	}
	return s.complete(ctx, e, links, recs, hashes)
}

func (s *Source) headers(e entry) []connector.Header {
	return []connector.Header{{Key: "scraper_url", Value: []byte(e.URL)}, {Key: "scraper_depth", Value: strconv.AppendInt(nil, int64(e.Depth), 10)}}
}

// pageFailure is the dead-letter record of a page that could not be crawled.
func (s *Source) pageFailure(e entry, reason string) connector.Record {
	v, _ := json.Marshal(map[string]any{"url": e.URL, "depth": e.Depth})
	return connector.Record{Value: v, Time: time.Now(), Headers: append(s.headers(e), connector.Header{Key: connector.HeaderMalformed, Value: []byte(reason)})}
}

// completion is a crawled page on its way to the crawl state and the pipeline.
type completion struct {
	e      entry
	fresh  []entry // links new to the crawl
	recs   []connector.Record
	hashes map[string]uint64
}

// complete records a crawled page: its new links join the frontier at once (other fetchers may
// take them), and the page goes to the persister, which makes it pending (records handed out,
// waiting for the acknowledgement) or, without records, visited. The page counts as in progress
// until then.
func (s *Source) complete(ctx context.Context, e entry, links []entry, recs []connector.Record, hashes map[string]uint64) error {
	s.st.mu.Lock()
	var fresh []entry
	m := &s.st.mem
	for _, l := range links {
		if _, q := m.frontier[l.URL]; q || m.visited[l.URL] || s.isPendingLocked(l.URL) {
			continue
		}
		m.order++
		l.Order = m.order
		m.frontier[l.URL] = l
		fresh = append(fresh, l)
	}
	s.queue = append(s.queue, fresh...)
	if len(fresh) > 0 {
		s.cond.Broadcast()
	}
	s.st.mu.Unlock()
	select {
	case s.persist <- completion{e: e, fresh: fresh, recs: recs, hashes: hashes}:
		return nil
	case <-ctx.Done():
		return nil // stopping: the page stays in the frontier file and is fetched again
	}
}

// persister commits finished pages in groups, one transaction (one fsync) for all the pages that
// finished while the previous group was committed, then hands their records out in that order.
// Sequence numbers follow the channel's order, so the runtime's "everything up to this position"
// covers every page before it too.
func (s *Source) persister(ctx context.Context) {
	defer s.wg.Done()
	for {
		var group []completion
		select {
		case c := <-s.persist:
			group = append(group, c)
		case <-ctx.Done():
			return
		}
	more:
		for len(group) < 256 {
			select {
			case c := <-s.persist:
				group = append(group, c)
			default:
				break more
			}
		}
		err := s.st.update(func(tx *bolt.Tx) error {
			fr, vis, pend := tx.Bucket(bFrontier), tx.Bucket(bVisited), tx.Bucket(bPending)
			for _, c := range group {
				for _, l := range c.fresh {
					if err := putJSON(fr, []byte(l.URL), l); err != nil {
						return err
					}
				}
			}
			for _, c := range group {
				if err := fr.Delete([]byte(c.e.URL)); err != nil {
					return err
				}
				var err error
				if len(c.recs) == 0 {
					err = vis.Put([]byte(c.e.URL), nil)
				} else {
					err = putJSON(pend, []byte(c.e.URL), pendingPage{Entry: c.e, Items: c.hashes})
				}
				if err != nil {
					return err
				}
			}
			return nil
		}, func(m *memState) {
			// One step under the lock, so a link to one of these pages is never taken for new.
			for _, c := range group {
				delete(m.frontier, c.e.URL)
				if len(c.recs) == 0 {
					m.visited[c.e.URL] = true
					continue
				}
				for i := range c.recs {
					m.seq++
					c.recs[i].Position = connector.Position{Partition: "crawl", Offset: int64(m.seq)}
				}
				s.pending = append(s.pending, pendingRef{lastSeq: m.seq, url: c.e.URL, items: c.hashes})
			}
		})
		if err != nil {
			s.fail(err)
			return
		}
		for _, c := range group {
			if len(c.recs) == 0 {
				continue
			}
			select {
			case s.out <- c.recs: // the channel holds a few pages: this is the backpressure
			case <-ctx.Done():
				return
			}
		}
		s.st.mu.Lock()
		s.inProgress -= len(group)
		s.cond.Broadcast()
		s.st.mu.Unlock()
	}
}

func (s *Source) isPendingLocked(u string) bool {
	for _, p := range s.pending {
		if p.url == u {
			return true
		}
	}
	return false
}

// Read returns the records of one or more crawled pages, io.EOF when a crawl without re-crawl is
// done.
func (s *Source) Read(ctx context.Context) ([]connector.Record, error) {
	var recs []connector.Record
	select {
	case recs = <-s.out:
	case <-s.errCh:
		return nil, s.err
	case <-s.ended:
		select {
		case recs = <-s.out:
		default:
			return nil, io.EOF
		}
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	for len(recs) < readBatch {
		select {
		case more := <-s.out:
			recs = append(recs, more...)
		default:
			return recs, nil
		}
	}
	return recs, nil
}

// Ack marks the pages whose records are all delivered as visited, with their items' hashes.
func (s *Source) Ack(_ context.Context, positions []connector.Position) error {
	var upto uint64
	for _, p := range positions {
		if p.Partition == "crawl" && p.Offset > 0 {
			upto = max(upto, uint64(p.Offset))
		}
	}
	s.st.mu.Lock()
	n := 0
	for n < len(s.pending) && s.pending[n].lastSeq <= upto {
		n++
	}
	done := append([]pendingRef(nil), s.pending[:n]...)
	s.st.mu.Unlock()
	if n == 0 {
		return nil
	}
	err := s.st.update(func(tx *bolt.Tx) error {
		pend, vis, items := tx.Bucket(bPending), tx.Bucket(bVisited), tx.Bucket(bItems)
		for _, p := range done {
			if err := pend.Delete([]byte(p.url)); err != nil {
				return err
			}
			if err := vis.Put([]byte(p.url), nil); err != nil {
				return err
			}
			for k, h := range p.items {
				if err := items.Put([]byte(k), u64(h)); err != nil {
					return err
				}
			}
		}
		return tx.Bucket(bMeta).Put(kSeq, u64(done[len(done)-1].lastSeq))
	}, func(m *memState) {
		for _, p := range done {
			m.visited[p.url] = true
			for k, h := range p.items {
				m.items[k] = h
			}
		}
		s.pending = s.pending[n:]
		s.cond.Broadcast()
	})
	if err != nil {
		return fmt.Errorf("scraper: %w", err)
	}
	return nil
}

// Close stops the crawl; pages being fetched stay in the frontier.
func (s *Source) Close(ctx context.Context) error {
	if s.closed {
		return nil
	}
	s.closed = true
	if s.cancel != nil {
		s.cancel()
		done := make(chan struct{})
		go func() {
			// A worker may wait to hand out a page nobody reads any more.
			for {
				select {
				case <-s.out:
				case <-done:
					return
				}
			}
		}()
		go func() { s.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			return fmt.Errorf("scraper: close: %w", ctx.Err())
		}
	}
	if s.st != nil {
		return s.st.close()
	}
	return nil
}
