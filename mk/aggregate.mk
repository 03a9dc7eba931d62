# Aggregate benchmarks: the stats module on 1-minute tumbling windows with 10, 10,000 and 1,000,000
# distinct keys beside a plain Go program doing the same aggregation in memory, in child processes
# (records/s, latency, CPU time, peak memory, the state file's size, and a check that both emit the
# same windows); the stats module's Go SDK build (stats-go.wasm) at 10,000 keys, and stats.wasm
# at 10,000 keys in trusted mode (no metering: the guest cannot be stopped at its deadline); then the
# operator alone (BenchmarkOperator: a Go guest that only counts, stats.wasm and stats-go.wasm).
# AGG_RECORDS sets the input per scenario; AGG_BENCH_RECORDS the operator's.
.PHONY: bench-aggregate
BENCH_TARGETS += bench-aggregate

AGG_RECORDS       ?= 2000000
AGG_BENCH_RECORDS ?= 1000000

bench-aggregate:
	@echo "== aggregate =="
	$(GO) run ./internal/bench/aggregate -records $(AGG_RECORDS)
	$(GO) run ./internal/bench/aggregate -records $(AGG_RECORDS) -keys 10000 -module transforms/stats/stats-go.wasm
	$(GO) run ./internal/bench/aggregate -records $(AGG_RECORDS) -keys 10000 -mode trusted
	$(GO) test -run '^$$' -bench Operator -benchtime $(AGG_BENCH_RECORDS)x ./internal/aggregate/
