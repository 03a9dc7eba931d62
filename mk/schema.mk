# Schema benchmarks: decode: avro → drop through the engine beside hamba/avro (the library decode
# parses schemas with) used directly to turn the same payloads into JSON, generically
# (map[string]any) and into the record's own struct; and the engine without decoding. Each run is
# a child process (records/s, latency, CPU time, peak memory), the implementations alternate over
# SCHEMA_ROUNDS rounds and the medians are compared. Then the codec alone (Go benchmarks).
.PHONY: bench-schema
BENCH_TARGETS += bench-schema

SCHEMA_RECORDS ?= 2000000
SCHEMA_ROUNDS  ?= 3

bench-schema:
	@echo "== schema =="
	$(GO) run ./internal/bench/schema -records $(SCHEMA_RECORDS) -rounds $(SCHEMA_ROUNDS)
	$(GO) test -run '^$$' -bench 'Avro|Hamba' -benchtime 200000x ./internal/schema/
