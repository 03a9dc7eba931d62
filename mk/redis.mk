# Redis sink benchmark: generate → redis sink beside a plain pipelined go-redis program (stream and
# hash modes, medians of 3 alternating rounds, and a paced run for latency), each in a child
# process, against a redis-server of its own started for the run.
.PHONY: bench-redis
BENCH_TARGETS += bench-redis

bench-redis:
	@echo "== redis =="
	$(GO) run ./internal/bench/redis
