# Many pipelines in one process: start time, resident memory and idle CPU of 1 and 100 idle
# pipelines (file tail → WASM validate → file), and the time to wake them all with a burst. See
# internal/bench/operate.
.PHONY: bench-operate
BENCH_TARGETS += bench-operate

bench-operate:
	@echo "== operate: many pipelines in one process =="
	$(GO) run ./internal/bench/operate
