# Connector plugins: protocol code generation, example plugin, plugin benchmarks.
PROTOC            ?= protoc
PROTOC_GEN_GO_VER ?= v1.36.12
PROTOC_GEN_GRPC_VER ?= v1.6.2
PLUGIN_TOOLS      := $(CURDIR)/build/bin

.PHONY: proto proto-tools plugin-example bench-plugins

# Installs the protoc plugins into build/bin (protoc itself: apt-get install protobuf-compiler).
proto-tools:
	@command -v $(PROTOC) >/dev/null || { echo "protoc missing: apt-get install -y protobuf-compiler"; exit 1; }
	GOBIN=$(PLUGIN_TOOLS) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VER)
	GOBIN=$(PLUGIN_TOOLS) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GRPC_VER)

# Regenerates the committed Go code of the plugin protocol (sdk/proto/pluginv1/plugin.proto) in
# sdk/go/protocol/pluginv1.
proto: proto-tools
	PATH=$(PLUGIN_TOOLS):$$PATH $(PROTOC) -I sdk/proto \
		--go_out=. --go_opt=module=github.com/sluicehq/sluice \
		--go-grpc_out=. --go-grpc_opt=module=github.com/sluicehq/sluice \
		sdk/proto/pluginv1/plugin.proto

# Builds the example plugin into bin/plugins and pins it there (sluice runs only pinned plugins).
plugin-example:
	mkdir -p bin/plugins
	cd examples/plugin-csv && $(GO) build -mod=mod -o ../../bin/plugins/sluice-plugin-csv .
	cd bin/plugins && sha256sum sluice-plugin-csv > sluice-plugin-csv.sha256

# A plugin source and sink against the same connectors compiled in, in PLUGIN_ROUNDS alternating
# rounds: records/s, batch latency, CPU time and peak memory of both processes, and the ratios
# plugin/compiled-in per round and their medians (BenchmarkPlugin in internal/pluginhost).
PLUGIN_ROUNDS ?= 5
bench-plugins:
	@echo "== plugins =="
	$(GO) test -run '^$$' -bench 'BenchmarkPlugin' -benchtime 1x -count 1 ./internal/pluginhost/ -args -plugin-rounds=$(PLUGIN_ROUNDS)
BENCH_TARGETS += bench-plugins

# The example plugin is its own module (it requires the SDK module alone), outside `go test
# ./...`: its compiled-in conformance test runs here; internal/pluginhost runs the same suite
# through the plugin binary.
.PHONY: test-plugin-example
test-plugin-example:
	cd examples/plugin-csv && $(GO) test -mod=mod -count=1 ./...
TEST_TARGETS += test-plugin-example
