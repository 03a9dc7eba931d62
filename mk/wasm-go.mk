# Go transforms (issue 3): builds every first-party Go transform and the Go SDK example to
# WebAssembly with the standard Go toolchain. The built .wasm files of transforms/ are committed so
# the binary works without toolchains, except those over 4 MiB (WASM_GO_BUILT_ONLY: json_schema),
# which are git-ignored build outputs so that each rebuild does not add megabytes to every clone;
# `make wasm-go` (re)builds them all in place, reproducibly (same Go version, -trimpath, no build
# ids or VCS stamps), and `make test` runs it first.

WASM_GO_FLAGS := -buildmode=c-shared -trimpath -buildvcs=false -ldflags='-s -w -buildid='

# Each entry is SOURCE_DIR:OUTPUT_FILE.
WASM_GO_MODULES := \
	transforms/validate_price/go:transforms/validate_price/go/validate_price.wasm \
	transforms/json_schema:transforms/json_schema/json_schema.wasm \
	transforms/mask_fields:transforms/mask_fields/mask_fields.wasm \
	transforms/rename_fields:transforms/rename_fields/rename_fields.wasm \
	transforms/explode_array:transforms/explode_array/explode_array.wasm \
	transforms/stats:transforms/stats/stats-go.wasm \
	transforms/anomaly:transforms/anomaly/anomaly.wasm \
	transforms/dedupe:transforms/dedupe/dedupe.wasm \
	examples/transform-go:build/wasm/examples/price_floor.wasm

.PHONY: wasm-go test-wasm-go wasm-go-check
wasm-go:
	@set -e; for m in $(WASM_GO_MODULES); do \
		src=$${m%%:*}; out=$${m#*:}; \
		if [ -d "$$src" ]; then \
			mkdir -p "$$(dirname $$out)"; \
			echo "wasm-go: $$out"; \
			GOOS=wasip1 GOARCH=wasm $(GO) build $(WASM_GO_FLAGS) -o "$$out" "./$$src"; \
		fi; \
	done

# The Go transforms through the WASM host, against their testdata, plus the reproducibility check.
test-wasm-go:
	$(GO) test -count=1 ./transforms/ ./transforms/validate_price/go/
	cd sdk/go && $(GO) test -count=1 ./transform/

# Fails when a committed module differs from what its source builds (run after wasm-go: an SDK or
# transform change was rebuilt but not committed, or not rebuilt at all).
WASM_GO_BUILT_ONLY := transforms/json_schema/json_schema.wasm
WASM_GO_COMMITTED := $(filter-out $(WASM_GO_BUILT_ONLY),$(filter transforms/%,$(foreach m,$(WASM_GO_MODULES),$(word 2,$(subst :, ,$(m))))))
wasm-go-check: wasm-go
	@git diff --exit-code --stat -- $(WASM_GO_COMMITTED) || \
		{ echo "wasm-go-check: the committed Go modules above differ from a fresh build; commit them"; exit 1; }

TEST_PREREQS += wasm-go
TEST_TARGETS += wasm-go-check
