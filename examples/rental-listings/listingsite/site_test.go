package main

import (
	"strings"
	"testing"
)

// Every rendered item is in the truth: a valid listing, a duplicate of one, or an item to reject.
func TestTruthCountsWhatIsRendered(t *testing.T) {
	cfg := siteConfig{seed: 3, pages: 40, perPage: 8, dup: 0.1, broken: 0.1, low: 0.05, degraded: 0.1, errorPages: 2, flakyEvery: 5}
	s := generate(cfg, "http://site")
	tr := s.truth
	articles := 0
	for p := 1; p <= cfg.pages; p++ {
		articles += strings.Count(s.render(cfg, p), `<article class="listing"`)
	}
	if articles != tr.ItemsServed || tr.ItemsServed != cfg.pages*cfg.perPage {
		t.Fatalf("%d articles rendered, truth says %d served", articles, tr.ItemsServed)
	}
	if got := len(tr.Listings) + tr.Duplicates + len(tr.Rejected); got != tr.ItemsServed {
		t.Fatalf("%d listings + %d duplicates + %d rejected = %d, want %d", len(tr.Listings), tr.Duplicates, len(tr.Rejected), got, tr.ItemsServed)
	}
	if tr.Duplicates == 0 || len(tr.Rejected) == 0 {
		t.Fatalf("no duplicates or rejects: %+v", tr)
	}
	again := generate(cfg, "http://site")
	if again.render(cfg, 7) != s.render(cfg, 7) {
		t.Fatal("the same seed served another page")
	}
}
