# Many pipelines in one process: start time, resident memory and idle CPU of 1 and 100 idle
# pipelines (file tail → WASM validate → file), and the time to wake them all with a burst. See
# internal/bench/operate.
.PHONY: bench-operate
BENCH_TARGETS += bench-operate

bench-operate:
	@echo "== operate: many pipelines in one process =="
	$(GO) run ./internal/bench/operate

# The cost of a reload among 100 running pipelines: from a manifest's write until the edited
# pipeline runs again, and that no other pipeline restarted; 2 pipelines first as the baseline.
# See internal/bench/reload.
.PHONY: bench-reload
BENCH_TARGETS += bench-reload

bench-reload:
	@echo "== operate: reloading one manifest among 100 pipelines =="
	$(GO) run ./internal/bench/reload -pipelines 2 -rounds 5
	$(GO) run ./internal/bench/reload -pipelines 100
