# Postgres sink benchmark: rows/s of the sink beside plain pgx programs (COPY of decoded rows, and
# JSON decoding + COPY), upsert, exactly-once WriteTx and generate → engine → postgres, each in a
# child process. Writes to the Postgres of `make services`; says so and passes when it is missing.
.PHONY: bench-postgres
BENCH_TARGETS += bench-postgres

bench-postgres:
	@echo "== postgres =="
	$(GO) run ./internal/bench/postgres
