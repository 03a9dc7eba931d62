# The newcomer's demo: no servers needed.
.PHONY: demo
demo: build
	@rm -rf build/demo && mkdir -p build/demo
	$(BIN) run --data-dir build/demo/data --admin-addr "" --log-level warn examples/commodity-prices/pipeline.yaml
	@echo
	@echo "valid prices:    $$(wc -l < build/demo/prices.jsonl) lines in build/demo/prices.jsonl"
	@echo "dead letters:    $$(wc -l < build/demo/rejected.jsonl) lines in build/demo/rejected.jsonl"
	@echo "first valid:     $$(head -n 1 build/demo/prices.jsonl)"
	@echo "first rejected:  $$(head -n 1 build/demo/rejected.jsonl)"
