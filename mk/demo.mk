# The newcomer's demo (examples/commodity-prices): no servers needed. It starts the local price
# API with a bounded history (DEMO_TOTAL records, DEMO_SEED), runs the two pipelines of
# examples/commodity-prices/demo in one `sluice run` (prices → validate_price → anomaly → Iceberg
# on a SQLite catalog + alerts; prices → validate_price → stats per minute → Iceberg + a file;
# dead letters to files), then reads the tables back and accounts for every record. It finishes
# by itself; DEMO_DIR (build/demo) holds everything it wrote.
DEMO_DIR   := build/demo
DEMO_TOTAL ?= 40000
DEMO_SEED  ?= 1

.PHONY: demo demo-tools
demo-tools:
	$(GO) build -o build/bin/priceapi ./examples/commodity-prices/priceapi
	$(GO) build -o build/bin/commodity-summary ./examples/commodity-prices/summary

demo: build demo-tools
	@set -e; \
	if [ -d $(DEMO_DIR)/data/wasm-cache ]; then rm -rf build/.demo-wasm-cache; mv $(DEMO_DIR)/data/wasm-cache build/.demo-wasm-cache; fi; \
	rm -rf $(DEMO_DIR); mkdir -p $(DEMO_DIR)/data; \
	if [ -d build/.demo-wasm-cache ]; then mv build/.demo-wasm-cache $(DEMO_DIR)/data/wasm-cache; fi; \
	build/bin/priceapi -addr 127.0.0.1:0 -ready-file $(DEMO_DIR)/api.url -seed $(DEMO_SEED) \
		-total $(DEMO_TOTAL) -backfill 24h -rate 1 2> $(DEMO_DIR)/priceapi.log & api=$$!; \
	trap 'kill $$api 2>/dev/null || true' EXIT; \
	for i in $$(seq 100); do [ -s $(DEMO_DIR)/api.url ] && break; sleep 0.1; done; \
	[ -s $(DEMO_DIR)/api.url ] || { cat $(DEMO_DIR)/priceapi.log; echo "the price API did not start"; exit 1; }; \
	url=$$(cat $(DEMO_DIR)/api.url); \
	echo "price API on $$url ($(DEMO_TOTAL) records, seed $(DEMO_SEED)); running examples/commodity-prices/demo"; \
	PRICE_API=$$url DEMO_DIR=$(abspath $(DEMO_DIR)) $(BIN) run --watch=false --data-dir $(DEMO_DIR)/data --admin-addr "" \
		--log-level warn examples/commodity-prices/demo; \
	echo; \
	build/bin/commodity-summary -dir $(DEMO_DIR) -api $$url
