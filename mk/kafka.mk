# Kafka benchmarks: Kafka → drop, Kafka → validate_price (C) → drop, file → Kafka and an end-to-end
# latency run at a fixed rate, beside plain franz-go programs, each in a child process. Uses the
# broker of `make services`; says so and passes when it is missing.
.PHONY: bench-kafka
BENCH_TARGETS += bench-kafka

bench-kafka:
	@echo "== kafka =="
	$(GO) run ./internal/bench/kafka
