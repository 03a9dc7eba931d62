# Sluice build, test and benchmark entry points. Areas add their targets in mk/*.mk and append to
# TEST_PREREQS (things `make test` must set up first), TEST_TARGETS (extra test steps run after the
# Go tests) and BENCH_TARGETS (benchmark scenarios).
GO      ?= go
BIN     ?= bin/sluice
export GOFLAGS ?= -buildvcs=false

TEST_PREREQS  :=
TEST_TARGETS  :=
BENCH_TARGETS :=

.PHONY: all build demo test test-go test-race race-packages bench vet fmt clean
all: build

build:
	$(GO) build -o $(BIN) ./cmd/sluice

include $(sort $(wildcard mk/*.mk))

# The connector SDK (sdk/go) is a module of its own: `./...` in the root does not reach it, so
# every Go step below runs it as well.
SDK_MODULE := sdk/go

vet:
	$(GO) vet ./...
	cd $(SDK_MODULE) && $(GO) vet ./...

# The whole suite: sets up what it needs (services, toolchains), then runs every test.
test: $(TEST_PREREQS)
	$(MAKE) test-go
	$(MAKE) test-race
	@for t in $(TEST_TARGETS); do $(MAKE) $$t || exit 1; done

test-go: build
	$(GO) test -count=1 -timeout 20m ./...
	cd $(SDK_MODULE) && $(GO) test -count=1 -timeout 10m ./...

# The race detector on the runtime (its public API under runtime/, its implementation under
# internal/, less the command line, the benchmark driver and the service tests), every connector
# and the SDK module. The set is derived, so a new package under runtime/, internal/ or
# connectors/ is in it without editing this file; `make -s race-packages` prints it (the SDK
# module's packages are all raced too).
RACE_PKGS = $(filter-out %/internal/cli %/internal/bench/engine %/internal/servicetest,$(shell $(GO) list ./runtime/... ./internal/... ./connectors/...))

race-packages:
	@echo $(RACE_PKGS) | tr ' ' '\n'

# The race run leaves out the tests that spend their time in child processes (which are not built
# with the race detector), in stopped servers or in bulk volume; `make test-go` runs them all.
RACE_SKIP = Kill9|KillNine|ScaleOut|Outage|100k|HundredThousand|PrivateBroker|RebalanceWithoutCrash|RunningPipeline

test-race:
	$(GO) test -race -count=1 -timeout 15m -skip '$(RACE_SKIP)' $(RACE_PKGS)
	cd $(SDK_MODULE) && $(GO) test -race -count=1 -timeout 10m ./...

bench: build
	@for t in $(BENCH_TARGETS); do $(MAKE) --no-print-directory $$t || exit 1; done

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin build
