// Package aggregate is the Go SDK for Sluice aggregate modules (ABI 1.1, sdk/abi/v1/ABI.md
// section 13): WebAssembly modules that fold records into per-slot state blobs the host keeps
// (a slot is one key in one window), and turn a slot's state into records when the host asks.
//
// A module registers its functions once, from an init function of package main:
//
//	func init() {
//		aggregate.Register(aggregate.Meta{Name: "count", Version: "1.0.0", StateVersion: 1},
//			aggregate.Funcs{Accumulate: accumulate, Emit: emit, Merge: merge})
//	}
//
// and builds with GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared. The package provides the
// module's whole export set (tf_abi_version, tf_meta, tf_reserve, tf_init, tf_process,
// tf_last_error, tf_agg_step, tf_agg_emit, tf_agg_merge) and the host's log and metric_add
// imports, so it cannot be linked together with sdk/go/transform, which exports a plain
// transform's. RunStep, RunEmit and RunMerge run the registered module natively through real
// frames, for tests.
package aggregate
