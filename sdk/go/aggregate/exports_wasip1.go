//go:build wasip1

package aggregate

import (
	"unsafe"

	"github.com/sluicehq/sluice/sdk/go/abi"
)

// The exports of an aggregate module (sdk/abi/v1/ABI.md sections 3 and 13.1). They exist only in
// the WebAssembly build.

//go:wasmexport tf_abi_version
func tfABIVersion() int32 { return abi.VersionAggregate }

//go:wasmexport tf_meta
func tfMeta() int64 { return ptrlen(mod.meta) }

//go:wasmexport tf_reserve
func tfReserve(n int32) int32 {
	buf := reserve(uint32(n))
	if len(buf) == 0 {
		return 0
	}
	return int32(uintptr(unsafe.Pointer(unsafe.SliceData(buf))))
}

//go:wasmexport tf_init
func tfInit(n int32) int32 { return initialize(uint32(n)) }

//go:wasmexport tf_process
func tfProcess(n int32) int64 { return int64(process()) }

//go:wasmexport tf_last_error
func tfLastError() int64 { return ptrlen(mod.lastErr) }

//go:wasmexport tf_agg_step
func tfAggStep(n int32) int64 { return result(call(abi.KindStep, uint32(n))) }

//go:wasmexport tf_agg_emit
func tfAggEmit(n int32) int64 { return result(call(abi.KindEmit, uint32(n))) }

//go:wasmexport tf_agg_merge
func tfAggMerge(n int32) int64 { return result(call(abi.KindMerge, uint32(n))) }

func result(res []byte, code int32) int64 {
	if code != 0 {
		return int64(code)
	}
	return ptrlen(res)
}

func ptrlen(b []byte) int64 {
	if len(b) == 0 {
		return 0
	}
	p := uint64(uintptr(unsafe.Pointer(unsafe.SliceData(b))))
	return int64(p<<32 | uint64(uint32(len(b))))
}

//go:wasmimport tf_host_v1 log
func importLog(level int32, ptr unsafe.Pointer, n int32)

//go:wasmimport tf_host_v1 metric_add
func importMetricAdd(ptr unsafe.Pointer, n int32, delta int64)

func hostLog(level Level, msg string) {
	if len(msg) > abi.MaxLogLine {
		msg = msg[:abi.MaxLogLine]
	}
	if len(msg) == 0 {
		return
	}
	importLog(int32(level), unsafe.Pointer(unsafe.StringData(msg)), int32(len(msg)))
}

func hostMetricAdd(name string, delta int64) {
	if len(name) == 0 {
		return
	}
	importMetricAdd(unsafe.Pointer(unsafe.StringData(name)), int32(len(name)), delta)
}
