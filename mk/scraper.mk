# Scraper source: pages/s against a local site at zero delay, beside a plain net/http + goquery
# crawler in the same run.
.PHONY: bench-scraper
BENCH_TARGETS += bench-scraper

bench-scraper:
	@echo "== scraper: pages/s, local site of 1,020 pages, zero delay (plain = net/http + goquery, no state) =="
	$(GO) test -run '^$$' -bench 'BenchmarkScrape' -benchtime 3x -count 1 ./connectors/scraper/
