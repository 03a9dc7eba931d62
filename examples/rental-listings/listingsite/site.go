package main

import (
	"fmt"
	"html"
	"math/rand"
	"strings"

	"github.com/sluicehq/sluice/examples/rental-listings/truth"
)

// siteConfig is what the site generates.
type siteConfig struct {
	seed       int64
	pages      int
	perPage    int
	dup        float64 // share of items repeating a listing of an earlier page
	broken     float64 // share of items broken (no id, no price, a price on request or too low)
	low        float64 // share of items of low quality (short title, no city, no rooms)
	degraded   float64 // share of valid listings without an area (kept, quality 0.9)
	errorPages int     // pages linked from the listings that always answer 500
	flakyEvery int     // every n-th page answers 503 to its first request; 0 for none
}

// item is one rendered listing element.
type item struct {
	id, title, price, city, rooms, area string // "" leaves the element out
	noID                                bool
	name, email, phone                  string
}

// site is the generated content: pages of items and the truth.
type site struct {
	pages [][]item
	truth truth.Truth
}

var (
	cities     = []string{"Lyon", "Paris", "Lille", "Nantes", "Bordeaux", "Toulouse", "Nice", "Rennes", "Grenoble", "Strasbourg"}
	adjectives = []string{"Bright", "Quiet", "Spacious", "Renovated", "Cosy", "Modern", "Sunny", "Charming", "Furnished", "Elegant"}
	kinds      = []string{"flat", "studio", "loft", "house", "duplex", "apartment"}
	features   = []string{"near the park", "with a balcony", "in the old town", "close to the station", "with a garden", "on the top floor", "by the river", "with parking"}
	firstNames = []string{"Anna", "Louis", "Chloé", "Hugo", "Emma", "Jules", "Léa", "Noah", "Inès", "Gabriel", "Sofia", "Arthur"}
	lastNames  = []string{"Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy", "Moreau", "Simon", "Laurent"}
)

func pageURL(base string, p int) string { return fmt.Sprintf("%s/listings?page=%d", base, p) }

// generate draws the whole site from the seed. base is the site's URL (the truth names pages).
func generate(cfg siteConfig, base string) *site {
	rng := rand.New(rand.NewSource(cfg.seed))
	s := &site{pages: make([][]item, cfg.pages)}
	t := &s.truth
	t.Pages = cfg.pages
	var valid []item
	next := 0
	landlord := func() (string, string, string) {
		next++
		f, l := firstNames[rng.Intn(len(firstNames))], lastNames[rng.Intn(len(lastNames))]
		name := f + " " + l
		email := fmt.Sprintf("%s.%s.%d@mail.example", strings.ToLower(strings.ReplaceAll(f, "é", "e")), strings.ToLower(l), next)
		phone := fmt.Sprintf("+33 6 %02d %02d %02d %02d", next/1000000%100, next/10000%100, next/100%100, next%100)
		t.Personal = append(t.Personal, name, email, phone)
		return name, email, phone
	}
	for p := range cfg.pages {
		page := pageURL(base, p+1)
		for range cfg.perPage {
			t.ItemsServed++
			x := rng.Float64()
			if x < cfg.dup && len(valid) > 0 {
				s.pages[p] = append(s.pages[p], valid[rng.Intn(len(valid))])
				t.Duplicates++
				continue
			}
			next := len(t.Listings) + len(t.Rejected) + 1
			it := item{
				id:    fmt.Sprintf("L%05d", next),
				title: fmt.Sprintf("%s %s %s (ref %d)", adjectives[rng.Intn(len(adjectives))], kinds[rng.Intn(len(kinds))], features[rng.Intn(len(features))], next),
				city:  cities[rng.Intn(len(cities))],
			}
			price := 400 + rng.Intn(80)*25
			rooms := 1 + rng.Intn(6)
			area := 15 + rooms*12 + rng.Intn(30)
			it.price = fmt.Sprintf("€%s/month", thousands(price))
			it.rooms = fmt.Sprintf("%d room%s", rooms, map[bool]string{true: "s"}[rooms > 1])
			it.area = fmt.Sprintf("%d m²", area)
			it.name, it.email, it.phone = landlord()
			x -= cfg.dup
			switch {
			case x < cfg.broken:
				rej := truth.Rejected{ID: it.id, Title: it.title, Page: page}
				switch rng.Intn(4) {
				case 0:
					it.noID, rej.ID, rej.Kind, rej.Reason = true, "", "no_id", "listing_id: missing (required)"
				case 1:
					it.price, rej.Kind, rej.Reason = "", "no_price", "price: missing (required)"
				case 2:
					it.price, rej.Kind, rej.Reason = "Price on request", "price_on_request", "price: no number in the text (required)"
				default:
					it.price, rej.Kind, rej.Reason = fmt.Sprintf("€%d/month", 5+rng.Intn(90)), "price_too_low", "price: below 100 (required)"
				}
				t.Rejected = append(t.Rejected, rej)
			case x < cfg.broken+cfg.low:
				// title 2 + city 1 + rooms 1 of 10 fail: quality 0.6, below 0.8
				it.title = fmt.Sprintf("Rm %d", next)
				it.city, it.rooms = "", ""
				t.Rejected = append(t.Rejected, truth.Rejected{ID: it.id, Title: it.title, Kind: "low_quality",
					Reason: "quality 0.6 below 0.8: title: shorter than 10 characters; city: missing; rooms: missing", Page: page})
			default:
				l := truth.Listing{ID: it.id, Title: it.title, Price: float64(price), City: it.city, Rooms: &rooms, Quality: 1, Page: page}
				if rng.Float64() < cfg.degraded {
					it.area = ""
					l.Quality = 0.9
				} else {
					a := float64(area)
					l.Area = &a
				}
				t.Listings = append(t.Listings, l)
				valid = append(valid, it)
			}
			s.pages[p] = append(s.pages[p], it)
		}
	}
	linked := map[int]bool{} // the promoted pages render links to
	for p := 1; cfg.errorPages > 0 && p <= cfg.pages; p++ {
		if n := promoted(cfg, p); n > 0 && !linked[n] {
			linked[n] = true
			t.ErrorPages = append(t.ErrorPages, fmt.Sprintf("%s/promoted/%d", base, n))
		}
	}
	return s
}

// thousands writes n with a comma between the thousands: 1,250.
func thousands(n int) string {
	s := fmt.Sprint(n)
	if len(s) <= 3 {
		return s
	}
	return s[:len(s)-3] + "," + s[len(s)-3:]
}

// render writes listing page p (1-based).
func (s *site) render(cfg siteConfig, p int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Rentals, page %d</title></head><body>\n<h1>Flats to rent</h1>\n<main>\n", p)
	for _, it := range s.pages[p-1] {
		if it.noID {
			b.WriteString(`<article class="listing">`)
		} else {
			fmt.Fprintf(&b, `<article class="listing" data-id="%s">`, it.id)
		}
		fmt.Fprintf(&b, "\n  <h2 class=\"title\">%s</h2>\n", html.EscapeString(it.title))
		elem := func(class, text string) {
			if text != "" {
				fmt.Fprintf(&b, "  <span class=\"%s\">%s</span>\n", class, html.EscapeString(text))
			}
		}
		elem("price", it.price)
		if it.city == "" {
			b.WriteString("  <span class=\"city\"></span>\n") // present but empty
		} else {
			elem("city", it.city)
		}
		elem("rooms", it.rooms)
		elem("area", it.area)
		fmt.Fprintf(&b, "  <div class=\"landlord\"><span class=\"name\">%s</span> <a class=\"email\" href=\"mailto:%s\">%s</a> <span class=\"phone\">%s</span></div>\n</article>\n",
			html.EscapeString(it.name), it.email, it.email, it.phone)
	}
	b.WriteString("</main>\n<nav class=\"pagination\">\n")
	if p > 1 {
		fmt.Fprintf(&b, "  <a class=\"prev\" href=\"/listings?page=%d\">« previous</a>\n", p-1)
	}
	for q := max(1, p-2); q <= min(cfg.pages, p+2); q++ {
		if q != p {
			fmt.Fprintf(&b, "  <a href=\"/listings?page=%d\">%d</a>\n", q, q)
		}
	}
	if p < cfg.pages {
		fmt.Fprintf(&b, "  <a class=\"next\" href=\"/listings?page=%d\">next »</a>\n", p+1)
	}
	b.WriteString("</nav>\n")
	// Every so often a promoted link whose page always fails.
	if n := promoted(cfg, p); n > 0 {
		fmt.Fprintf(&b, "<aside><a class=\"promo\" href=\"/promoted/%d\">Promoted</a></aside>\n", n)
	}
	b.WriteString("</body></html>\n")
	return b.String()
}

// promoted is the promoted page that page p links to (every tenth page links to one), 0 for none.
func promoted(cfg siteConfig, p int) int {
	if cfg.errorPages == 0 || p%10 != 1 {
		return 0
	}
	return (p/10)%cfg.errorPages + 1
}
