# Iceberg sink benchmarks: the sink's Write beside iceberg-go used directly (one Append + Commit per
# batch of the same size), each in a child process, then the JSON-to-Arrow converter beside
# encoding/json into maps.
.PHONY: bench-iceberg
BENCH_TARGETS += bench-iceberg

bench-iceberg:
	@echo "== iceberg =="
	$(GO) run ./internal/bench/iceberg
	$(GO) test -run '^$$' -bench Convert -benchtime 3x ./connectors/iceberg/
