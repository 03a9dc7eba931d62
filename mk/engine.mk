# Engine benchmarks: generate → drop and file → file beside a direct program, in child processes.
.PHONY: bench-engine
BENCH_TARGETS += bench-engine

bench-engine:
	@echo "== engine =="
	$(GO) run ./internal/bench/engine
	$(GO) test -run '^$$' -bench . -benchtime 2x ./internal/engine/
