#!/bin/sh
# Rebuilds the test guests of runtime/wasmhost. Needs clang-14, lld-14, wasi-libc and
# libclang-rt-14-dev-wasm32 (make wasm-host-testdata installs nothing; see ABI.md for the packages).
set -eu
cd "$(dirname "$0")"
CC=${CC:-clang-14}
FLAGS="--target=wasm32-wasi -O2 -mexec-model=reactor -Wl,--strip-all"
$CC $FLAGS -o hostile.wasm hostile.c
$CC $FLAGS -DABI_VERSION=0x00020000 -o wrongabi.wasm hostile.c
$CC $FLAGS -o noexports.wasm noexports.c
ls -l *.wasm
