// Package crosslang holds the cross-language tests of validate_price: the Go, Rust, C and
// AssemblyScript modules (transforms/validate_price/{go,rust,c,assemblyscript}/validate_price.wasm)
// run through internal/wasmhost on the shared vectors of ../testdata and on generated inputs, and
// must produce byte-identical kept output and identical reject codes and reasons. The package has
// no code of its own; `make wasm-go wasm-guests` rebuilds the modules from source first.
package crosslang
