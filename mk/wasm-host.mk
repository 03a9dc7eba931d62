# WASM host (internal/wasmhost): its test guests and its benchmarks.

.PHONY: wasm-host-testdata bench-wasm

# Rebuilds the committed test guests of internal/wasmhost/testdata (C with clang-14, WAT with wasm-as).
# The Go test guest is built by the tests themselves with the Go toolchain.
wasm-host-testdata: wasm-toolchains
	internal/wasmhost/testdata/build.sh

# Records/s through one transform stage for the test guests and every validate_price module under
# transforms/validate_price, batch sizes 1, 64 and 1024, in metered (the default), strict and
# trusted mode with the metered/trusted ratio, plus instance warm-up time, load time from the cache
# directory, the cost of a guest loop iteration in each mode and the rewrite's cost per MB. Raw output in build/bench-wasm.txt, a table on stdout.
BENCH_WASM_TIME ?= 1s
bench-wasm:
	@mkdir -p build
	$(GO) test -run '^$$' -bench 'BenchmarkStage|BenchmarkStageParallel|BenchmarkWarmup|BenchmarkLoad|BenchmarkGuestLoop|BenchmarkRewrite' -benchtime $(BENCH_WASM_TIME) -count 1 ./internal/wasmhost/ ./internal/wasmhost/meter/ > build/bench-wasm.txt
	$(GO) test -run '^$$' -bench 'BenchmarkModeRatio' -benchtime 1x -count 1 ./internal/wasmhost/ >> build/bench-wasm.txt
	@awk -f internal/wasmhost/testdata/benchtable.awk build/bench-wasm.txt
BENCH_TARGETS += bench-wasm
