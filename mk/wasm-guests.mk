# Builds the C, Rust and AssemblyScript guest modules from source (issue 3) with the toolchains of
# mk/wasm-toolchains.mk: validate_price in each language (the committed .wasm files, rebuilt in
# place), the SDK examples (under build/wasm/examples) and the SDK probe modules of the conformance
# and aggregation tests (under build/wasm/sdktest). `make test` runs it before the tests, so
# the cross-language test always sees modules built from the current sources.

WASM_C_FLAGS    := --target=wasm32-wasi -O2 -mexec-model=reactor -Wall -Wextra -Werror -Wl,--strip-all -Isdk/c
WASM_RUST_FLAGS := --edition 2021 --target wasm32-unknown-unknown -C opt-level=3 -C panic=abort -C codegen-units=1 -C link-arg=-zstack-size=131072 -C target-feature=+bulk-memory
WASM_ASC_FLAGS  := -O3 --runtime stub --noAssert
WASM_RUST_LIB   := build/wasm/rust

# source:output pairs
WASM_C_GUESTS := \
	transforms/validate_price/c/validate_price.c:transforms/validate_price/c/validate_price.wasm \
	examples/transform-c/positive_amount.c:build/wasm/examples/positive_amount_c.wasm \
	sdk/c/testdata/probe.c:build/wasm/sdktest/probe_c.wasm \
	sdk/c/testdata/probe_batch.c:build/wasm/sdktest/probe_c_batch.wasm \
	sdk/c/testdata/agg_probe.c:build/wasm/sdktest/agg_probe_c.wasm
WASM_RUST_GUESTS := \
	transforms/validate_price/rust/validate_price.rs:transforms/validate_price/rust/validate_price.wasm \
	transforms/stats/rust/stats.rs:transforms/stats/stats.wasm \
	transforms/quality_score/quality_score.rs:transforms/quality_score/quality_score.wasm \
	examples/transform-rust/positive_amount.rs:build/wasm/examples/positive_amount_rust.wasm \
	sdk/rust/testdata/probe.rs:build/wasm/sdktest/probe_rust.wasm \
	sdk/rust/testdata/agg_probe.rs:build/wasm/sdktest/agg_probe_rust.wasm
WASM_AS_GUESTS := \
	transforms/validate_price/assemblyscript/validate_price.ts:transforms/validate_price/assemblyscript/validate_price.wasm \
	examples/transform-assemblyscript/positive_amount.ts:build/wasm/examples/positive_amount_assemblyscript.wasm \
	sdk/assemblyscript/testdata/probe.ts:build/wasm/sdktest/probe_assemblyscript.wasm \
	sdk/assemblyscript/testdata/agg_probe.ts:build/wasm/sdktest/agg_probe_assemblyscript.wasm

.PHONY: wasm-guests wasm-guests-c wasm-guests-rust wasm-guests-assemblyscript
wasm-guests: wasm-toolchains
	@$(MAKE) --no-print-directory wasm-guests-c wasm-guests-rust wasm-guests-assemblyscript

wasm-guests-c:
	@set -e; for m in $(WASM_C_GUESTS); do \
		src=$${m%%:*}; out=$${m#*:}; mkdir -p "$$(dirname $$out)"; \
		echo "wasm-guests: $$out"; \
		$(WASM_CLANG) $(WASM_C_FLAGS) -o "$$out" "$$src"; \
	done

# The SDK is compiled once as an rlib named `sluice`; each module links it with --extern.
wasm-guests-rust:
	@set -e; mkdir -p $(WASM_RUST_LIB); \
	$(WASM_RUSTC) $(WASM_RUST_FLAGS) --crate-type rlib --crate-name sluice \
		--remap-path-prefix=$(CURDIR)=. -o $(WASM_RUST_LIB)/libsluice.rlib sdk/rust/src/lib.rs; \
	for m in $(WASM_RUST_GUESTS); do \
		src=$${m%%:*}; out=$${m#*:}; mkdir -p "$$(dirname $$out)"; \
		echo "wasm-guests: $$out"; \
		$(WASM_RUSTC) $(WASM_RUST_FLAGS) --crate-type cdylib -C lto -C strip=symbols \
			--remap-path-prefix=$(CURDIR)=. --extern sluice=$(WASM_RUST_LIB)/libsluice.rlib \
			-L $(WASM_RUST_LIB) -o "$$out" "$$src"; \
	done

wasm-guests-assemblyscript:
	@set -e; for m in $(WASM_AS_GUESTS); do \
		src=$${m%%:*}; out=$${m#*:}; mkdir -p "$$(dirname $$out)"; \
		echo "wasm-guests: $$out"; \
		$(WASM_ASC) "$$src" $(WASM_ASC_FLAGS) -o "$$out"; \
	done

TEST_PREREQS += wasm-toolchains wasm-guests

# The committed validate_price modules must be what their sources build: after make wasm-guests
# has rebuilt them in place, git must see no change.
WASM_GUESTS_COMMITTED := transforms/validate_price/c/validate_price.wasm \
	transforms/validate_price/rust/validate_price.wasm \
	transforms/validate_price/assemblyscript/validate_price.wasm \
	transforms/stats/stats.wasm \
	transforms/quality_score/quality_score.wasm

.PHONY: check-wasm-guests
check-wasm-guests: wasm-guests
	@if git rev-parse --git-dir >/dev/null 2>&1; then \
		git diff --exit-code --stat -- $(WASM_GUESTS_COMMITTED) || \
		{ echo "check-wasm-guests: the committed modules differ from a build of their sources: commit the rebuilt files"; exit 1; }; \
	else echo "check-wasm-guests: not a git checkout, nothing to compare"; fi

TEST_TARGETS += check-wasm-guests
