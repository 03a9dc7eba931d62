# Toolchains for the WASM guest SDKs (issue 3): clang-14 + wasi-libc for C, Debian's rustc 1.63 with
# the wasm32 std for Rust, and a pinned AssemblyScript compiler from npm. `make wasm-toolchains` is
# idempotent: it installs only what is missing and takes well under a second when all is present.
# `make wasm-guests` (mk/wasm-guests.mk) builds every guest module from source with these.

WASM_APT_PACKAGES      := clang-14 lld-14 wasi-libc libclang-rt-14-dev-wasm32 rustc libstd-rust-dev-wasm32
ASSEMBLYSCRIPT_VERSION := 0.28.20

# The compilers the guest builds use. Debian's rustc is called by its full path: a rustup toolchain
# earlier on PATH may lack the wasm32 standard library.
WASM_CLANG ?= clang-14
WASM_RUSTC ?= /usr/bin/rustc
WASM_ASC   ?= $(CURDIR)/sdk/assemblyscript/node_modules/.bin/asc

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: wasm-toolchains
wasm-toolchains:
	@missing=""; \
	for p in $(WASM_APT_PACKAGES); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "wasm-toolchains: installing Debian packages:$$missing"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing || exit 1; \
	fi
	@if [ "$$($(WASM_ASC) --version 2>/dev/null)" != "Version $(ASSEMBLYSCRIPT_VERSION)" ]; then \
		echo "wasm-toolchains: installing assemblyscript@$(ASSEMBLYSCRIPT_VERSION) into sdk/assemblyscript/node_modules"; \
		cd sdk/assemblyscript && npm install --no-audit --no-fund --no-package-lock --loglevel=error || exit 1; \
	fi
	@$(WASM_CLANG) --version | head -1
	@$(WASM_RUSTC) --version
	@$(WASM_ASC) --version
