package scraper

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/sluicehq/sluice/sdk/go/connector"
	"github.com/sluicehq/sluice/sdk/go/conntest"
)

// BenchmarkScrape crawls a local site of 1,020 pages at zero delay with the scraper source, and
// with a plain program (net/http + goquery, the same concurrency, no state, no politeness) as
// the ceiling. Both report pages/s, the CPU time per page and p50/p99 of a page's fetch-to-handout
// time; peak_rss_MiB is the process's high-water mark so far.
func BenchmarkScrape(b *testing.B) {
	site := newSite(&testing.T{}, 20, 50)
	defer site.srv.Close()
	cfg := site.config()
	cfg["concurrency"], cfg["per_host_concurrency"] = 4, 4
	pages := 20 + 20*50
	b.Run("plain", func(b *testing.B) {
		for b.Loop() {
			measure(b, pages, func(lat *[]time.Duration) { plainCrawl(site.srv.URL+"/listings?page=1", 4, lat) })
		}
	})
	b.Run("sluice", func(b *testing.B) {
		for b.Loop() {
			measure(b, pages, func(lat *[]time.Duration) {
				s, err := New(conntest.Config(b, spec, cfg), connector.Env{DataDir: b.TempDir()})
				if err != nil {
					b.Fatal(err)
				}
				ctx := context.Background()
				if err := s.Open(ctx, nil); err != nil {
					b.Fatal(err)
				}
				defer s.Close(ctx)
				for {
					recs, err := s.Read(ctx)
					if err == io.EOF {
						return
					}
					if err != nil {
						b.Fatal(err)
					}
					now := time.Now()
					for _, r := range recs {
						*lat = append(*lat, now.Sub(r.Time))
					}
					s.Ack(ctx, []connector.Position{recs[len(recs)-1].Position})
				}
			})
		}
	})
}

func measure(b *testing.B, pages int, run func(lat *[]time.Duration)) {
	var ru0, ru1 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	var lat []time.Duration
	start := time.Now()
	run(&lat)
	el := time.Since(start)
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	cpu := time.Duration(ru1.Utime.Nano()+ru1.Stime.Nano()-ru0.Utime.Nano()-ru0.Stime.Nano()) * time.Nanosecond
	b.ReportMetric(float64(pages)/el.Seconds(), "pages/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(pages), "cpu_us/page")
	if len(lat) > 0 {
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50_ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99_ms")
	}
	b.ReportMetric(peakRSSMiB(), "peak_rss_MiB")
}

func peakRSSMiB() float64 {
	data, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return float64(kb) / 1024
		}
	}
	return 0
}

// plainCrawl is the ceiling: breadth-first, n fetchers, links by the same selectors, items taken
// with the same selectors, nothing kept.
func plainCrawl(start string, n int, lat *[]time.Duration) {
	var mu sync.Mutex
	seen := map[string]bool{start: true}
	queue := []string{start}
	busy := 0
	cond := sync.NewCond(&mu)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				for len(queue) == 0 && busy > 0 {
					cond.Wait()
				}
				if len(queue) == 0 {
					mu.Unlock()
					cond.Broadcast()
					return
				}
				u := queue[0]
				queue = queue[1:]
				busy++
				mu.Unlock()
				t0 := time.Now()
				resp, err := http.Get(u)
				var links []string
				if err == nil {
					body, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if doc, err := goquery.NewDocumentFromReader(bytes.NewReader(body)); err == nil {
						base, _ := url.Parse(u)
						doc.Find("a.listing-link, a.next").Each(func(_ int, a *goquery.Selection) {
							href, _ := a.Attr("href")
							if l, err := base.Parse(href); err == nil && l.Host == base.Host && !strings.HasPrefix(l.Path, "/private/") {
								l.Fragment = ""
								links = append(links, l.String())
							}
						})
						doc.Find("div.listing").Each(func(_ int, d *goquery.Selection) {
							_, _ = d.Attr("data-id")
							_ = d.Find("h1.title").Text()
							_ = d.Find("span.rent").Text()
						})
					}
				}
				mu.Lock()
				*lat = append(*lat, time.Since(t0))
				for _, l := range links {
					if !seen[l] {
						seen[l] = true
						queue = append(queue, l)
					}
				}
				busy--
				mu.Unlock()
				cond.Broadcast()
			}
		}()
	}
	wg.Wait()
}
