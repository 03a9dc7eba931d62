# End to end: both platforms under load (`make e2e`). e2e-commodity is the load and fault run of
# examples/commodity-prices (examples/commodity-prices/e2e): it starts a Kafka broker, PostgreSQL
# and Redis of its own from what `make services` installs (so its faults never touch the shared
# services), runs platform/analytics.yaml as COMMODITY_PROCESSES `sluice run` processes, feeds
# COMMODITY_RECORDS price records at COMMODITY_RATE records/s (0: unpaced) while it kills one
# process with kill -9, stops PostgreSQL for COMMODITY_PG_OUTAGE and restarts the broker, then
# accounts for every record, prints throughput, end-to-end latency per sink and consumer lag, and
# draws them to COMMODITY_PNG. It fails when a record is not accounted for. COMMODITY_ARGS passes
# more flags (`build/bin/commodity-e2e -h`). e2e-rentals is in mk/rentals.mk.
COMMODITY_DIR       := build/e2e/commodity
COMMODITY_PNG       ?= build/e2e/commodity.png
COMMODITY_RECORDS   ?= 1000000
COMMODITY_RATE      ?= 10000
COMMODITY_PROCESSES ?= 3
COMMODITY_PG_OUTAGE ?= 30s
COMMODITY_ARGS      ?=

.PHONY: e2e e2e-commodity e2e-tools
e2e: e2e-commodity e2e-rentals e2e-rentals-faults

e2e-tools:
	$(GO) build -o build/bin/commodity-e2e ./examples/commodity-prices/e2e/cmd/commodity-e2e

e2e-commodity: services build e2e-tools
	@set -a; . build/services.env; set +a; \
	build/bin/commodity-e2e -sluice $(BIN) -manifest examples/commodity-prices/platform/analytics.yaml \
		-dir $(COMMODITY_DIR) -png $(COMMODITY_PNG) -records $(COMMODITY_RECORDS) -rate $(COMMODITY_RATE) \
		-processes $(COMMODITY_PROCESSES) -pg-for $(COMMODITY_PG_OUTAGE) $(COMMODITY_ARGS)
