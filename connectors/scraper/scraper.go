// Package scraper provides the scraper source: it crawls web sites from start URLs, following
// links chosen by CSS selectors and URL patterns, and turns the elements an item selector matches
// into JSON records, politely (robots.txt, per-host delay and concurrency) and resumably.
package scraper

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/andybalholm/cascadia"
	"github.com/robfig/cron/v3"
	"github.com/sluicehq/sluice/sdk/go/connector"
	"github.com/temoto/robotstxt"
)

// DefaultUserAgent says who crawls and where to read about it.
const DefaultUserAgent = "sluice-scraper/1.0 (+https://github.com/sluicehq/sluice)"

var fieldSpecFields = []connector.Field{
	{Name: "selector", Type: connector.TypeString, Default: "", Description: "CSS selector inside the item element; empty takes the item element itself."},
	{Name: "attr", Type: connector.TypeString, Default: "", Description: "Attribute to take (href, data-id, content); empty takes the element's text, white space collapsed."},
	{Name: "type", Type: connector.TypeString, Default: "string", Enum: []string{"string", "int", "number", "bool", "date", "url"}, Description: "Conversion of the text: `number` and `int` take the first number out of text such as `€2,376/month` or `€2.376,00`; `url` resolves a relative link against the page; `date` parses with `layouts`."},
	{Name: "required", Type: connector.TypeBool, Default: true, Description: "An item without this field (selector matches nothing, attribute absent, empty text) goes to the dead letters."},
	{Name: "layouts", Type: connector.TypeList, Elem: &connector.Field{Type: connector.TypeString}, Default: []any{time.RFC3339, time.DateOnly, "02 Jan 2006", "Jan 2, 2006", "2 January 2006"}, Description: "Go time layouts tried in order for `type: date`."},
	{Name: "decimal", Type: connector.TypeString, Default: "", Enum: []string{"", ".", ","}, Description: "Force the decimal separator of numbers; empty tells it from the text (`2,376` is two thousand, `4,25` four and a quarter)."},
}

var spec = connector.Spec{
	Name:    "scraper",
	Summary: "Crawls web sites and turns the elements a CSS selector matches into JSON records.",
	Description: "The crawl starts at `start_urls` and follows the links that the `follow` CSS selectors match " +
		"(and `follow_patterns`, when given, allow), within `allowed_domains` (by default the start URLs' hosts, " +
		"subdomains included), up to `max_depth` links away and `max_pages` pages per round. On every page, each " +
		"element `item.selector` matches becomes one record: a JSON object of `item.fields`, taken by CSS selector " +
		"(text or attribute) and converted (`number` takes `2376` out of `€2,376/month`).\n\n" +
		"**Polite by default**: robots.txt is read per host and obeyed (including `Crawl-delay`); requests to one host " +
		"are `delay` apart and at most `per_host_concurrency` at once; the user agent says who crawls. 429, 5xx and " +
		"network errors are retried with backoff (`Retry-After` honoured, up to `max_retry_wait`). With `proxies`, " +
		"requests rotate over them and a failing proxy is left out for `proxy_cooldown`.\n\n" +
		"**Resumable**: the frontier, the visited set and what was fetched but not yet delivered are kept in the " +
		"component's data directory (under `--data-dir`). A restart resumes the crawl: pages already delivered are " +
		"not fetched again; pages fetched but not delivered are fetched again (at least once, never lost).\n\n" +
		"**Re-crawl**: with `schedule` (cron) or `interval`, a new round starts after the previous one finished; an " +
		"item is emitted again only when its content changed (items are told apart by `item.id`, or page URL and " +
		"position). Without either, the source ends when the crawl is done.\n\n" +
		"**Data quality**: an item missing a required field or failing a conversion goes to the dead letters with " +
		"the field and the reason, never as a half-empty record; so does a page that still fails after its " +
		"retries. Headers: `scraper_url` (the page) and `scraper_depth`.",
	Fields: []connector.Field{
		{Name: "start_urls", Type: connector.TypeList, Elem: &connector.Field{Type: connector.TypeString}, Required: true, Description: "Where the crawl starts.", Example: []any{"https://rentals.example.com/"}},
		{Name: "allowed_domains", Type: connector.TypeList, Elem: &connector.Field{Type: connector.TypeString}, Description: "Hosts (and their subdomains) the crawl may visit; default: the start URLs' hosts."},
		{Name: "follow", Type: connector.TypeList, Elem: &connector.Field{Type: connector.TypeString}, Description: "CSS selectors of the links (elements with href) to follow; none follows no links.", Example: []any{"a.listing-link", "a.next"}},
		{Name: "follow_patterns", Type: connector.TypeList, Elem: &connector.Field{Type: connector.TypeString}, Description: "Regular expressions; when given, a link is followed only if its URL matches one."},
		{Name: "deny_patterns", Type: connector.TypeList, Elem: &connector.Field{Type: connector.TypeString}, Description: "Regular expressions of URLs never to follow."},
		{Name: "max_depth", Type: connector.TypeInt, Default: int64(0), Description: "Most links away from a start URL; 0 for no limit."},
		{Name: "max_pages", Type: connector.TypeInt, Default: int64(0), Description: "Most pages fetched per round; 0 for no limit."},
		{Name: "item", Type: connector.TypeObject, Required: true, Description: "How items are found and taken apart.", Fields: []connector.Field{
			{Name: "selector", Type: connector.TypeString, Required: true, Description: "CSS selector of the item elements.", Example: "div.listing"},
			{Name: "id", Type: connector.TypeString, Default: "", Description: "Field that identifies an item across pages and rounds (record key; change detection). Default: the field named `id` when there is one, else the page URL and the item's position."},
			{Name: "fields", Type: connector.TypeMap, Required: true, Elem: &connector.Field{Type: connector.TypeObject, Fields: fieldSpecFields}, Description: "The record's fields, by name (written in name order).",
				Example: map[string]any{
					"id":    map[string]any{"attr": "data-id", "type": "int"},
					"title": map[string]any{"selector": "h1.title"},
					"rent":  map[string]any{"selector": "span.rent", "type": "number"},
				}},
		}},
		{Name: "delay", Type: connector.TypeDuration, Default: time.Second, Description: "Least time between the starts of two requests to one host."},
		{Name: "concurrency", Type: connector.TypeInt, Default: int64(4), Description: "Pages fetched at once, over all hosts."},
		{Name: "per_host_concurrency", Type: connector.TypeInt, Default: int64(1), Description: "Pages fetched at once from one host."},
		{Name: "user_agent", Type: connector.TypeString, Default: DefaultUserAgent, Description: "The User-Agent header, also the name robots.txt rules are matched against."},
		{Name: "robots", Type: connector.TypeBool, Default: true, Description: "Obey robots.txt. Turn off only for sites you own."},
		{Name: "headers", Type: connector.TypeMap, Elem: &connector.Field{Type: connector.TypeString}, Description: "Extra request headers."},
		{Name: "timeout", Type: connector.TypeDuration, Default: 30 * time.Second, Description: "Time limit of one request."},
		{Name: "retries", Type: connector.TypeInt, Default: int64(3), Description: "Retries of a page after 429, 5xx or a network error."},
		{Name: "max_retry_wait", Type: connector.TypeDuration, Default: time.Minute, Description: "Longest wait before a retry, whatever Retry-After says."},
		{Name: "max_page_bytes", Type: connector.TypeByteSize, Default: int64(10 << 20), Description: "Largest page read; a larger one fails."},
		{Name: "proxies", Type: connector.TypeList, Elem: &connector.Field{Type: connector.TypeString}, Description: "HTTP proxy URLs to rotate over; a password in a proxy URL is never logged.", Example: []any{"http://proxy-1:3128", "http://proxy-2:3128"}},
		{Name: "proxy_cooldown", Type: connector.TypeDuration, Default: time.Minute, Description: "How long a failing proxy is left out."},
		{Name: "schedule", Type: connector.TypeString, Default: "", Description: "Cron expression (5 fields, or a descriptor like @daily) of re-crawl rounds.", Example: "0 3 * * *"},
		{Name: "interval", Type: connector.TypeDuration, Default: time.Duration(0), Description: "Re-crawl this long after the previous round finished; 0 with no schedule crawls once."},
	},
}

// Component returns the scraper source, for a catalog.
func Component() connector.Component {
	return connector.SourceComponent(spec, func(cfg connector.Config, env connector.Env) (connector.Source, error) {
		return New(cfg, env)
	})
}

type fieldConfig struct {
	Selector string   `config:"selector"`
	Attr     string   `config:"attr"`
	Type     string   `config:"type"`
	Required bool     `config:"required"`
	Layouts  []string `config:"layouts"`
	Decimal  string   `config:"decimal"`
}

type config struct {
	StartURLs      []string `config:"start_urls"`
	AllowedDomains []string `config:"allowed_domains"`
	Follow         []string `config:"follow"`
	FollowPatterns []string `config:"follow_patterns"`
	DenyPatterns   []string `config:"deny_patterns"`
	MaxDepth       int      `config:"max_depth"`
	MaxPages       int      `config:"max_pages"`
	Item           struct {
		Selector string                 `config:"selector"`
		ID       string                 `config:"id"`
		Fields   map[string]fieldConfig `config:"fields"`
	} `config:"item"`
	Delay         time.Duration     `config:"delay"`
	Concurrency   int               `config:"concurrency"`
	PerHost       int               `config:"per_host_concurrency"`
	UserAgent     string            `config:"user_agent"`
	Robots        bool              `config:"robots"`
	Headers       map[string]string `config:"headers"`
	Timeout       time.Duration     `config:"timeout"`
	Retries       int               `config:"retries"`
	MaxRetryWait  time.Duration     `config:"max_retry_wait"`
	MaxPageBytes  int64             `config:"max_page_bytes"`
	Proxies       []string          `config:"proxies"`
	ProxyCooldown time.Duration     `config:"proxy_cooldown"`
	Schedule      string            `config:"schedule"`
	Interval      time.Duration     `config:"interval"`
}

// New builds a scraper source. It does no I/O.
func New(cfg connector.Config, env connector.Env) (*Source, error) {
	var c config
	if err := spec.Decode(cfg, &c); err != nil {
		return nil, err
	}
	s := &Source{env: env, log: env.Logger, cfg: c}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if len(c.StartURLs) == 0 {
		return nil, &connector.ConfigError{Field: "start_urls", Msg: "needs at least one URL"}
	}
	for _, raw := range c.StartURLs {
		u, err := parsePageURL(raw)
		if err != nil {
			return nil, &connector.ConfigError{Field: "start_urls", Msg: err.Error()}
		}
		s.start = append(s.start, u)
	}
	s.domains = c.AllowedDomains
	if len(s.domains) == 0 {
		for _, u := range s.start {
			if !slices.Contains(s.domains, u.Hostname()) {
				s.domains = append(s.domains, u.Hostname())
			}
		}
	}
	for i, d := range s.domains {
		s.domains[i] = strings.ToLower(strings.TrimPrefix(d, "."))
	}
	for _, sel := range c.Follow {
		m, err := cascadia.Compile(sel)
		if err != nil {
			return nil, &connector.ConfigError{Field: "follow", Msg: fmt.Sprintf("CSS selector %q: %v", sel, err)}
		}
		s.follow = append(s.follow, m)
	}
	var err error
	if s.allow, err = compileAll("follow_patterns", c.FollowPatterns); err != nil {
		return nil, err
	}
	if s.deny, err = compileAll("deny_patterns", c.DenyPatterns); err != nil {
		return nil, err
	}
	if s.item, err = compileItem(c); err != nil {
		return nil, err
	}
	for _, chk := range []struct {
		field string
		ok    bool
		msg   string
	}{
		{"max_depth", c.MaxDepth >= 0, "must not be negative"},
		{"max_pages", c.MaxPages >= 0, "must not be negative"},
		{"concurrency", c.Concurrency >= 1, "must be at least 1"},
		{"per_host_concurrency", c.PerHost >= 1, "must be at least 1"},
		{"delay", c.Delay >= 0, "must not be negative"},
		{"timeout", c.Timeout > 0, "must be greater than 0"},
		{"retries", c.Retries >= 0, "must not be negative"},
		{"max_page_bytes", c.MaxPageBytes >= 1, "must be at least 1"},
		{"interval", c.Interval >= 0, "must not be negative"},
		{"user_agent", strings.TrimSpace(c.UserAgent) != "", "must not be empty"},
	} {
		if !chk.ok {
			return nil, &connector.ConfigError{Field: chk.field, Msg: chk.msg}
		}
	}
	if c.Schedule != "" {
		if c.Interval > 0 {
			return nil, &connector.ConfigError{Field: "interval", Msg: "set either schedule or interval, not both"}
		}
		if s.schedule, err = cron.ParseStandard(c.Schedule); err != nil {
			return nil, &connector.ConfigError{Field: "schedule", Msg: fmt.Sprintf("cron expression %q: %v", c.Schedule, err),
				Hint: `five fields (minute hour day-of-month month day-of-week), like "0 3 * * *", or @hourly, @daily, @every 6h`}
		}
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = max(c.PerHost, 2)
	var proxies *proxyPool
	if len(c.Proxies) > 0 {
		proxies = &proxyPool{cooldown: c.ProxyCooldown}
		for _, raw := range c.Proxies {
			u, err := url.Parse(raw)
			if err != nil || u.Host == "" {
				return nil, &connector.ConfigError{Field: "proxies", Msg: "a proxy is not a URL like http://host:port"}
			}
			proxies.list = append(proxies.list, &proxyState{url: u})
		}
		transport.Proxy = proxyFor
	}
	s.fetch = &fetcher{
		client:       &http.Client{Transport: transport, Timeout: c.Timeout},
		userAgent:    c.UserAgent,
		headers:      c.Headers,
		delay:        c.Delay,
		perHost:      c.PerHost,
		retries:      c.Retries,
		maxRetryWait: c.MaxRetryWait,
		maxBody:      c.MaxPageBytes,
		robots:       c.Robots,
		log:          s.log,
		proxies:      proxies,
		hosts:        map[string]*hostGate{},
		rules:        map[string]*robotstxt.Group{},
	}
	return s, nil
}

func compileAll(field string, patterns []string) ([]*regexp.Regexp, error) {
	var out []*regexp.Regexp
	for _, p := range patterns {
		re, err := regexp.Compile(p)
		if err != nil {
			return nil, &connector.ConfigError{Field: field, Msg: fmt.Sprintf("regular expression %q: %v", p, err)}
		}
		out = append(out, re)
	}
	return out, nil
}

func compileItem(c config) (*itemSpec, error) {
	sel, err := cascadia.Compile(c.Item.Selector)
	if err != nil {
		return nil, &connector.ConfigError{Field: "item.selector", Msg: fmt.Sprintf("CSS selector %q: %v", c.Item.Selector, err)}
	}
	it := &itemSpec{sel: sel, id: c.Item.ID}
	if len(c.Item.Fields) == 0 {
		return nil, &connector.ConfigError{Field: "item.fields", Msg: "needs at least one field"}
	}
	names := make([]string, 0, len(c.Item.Fields))
	for n := range c.Item.Fields {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fc := c.Item.Fields[n]
		f := fieldSpec{name: n, attr: fc.Attr, typ: fc.Type, layouts: fc.Layouts, required: fc.Required}
		if fc.Selector != "" {
			m, err := cascadia.Compile(fc.Selector)
			if err != nil {
				return nil, &connector.ConfigError{Field: "item.fields." + n + ".selector", Msg: fmt.Sprintf("CSS selector %q: %v", fc.Selector, err)}
			}
			f.sel = m
		}
		if fc.Decimal != "" {
			f.decimal = fc.Decimal[0]
		}
		it.fields = append(it.fields, f)
	}
	switch {
	case it.id != "":
		if _, ok := c.Item.Fields[it.id]; !ok {
			return nil, &connector.ConfigError{Field: "item.id", Msg: fmt.Sprintf("%q is not one of the item's fields (%s)", it.id, strings.Join(names, ", "))}
		}
	default:
		if _, ok := c.Item.Fields["id"]; ok {
			it.id = "id"
		}
	}
	return it, nil
}

// parsePageURL checks an absolute http(s) URL and normalizes it (no fragment).
func parsePageURL(raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return nil, fmt.Errorf("%q is not a URL: %v", raw, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%q is not an absolute http:// or https:// URL", raw)
	}
	return normalize(u), nil
}

// normalize drops the fragment and the default port and lowercases scheme and host, so one page
// has one key in the visited set.
func normalize(u *url.URL) *url.URL {
	n := *u
	n.Fragment, n.RawFragment = "", ""
	n.Scheme = strings.ToLower(n.Scheme)
	host := strings.ToLower(n.Host)
	if (n.Scheme == "http" && strings.HasSuffix(host, ":80")) || (n.Scheme == "https" && strings.HasSuffix(host, ":443")) {
		host = host[:strings.LastIndexByte(host, ':')]
	}
	n.Host = host
	if n.Path == "" {
		n.Path = "/"
	}
	return &n
}

func (s *Source) inDomains(u *url.URL) bool {
	h := strings.ToLower(u.Hostname())
	for _, d := range s.domains {
		if h == d || strings.HasSuffix(h, "."+d) {
			return true
		}
	}
	return false
}

// followable says whether a link may be crawled.
func (s *Source) followable(u *url.URL) bool {
	if (u.Scheme != "http" && u.Scheme != "https") || !s.inDomains(u) {
		return false
	}
	str := u.String()
	for _, re := range s.deny {
		if re.MatchString(str) {
			return false
		}
	}
	if len(s.allow) == 0 {
		return true
	}
	for _, re := range s.allow {
		if re.MatchString(str) {
			return true
		}
	}
	return false
}

// nextRound is when the next round starts after one finished at done.
func (s *Source) nextRound(done time.Time) (time.Time, bool) {
	switch {
	case s.schedule != nil:
		return s.schedule.Next(done), true
	case s.cfg.Interval > 0:
		return done.Add(s.cfg.Interval), true
	}
	return time.Time{}, false
}
