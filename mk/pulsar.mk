# Pulsar benchmarks: Pulsar → drop, Pulsar → validate_price (the C module) → drop and file → Pulsar
# sink, beside plain pulsar-client-go consumer and producer programs (the ceiling), 100-byte
# records, each in a child process, medians of alternating rounds. Uses the Pulsar of
# `make services`; says so and passes when it is missing.
.PHONY: bench-pulsar
BENCH_TARGETS += bench-pulsar

bench-pulsar:
	@echo "== pulsar =="
	$(GO) run ./internal/bench/pulsar
