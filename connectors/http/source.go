package http

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/sluicehq/sluice/connectors/internal/jsontext"
	"github.com/sluicehq/sluice/connectors/internal/pause"
	"github.com/sluicehq/sluice/sdk/go/connector"
	"github.com/sluicehq/sluice/sdk/go/template"
)

// Source polls an HTTP API. Read is called from one goroutine; Ack and Close may run
// concurrently with it.
type Source struct {
	cfg      config
	log      *slog.Logger
	base     *url.URL
	body     *template.Template
	key      *template.Template
	records  *selector
	next     *selector // pagination.next
	pageTok  *selector // pagination.cursor
	field    *selector // cursor.field
	token    *selector // cursor.token
	sched    cron.Schedule
	interval time.Duration
	now      func() time.Time

	client *client

	// The Read goroutine's state.
	cur       *pageState // the page to request next; nil between cycles
	skip      int64      // records of cur's page delivered before a restart
	last      *pageState // the finished state of the last cycle, if any
	cycles    int        // cycles started (or resumed) by this process
	validator http.Header
}

var _ connector.Source = (*Source)(nil)

// NewSource builds an http source from its configuration. It does no I/O.
func NewSource(cfg connector.Config, env connector.Env) (*Source, error) {
	s := &Source{log: env.Logger, now: time.Now}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	c := &s.cfg
	if err := sourceSpec.Decode(cfg, c); err != nil {
		return nil, err
	}
	u, err := parseHTTPURL("url", c.URL)
	if err != nil {
		return nil, err
	}
	s.base = u
	if c.Body != "" {
		if c.Method != http.MethodPost {
			return nil, &connector.ConfigError{Field: "body", Msg: "a body needs method: POST"}
		}
		if s.body, err = template.ParseField("body", c.Body); err != nil {
			return nil, err
		}
	}
	if c.Key != "" {
		if s.key, err = template.ParseField("key", c.Key); err != nil {
			return nil, err
		}
	}
	for _, p := range []struct {
		field, expr string
		dst         **selector
	}{
		{"records", c.Records, &s.records}, {"pagination.next", c.Pagination.Next, &s.next},
		{"pagination.cursor", c.Pagination.Cursor, &s.pageTok}, {"cursor.field", c.Cursor.Field, &s.field},
		{"cursor.token", c.Cursor.Token, &s.token},
	} {
		if p.expr == "" {
			continue
		}
		if *p.dst, err = compileSelector(p.field, p.expr); err != nil {
			return nil, err
		}
	}
	if err := s.checkPagination(); err != nil {
		return nil, err
	}
	if err := s.checkCursor(); err != nil {
		return nil, err
	}
	if err := s.checkSchedule(); err != nil {
		return nil, err
	}
	if err := s.checkAuth(); err != nil {
		return nil, err
	}
	for _, f := range []struct {
		name string
		v    int64
	}{{"timeout", int64(c.Timeout)}, {"max_response_bytes", c.MaxResponseBytes}, {"retry.max_attempts", int64(c.Retry.MaxAttempts)}} {
		if f.v <= 0 {
			return nil, &connector.ConfigError{Field: f.name, Msg: "must be greater than 0"}
		}
	}
	if c.Retry.InitialBackoff < 0 || c.Retry.MaxBackoff < c.Retry.InitialBackoff {
		return nil, &connector.ConfigError{Field: "retry.max_backoff", Msg: "must be at least retry.initial_backoff, which must not be negative"}
	}
	if c.RateLimit.PerSecond < 0 {
		return nil, &connector.ConfigError{Field: "rate_limit.per_second", Msg: "must not be negative"}
	}
	return s, nil
}

func parseHTTPURL(field, raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		msg := err.Error()
		var ue *url.Error
		if errors.As(err, &ue) {
			msg = ue.Err.Error()
		}
		return nil, &connector.ConfigError{Field: field, Msg: fmt.Sprintf("invalid URL: %s", msg)}
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, &connector.ConfigError{Field: field, Msg: fmt.Sprintf("%q is not an absolute http or https URL", u.Redacted()),
			Hint: "write the scheme and host: https://api.example.com/v1/items"}
	}
	return u, nil
}

func (s *Source) checkPagination() error {
	p := s.cfg.Pagination
	var set []string
	for _, m := range []struct {
		name string
		on   bool
	}{{"next", p.Next != ""}, {"link_header", p.LinkHeader}, {"page_param", p.PageParam != ""}, {"offset_param", p.OffsetParam != ""}, {"cursor", p.Cursor != ""}} {
		if m.on {
			set = append(set, m.name)
		}
	}
	if len(set) > 1 {
		return &connector.ConfigError{Field: "pagination." + set[1], Msg: fmt.Sprintf("excludes pagination.%s: set one way to the next page", set[0])}
	}
	if p.Cursor != "" && p.CursorParam == "" && s.body == nil {
		return &connector.ConfigError{Field: "pagination.cursor_param", Msg: "is required with pagination.cursor (or use {{next}} in body)"}
	}
	if p.CursorParam != "" && p.Cursor == "" {
		return &connector.ConfigError{Field: "pagination.cursor", Msg: "is required with pagination.cursor_param"}
	}
	if p.Limit < 0 || p.MaxPages < 0 {
		return &connector.ConfigError{Field: "pagination.limit", Msg: "must not be negative"}
	}
	if p.LimitParam != "" && p.Limit == 0 {
		return &connector.ConfigError{Field: "pagination.limit", Msg: "is required with pagination.limit_param"}
	}
	return nil
}

func (s *Source) checkCursor() error {
	c := s.cfg.Cursor
	if c.Field != "" && c.Token != "" {
		return &connector.ConfigError{Field: "cursor.token", Msg: "excludes cursor.field: the next cycle's cursor is either the largest field value or a token"}
	}
	if c.Param != "" && c.Field == "" && c.Token == "" {
		return &connector.ConfigError{Field: "cursor.field", Msg: "cursor.param needs cursor.field or cursor.token"}
	}
	if (c.Field != "" || c.Token != "") && c.Param == "" && s.body == nil {
		return &connector.ConfigError{Field: "cursor.param", Msg: "is required with cursor.field or cursor.token (or use {{since}} in body)"}
	}
	return nil
}

func (s *Source) checkSchedule() error {
	c := &s.cfg
	if c.Schedule != "" && c.Interval != 0 {
		return &connector.ConfigError{Field: "interval", Msg: "excludes schedule: set one of them"}
	}
	if c.Interval < 0 {
		return &connector.ConfigError{Field: "interval", Msg: "must not be negative"}
	}
	s.interval = c.Interval
	if c.Schedule != "" {
		sched, err := cron.ParseStandard(c.Schedule)
		if err != nil {
			return &connector.ConfigError{Field: "schedule", Msg: fmt.Sprintf("invalid cron expression %q: %v", c.Schedule, err),
				Hint: "five fields: minute hour day-of-month month day-of-week (\"0 2 * * *\"), or @hourly, @daily, @every 10m"}
		}
		s.sched = sched
	}
	return nil
}

func (s *Source) checkAuth() error {
	a := s.cfg.Auth
	var set []string
	if a.Bearer != "" {
		set = append(set, "bearer")
	}
	if a.Basic.Username != "" || a.Basic.Password != "" {
		set = append(set, "basic")
	}
	if a.APIKey.Name != "" || a.APIKey.Value != "" {
		set = append(set, "api_key")
		if a.APIKey.Name == "" {
			return &connector.ConfigError{Field: "auth.api_key.name", Msg: "is required with auth.api_key"}
		}
	}
	if o := a.OAuth2; o.TokenURL != "" || o.ClientID != "" || o.ClientSecret != "" {
		set = append(set, "oauth2")
		if _, err := parseHTTPURL("auth.oauth2.token_url", o.TokenURL); err != nil {
			return err
		}
		if o.ClientID == "" {
			return &connector.ConfigError{Field: "auth.oauth2.client_id", Msg: "is required with auth.oauth2"}
		}
	}
	if len(set) > 1 {
		return &connector.ConfigError{Field: "auth." + set[1], Msg: fmt.Sprintf("excludes auth.%s: set one way to authenticate", set[0])}
	}
	return nil
}

func (s *Source) bounded() bool { return s.sched == nil && s.interval == 0 }

func (s *Source) incremental() bool { return s.field != nil || s.token != nil }

// Open builds the HTTP client, fetches the first OAuth2 token when the source uses one, and takes
// up the cycle where the resume position left it.
func (s *Source) Open(ctx context.Context, resume []connector.Position) error {
	for _, p := range resume {
		if p.Partition != "" || len(p.Cursor) == 0 {
			continue
		}
		st, err := decodeState(p.Cursor)
		if err != nil {
			return fmt.Errorf("%w: %w", err, connector.ErrPermanent)
		}
		if st.Done {
			s.last, s.cur = st, nil
		} else {
			s.cur, s.skip = st, p.Offset
			s.cycles = 1
			s.log.Info("http source: resuming a cycle", "page", st.Index+1, "skip", p.Offset)
		}
	}
	if s.client != nil {
		s.client.close() // a failed Open, retried
	}
	s.client = newClient(&s.cfg, s.log)
	if s.client.oauth != nil {
		if err := s.client.token(ctx); err != nil {
			return err
		}
	}
	return nil
}

// Read returns the records of the next page that has any, waiting for the next cycle when the
// current one is over. A bounded source returns io.EOF after its cycle.
func (s *Source) Read(ctx context.Context) ([]connector.Record, error) {
	if s.client == nil {
		return nil, fmt.Errorf("http source: Read before Open")
	}
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if s.cur == nil {
			if err := s.startCycle(ctx); err != nil {
				return nil, err
			}
		}
		recs, err := s.readPage(ctx)
		if err != nil || len(recs) > 0 {
			return recs, err
		}
	}
}

// startCycle waits for the next cycle's time and sets cur to its first page. It returns io.EOF
// when a bounded source has nothing more to do.
func (s *Source) startCycle(ctx context.Context) error {
	if s.bounded() {
		if s.cycles > 0 || (s.last != nil && !s.incremental()) {
			return io.EOF
		}
	} else if err := pause.Sleep(ctx, s.nextCycle().Sub(s.now())); err != nil {
		return err
	}
	since := s.cfg.Cursor.Initial
	s.validator = nil
	if s.last != nil {
		if s.incremental() {
			since = s.last.nextSince()
		}
		if s.cfg.Conditional {
			s.validator = http.Header{}
			if s.last.ETag != "" {
				s.validator.Set("If-None-Match", s.last.ETag)
			}
			if s.last.LastModified != "" {
				s.validator.Set("If-Modified-Since", s.last.LastModified)
			}
		}
	}
	s.cur = &pageState{Cycle: s.now().UnixMilli(), Since: since, Page: s.cfg.Pagination.PageStart}
	s.skip = 0
	s.cycles++
	s.log.Debug("http source: cycle starts", "since", since)
	return nil
}

// nextCycle is when the next cycle is due: at once for the first one (with a cron schedule, at its
// first time unless run_on_start), else one interval or the next scheduled time after the last
// cycle's start, which may have passed (a missed run happens once, at once).
func (s *Source) nextCycle() time.Time {
	now := s.now()
	if s.last == nil {
		if s.sched != nil && !s.cfg.RunOnStart {
			return s.sched.Next(now)
		}
		return now
	}
	prev := time.UnixMilli(s.last.Cycle)
	if s.sched != nil {
		return s.sched.Next(prev)
	}
	return prev.Add(s.interval)
}

// item is one record of a page: its JSON, or why it is not JSON.
type item struct {
	raw []byte
	bad string
}

// readPage requests the current page and returns its records after the ones delivered before a
// restart, each positioned (see pageState). It moves cur to the next page, or ends the cycle.
func (s *Source) readPage(ctx context.Context) ([]connector.Record, error) {
	st := s.cur
	target, body, err := s.request(st)
	if err != nil {
		return nil, err
	}
	var extra http.Header
	if body != nil {
		extra = http.Header{"Content-Type": {s.cfg.ContentType}}
	}
	if st.Index == 0 && s.skip == 0 {
		for k, v := range s.validator {
			if extra == nil {
				extra = http.Header{}
			}
			extra[k] = v
		}
	}
	resp, err := s.client.do(ctx, s.cfg.Method, target, body, extra)
	if err != nil {
		return nil, err
	}
	if resp.status == http.StatusNotModified {
		s.finish(s.doneState(st, st.Max, s.validator.Get("If-None-Match"), s.validator.Get("If-Modified-Since")))
		s.log.Debug("http source: not modified", "url", target.Redacted())
		return nil, nil
	}
	etag, lastMod := st.ETag, st.LastModified
	if st.Index == 0 {
		etag, lastMod = resp.header.Get("ETag"), resp.header.Get("Last-Modified")
	}
	items, doc, ok := s.items(resp)
	max := cursorValue(st.Max)
	var next *pageState
	if ok {
		next, err = s.nextState(st, resp, doc, len(items))
		if err != nil {
			return nil, err
		}
	}
	now := s.now()
	here := st.encode()
	recs := make([]connector.Record, 0, max64(int64(len(items))-s.skip, 0))
	for i, it := range items {
		if s.field != nil && it.bad == "" {
			if v, ok, _ := s.field.first(it.raw); ok && greater(cursorValue(v), max) {
				max = cursorValue(v)
			}
		}
		if int64(i) < s.skip {
			continue
		}
		recs = append(recs, s.record(it, target, now, connector.Position{Cursor: here, Offset: int64(i + 1)}))
	}
	// The page's last record names what follows the page, so that a checkpoint at it resumes there.
	var after *pageState
	if next != nil {
		next.Max, next.ETag, next.LastModified = json.RawMessage(max), etag, lastMod
		after = next
	} else {
		end := json.RawMessage(max)
		if s.token != nil {
			end = nil
			if doc != nil {
				if v, found, _ := s.token.first(doc); found {
					end = v
				}
			}
		}
		after = s.doneState(st, end, etag, lastMod)
	}
	if n := len(recs); n > 0 {
		recs[n-1].Position = connector.Position{Cursor: after.encode()}
	}
	s.skip = 0
	if after.Done {
		s.finish(after)
	} else {
		s.cur = after
	}
	return recs, nil
}

func max64(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

func (s *Source) doneState(st *pageState, end json.RawMessage, etag, lastMod string) *pageState {
	return &pageState{Cycle: st.Cycle, Since: st.Since, Max: end, Index: st.Index + 1, Done: true, ETag: etag, LastModified: lastMod}
}

// finish ends the current cycle.
func (s *Source) finish(done *pageState) {
	s.last, s.cur, s.skip = done, nil, 0
	s.log.Debug("http source: cycle finished", "pages", done.Index, "next_since", done.nextSince())
}

// record builds the record of one item.
func (s *Source) record(it item, target *url.URL, now time.Time, pos connector.Position) connector.Record {
	r := connector.Record{Value: it.raw, Time: now, Position: pos}
	reason := it.bad
	if reason == "" && s.key != nil {
		k, err := s.key.Render(&r)
		if err != nil {
			reason = fmt.Sprintf("key: %v", err)
		} else {
			r.Key = []byte(k)
		}
	}
	if reason != "" {
		if len(r.Value) > malformedPrefix {
			r.Value = r.Value[:malformedPrefix:malformedPrefix]
		}
		r.Headers = []connector.Header{{Key: connector.HeaderMalformed, Value: []byte(fmt.Sprintf("%s: %s", target.Redacted(), reason))}}
	}
	return r
}

// malformedPrefix is how much of a value that is not JSON its dead letter keeps.
const malformedPrefix = 1024

// request builds the URL and body of a page's request.
func (s *Source) request(st *pageState) (*url.URL, []byte, error) {
	var u *url.URL
	if st.URL != "" {
		var err error
		if u, err = url.Parse(st.URL); err != nil {
			return nil, nil, fmt.Errorf("http source: next page URL %q: %w", st.URL, err)
		}
		if u.Scheme != s.base.Scheme || u.Host != s.base.Host {
			// A checkpoint taken before url changed: its credentials must not go to the old host.
			return nil, nil, fmt.Errorf("http source: the checkpointed page %s is not on %s://%s, the configured url's host; reset the pipeline's checkpoint (sluice run --reset) to start over: %w",
				u.Redacted(), s.base.Scheme, s.base.Host, connector.ErrPermanent)
		}
	} else {
		cp := *s.base
		u = &cp
		q := u.Query()
		p := s.cfg.Pagination
		if s.cfg.Cursor.Param != "" && st.Since != "" {
			q.Set(s.cfg.Cursor.Param, st.Since)
		}
		switch {
		case p.PageParam != "":
			q.Set(p.PageParam, strconv.FormatInt(st.Page, 10))
		case p.OffsetParam != "":
			q.Set(p.OffsetParam, strconv.FormatInt(st.Offset, 10))
		case p.CursorParam != "" && st.Token != "":
			q.Set(p.CursorParam, st.Token)
		}
		if p.LimitParam != "" {
			q.Set(p.LimitParam, strconv.FormatInt(p.Limit, 10))
		}
		u.RawQuery = q.Encode()
	}
	if s.body == nil {
		return u, nil, nil
	}
	vars, _ := json.Marshal(map[string]any{"since": st.Since, "page": st.Page, "offset": st.Offset, "limit": s.cfg.Pagination.Limit, "next": st.Token})
	b, err := s.body.Append(nil, &connector.Record{Value: vars})
	if err != nil {
		return nil, nil, fmt.Errorf("http source: body: %w: %w", err, connector.ErrPermanent)
	}
	return u, b, nil
}

// items splits a response into its records. doc is the JSON document, nil for NDJSON. ok is false
// for a response that is not JSON: it is one item marked bad, and it ends the cycle.
func (s *Source) items(resp *response) (items []item, doc []byte, ok bool) {
	if s.ndjson(resp.header.Get("Content-Type")) {
		var out []item
		jsontext.Lines(resp.body, func(line []byte, _ int) bool {
			if !json.Valid(line) {
				out = append(out, item{raw: line, bad: "NDJSON line is not JSON"})
			} else {
				out = append(out, item{raw: line})
			}
			return true
		})
		return out, nil, true
	}
	doc = jsontext.TrimSpace(resp.body)
	if len(doc) == 0 {
		return nil, nil, true
	}
	if !json.Valid(doc) {
		return []item{{raw: doc, bad: fmt.Sprintf("response (%s) is not JSON", contentType(resp.header))}}, nil, false
	}
	var raws [][]byte
	if s.records != nil {
		var err error
		if raws, err = s.records.selectAll(doc); err != nil {
			return []item{{raw: doc, bad: err.Error()}}, nil, false
		}
	} else if jsontext.FirstByte(doc) == '[' {
		raws = jsontext.SplitArray(doc)
	} else {
		raws = [][]byte{doc}
	}
	items = make([]item, len(raws))
	for i, r := range raws {
		items[i] = item{raw: r}
	}
	return items, doc, true
}

func contentType(h http.Header) string {
	if ct := h.Get("Content-Type"); ct != "" {
		return ct
	}
	return "no Content-Type"
}

func (s *Source) ndjson(ct string) bool {
	switch s.cfg.Format {
	case "ndjson":
		return true
	case "json":
		return false
	}
	mt, _, _ := mime.ParseMediaType(ct)
	return strings.Contains(mt, "ndjson") || strings.Contains(mt, "jsonl") || strings.Contains(mt, "json-lines") || strings.Contains(mt, "json-seq")
}

// nextState is the state of the page after st, or nil when st's page is the cycle's last. n is
// the number of records on st's page.
func (s *Source) nextState(st *pageState, resp *response, doc []byte, n int) (*pageState, error) {
	p := s.cfg.Pagination
	if p.MaxPages > 0 && st.Index+1 >= p.MaxPages {
		return nil, nil
	}
	nx := &pageState{Cycle: st.Cycle, Since: st.Since, Index: st.Index + 1, Page: st.Page}
	switch {
	case s.next != nil, p.LinkHeader:
		var link string
		if s.next != nil {
			if doc == nil {
				return nil, nil
			}
			raw, ok, err := s.next.first(doc)
			if err != nil || !ok {
				return nil, nil
			}
			link = cursorValue(raw).text()
		} else {
			link = nextLink(resp.header.Values("Link"))
		}
		if link == "" {
			return nil, nil
		}
		u, err := resp.url.Parse(link)
		if err != nil {
			return nil, fmt.Errorf("http source: next page link %q: %w", link, err)
		}
		if u.Scheme != s.base.Scheme || u.Host != s.base.Host {
			return nil, fmt.Errorf("http source: next page link %q leaves %s://%s; the source does not send its credentials elsewhere: %w",
				u.Redacted(), s.base.Scheme, s.base.Host, connector.ErrPermanent)
		}
		if u.String() == resp.url.String() {
			return nil, nil // a next link to the page itself would loop
		}
		nx.URL = u.String()
	case p.PageParam != "":
		if n == 0 || (p.Limit > 0 && int64(n) < p.Limit) {
			return nil, nil
		}
		nx.Page = st.Page + 1
	case p.OffsetParam != "":
		if n == 0 || (p.Limit > 0 && int64(n) < p.Limit) {
			return nil, nil
		}
		nx.Offset = st.Offset + int64(n)
	case s.pageTok != nil:
		if doc == nil {
			return nil, nil
		}
		raw, ok, err := s.pageTok.first(doc)
		if err != nil || !ok {
			return nil, nil
		}
		tok := cursorValue(raw).text()
		if tok == "" || tok == st.Token {
			return nil, nil
		}
		nx.Token = tok
	default:
		return nil, nil
	}
	return nx, nil
}

// Ack has nothing to commit upstream: the checkpoint store holds the cursor.
func (s *Source) Ack(context.Context, []connector.Position) error { return nil }

// Close releases idle connections. It is idempotent.
func (s *Source) Close(context.Context) error {
	if s.client != nil {
		s.client.close()
	}
	return nil
}
