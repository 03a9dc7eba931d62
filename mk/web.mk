# Web sources (connectors/http, connectors/webhook): benchmarks beside plain programs doing the same
# work, in child processes. See internal/bench/web for what each scenario measures.
.PHONY: bench-web
BENCH_TARGETS += bench-web

bench-web:
	@echo "== web sources =="
	$(GO) run ./internal/bench/web
