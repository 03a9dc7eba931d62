package scraper

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/sdk/go/connector"
	"github.com/sluicehq/sluice/sdk/go/conntest"
)

func open(t *testing.T, values map[string]any, dataDir string) *Source {
	t.Helper()
	s, err := New(conntest.Config(t, spec, values), connector.Env{DataDir: dataDir})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Open(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	return s
}

func header(r connector.Record, k string) string {
	for _, h := range r.Headers {
		if h.Key == k {
			return string(h.Value)
		}
	}
	return ""
}

// drain reads and acks until EOF (or until stop says so), returning the items by key and the
// dead-letter records' reasons.
func drain(t *testing.T, s *Source, stop func(items map[string]string) bool) (map[string]string, []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	items := map[string]string{}
	var dead []string
	for stop == nil || !stop(items) {
		recs, err := s.Read(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		for _, r := range recs {
			if reason := header(r, connector.HeaderMalformed); reason != "" {
				dead = append(dead, reason)
				continue
			}
			if prev, dup := items[string(r.Key)]; dup {
				t.Fatalf("item %s emitted twice (%s, then %s)", r.Key, prev, r.Value)
			}
			items[string(r.Key)] = string(r.Value)
		}
		if err := s.Ack(ctx, []connector.Position{recs[len(recs)-1].Position}); err != nil {
			t.Fatal(err)
		}
	}
	return items, dead
}

func TestCrawlYieldsExactlyTheExpectedItems(t *testing.T) {
	site := newSite(t, 30, 10) // 330 pages
	s := open(t, site.config(), t.TempDir())
	defer s.Close(context.Background())
	items, dead := drain(t, s, nil)
	want := site.expected()
	for k, v := range want {
		if items[k] != v {
			t.Errorf("item %s = %s; want %s", k, items[k], v)
		}
	}
	if len(items) != len(want) {
		t.Errorf("%d items, want %d", len(items), len(want))
	}
	if len(dead) != 2 || !strings.Contains(strings.Join(dead, "\n"), "field rent: required, but its selector matched nothing") ||
		!strings.Contains(strings.Join(dead, "\n"), "/listing/13: HTTP 500") {
		t.Errorf("dead letters: %q", dead)
	}
	if n := site.hitsOf("/private/secret"); n != 0 {
		t.Errorf("a page robots.txt disallows was fetched %d times", n)
	}
	if n := site.hitsOf("/listing/1"); n != 1 {
		t.Errorf("a page linked three times was fetched %d times", n)
	}
	if n := site.hitsOf("/robots.txt"); n != 1 {
		t.Errorf("robots.txt fetched %d times in one round", n)
	}
	if n := site.hitsOf("/listing/13"); n != 4 {
		t.Errorf("a dead page was fetched %d times; want 1 + 3 retries", n)
	}
}

// TestRestartResumesWithoutRefetching stops the crawl halfway (some pages acked, some handed out
// but not acked) and reopens it: every item arrives, and acked pages are not fetched again.
func TestRestartResumesWithoutRefetching(t *testing.T) {
	site := newSite(t, 10, 10)
	dir := t.TempDir()
	s := open(t, site.config(), dir)
	first, _ := drain(t, s, func(items map[string]string) bool { return len(items) >= 40 })
	// Hand out more without acknowledging them: these pages must be fetched again.
	ctx := context.Background()
	unacked, err := s.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	hitsBefore := map[string]int{}
	site.mu.Lock()
	for k, v := range site.hits {
		hitsBefore[k] = v
	}
	site.mu.Unlock()
	acked := map[string]bool{}
	for k := range first {
		acked[k] = true
	}
	s = open(t, site.config(), dir)
	defer s.Close(ctx)
	rest, _ := drain(t, s, nil)
	for k, v := range rest {
		if acked[k] {
			t.Errorf("item %s was acked before the restart and came again: %s", k, v)
		}
		first[k] = v
	}
	want := site.expected()
	if len(first) != len(want) {
		t.Fatalf("%d items after the restart, want %d", len(first), len(want))
	}
	for _, r := range unacked {
		if k := string(r.Key); k != "" && header(r, connector.HeaderMalformed) == "" && rest[k] == "" {
			t.Errorf("item %s was handed out but not acked before the restart, and did not come again", k)
		}
	}
	for k := range acked {
		uri := "/listing/" + k
		if n := site.hitsOf(uri); n != hitsBefore[uri] {
			t.Errorf("listing %s, acked before the restart, was fetched again after it (%d fetches, %d before)", k, n, hitsBefore[uri])
		}
	}
}

// TestRecrawlEmitsOnlyChangedItems runs two rounds; between them one listing's rent changes.
func TestRecrawlEmitsOnlyChangedItems(t *testing.T) {
	site := newSite(t, 3, 5)
	cfg := site.config()
	cfg["interval"] = 300 * time.Millisecond
	s := open(t, cfg, t.TempDir())
	defer s.Close(context.Background())
	want := site.expected()
	first, _ := drain(t, s, func(items map[string]string) bool { return len(items) >= len(want) })
	if len(first) != len(want) {
		t.Fatalf("round 1: %d items", len(first))
	}
	site.setRent(7, 5555)
	second, dead := drain(t, s, func(items map[string]string) bool { return len(items) >= 1 })
	if len(second) != 1 || !strings.Contains(second["7"], `"rent":5555`) {
		t.Fatalf("round 2 emitted %v; want only listing 7 with its new rent", second)
	}
	// The dead page fails again each round and says so again.
	_ = dead
	s.st.mu.Lock()
	round := s.st.mem.round
	s.st.mu.Unlock()
	if round != 2 {
		t.Fatalf("round %d", round)
	}
}

func TestConfigErrors(t *testing.T) {
	base := func() map[string]any {
		return map[string]any{"start_urls": []any{"https://x.example/"}, "item": map[string]any{"selector": "div", "fields": map[string]any{"a": map[string]any{}}}}
	}
	cases := []struct {
		mod   func(m map[string]any)
		field string
	}{
		{func(m map[string]any) { m["start_urls"] = []any{"ftp://x/"} }, "start_urls"},
		{func(m map[string]any) { m["start_urls"] = []any{"/relative"} }, "start_urls"},
		{func(m map[string]any) { m["follow"] = []any{"a[href"} }, "follow"},
		{func(m map[string]any) { m["item"].(map[string]any)["selector"] = "div >" }, "item.selector"},
		{func(m map[string]any) {
			m["item"].(map[string]any)["fields"] = map[string]any{"a": map[string]any{"selector": "::nope"}}
		}, "item.fields.a.selector"},
		{func(m map[string]any) { m["item"].(map[string]any)["id"] = "missing" }, "item.id"},
		{func(m map[string]any) { m["schedule"] = "61 * * * *" }, "schedule"},
		{func(m map[string]any) { m["schedule"] = "@daily"; m["interval"] = time.Hour }, "interval"},
		{func(m map[string]any) { m["follow_patterns"] = []any{"("} }, "follow_patterns"},
		{func(m map[string]any) { m["concurrency"] = 0 }, "concurrency"},
		{func(m map[string]any) { m["proxies"] = []any{"::"} }, "proxies"},
	}
	for i, c := range cases {
		v := base()
		c.mod(v)
		_, err := New(conntest.Config(t, spec, v), connector.Env{})
		var ce *connector.ConfigError
		if !errors.As(err, &ce) || ce.Field != c.field {
			t.Errorf("case %d: %v; want a ConfigError on %s", i, err, c.field)
		}
	}
}
