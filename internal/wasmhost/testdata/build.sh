#!/bin/sh
# Rebuilds the test guests of internal/wasmhost. Needs clang-14, lld-14, wasi-libc and
# libclang-rt-14-dev-wasm32, and binaryen's wasm-as; `make wasm-host-testdata` installs them first
# (through make wasm-toolchains) and runs this script.
set -eu
cd "$(dirname "$0")"
CC=${CC:-clang-14}
FLAGS="--target=wasm32-wasi -O2 -mexec-model=reactor -Wl,--strip-all"
$CC $FLAGS -o hostile.wasm hostile.c
$CC $FLAGS -DABI_VERSION=0x00020000 -o wrongabi.wasm hostile.c
$CC $FLAGS -o noexports.wasm noexports.c
ls -l hostile.wasm wrongabi.wasm noexports.wasm
# abort.wasm is written in the WebAssembly text format; binaryen's wasm-as comes with the
# AssemblyScript compiler (make wasm-toolchains installs it under sdk/assemblyscript).
WASM_AS=${WASM_AS:-../../../sdk/assemblyscript/node_modules/.bin/wasm-as}
$WASM_AS abort.wat -o abort.wasm
ls -l abort.wasm
