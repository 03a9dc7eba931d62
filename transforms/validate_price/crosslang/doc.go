// Package crosslang holds the cross-language tests of validate_price: the Go, Rust, C and
// AssemblyScript modules (transforms/validate_price/{go,rust,c,assemblyscript}/validate_price.wasm)
// run through internal/wasmhost on the shared vectors of ../testdata and on generated inputs, and
// must produce byte-identical kept output and identical reject codes and reasons. It also holds
// the SDK conformance tests: the probe modules of sdk/{c,rust,assemblyscript}/testdata (sdk_test.go)
// and their aggregate (ABI 1.1) twins with the Go SDK's, sdk/go/aggregate/testdata/probe, which
// the tests compile themselves (agg_test.go). The package has no code of its own;
// `make wasm-go wasm-guests` rebuilds the modules from source first.
package crosslang
