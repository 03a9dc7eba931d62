//go:build wasip1

// Command goguest is a test guest for internal/wasmhost written in standard Go against
// sdk/abi/v1/ABI.md without an SDK. It checks that the Go runtime starts under the host (WASI
// with nothing granted, _initialize) and that stdout reaches the host log. Values:
// "panic" panics (the Go runtime exits), "alloc" allocates without bound, "fill" allocates
// without bound and writes every page it gets (so all of it is resident), "print" writes to
// stdout, "upper" EMITs the value upper-cased, "inplace" as the first value of a frame makes the
// guest write its result frame over the input frame, "overlap" EMITs the same 2,000 OutDescs, all
// naming the same 4 KiB value, for every such record of the frame (8 MB each), "headers" EMITs
// one record with an empty value and 100,000 empty headers (one header list of 0.8 MB shared by
// every such record of the frame), "probe" EMITs a JSON report of what the sandbox lets it see
// (files, environment, arguments, clock); anything else PASSes.
package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"time"
	"unsafe"
)

func probe() []byte {
	_, rootErr := os.ReadDir("/")
	_, fileErr := os.ReadFile("/etc/hostname")
	wd, _ := os.Getwd()
	b, _ := json.Marshal(map[string]any{
		"read_root_ok": rootErr == nil,
		"read_file_ok": fileErr == nil,
		"env":          os.Environ(),
		"args":         os.Args,
		"year":         time.Now().Year(),
		"wd":           wd,
	})
	return b
}

func main() {}

var (
	inBuf   []byte
	outBuf  []byte
	lastErr []byte
	sink    [][]byte
	meta    = []byte(`{"name":"goguest","version":"0.1.0","abi":"1.0","kinds":["map"]}`)
)

func ptrlen(b []byte) uint64 {
	if len(b) == 0 {
		return 0
	}
	return uint64(uintptr(unsafe.Pointer(&b[0])))<<32 | uint64(len(b))
}

//go:wasmexport tf_abi_version
func tfABIVersion() int32 { return 0x00010000 }

//go:wasmexport tf_meta
func tfMeta() int64 { return int64(ptrlen(meta)) }

//go:wasmexport tf_last_error
func tfLastError() int64 { return int64(ptrlen(lastErr)) }

//go:wasmexport tf_reserve
func tfReserve(n int32) int32 {
	if int(n) > len(inBuf) {
		inBuf = make([]byte, n)
	}
	return int32(uintptr(unsafe.Pointer(&inBuf[0])))
}

//go:wasmexport tf_init
func tfInit(n int32) int32 {
	if bytes.Contains(inBuf[:n], []byte(`"fail"`)) {
		lastErr = []byte("config says fail")
		return 1
	}
	return 0
}

//go:wasmexport tf_process
func tfProcess(n int32) int64 {
	le := binary.LittleEndian
	f := inBuf[:n]
	cnt := int(le.Uint32(f[16:]))
	dsz := int(le.Uint16(f[10:]))
	doff := int(le.Uint32(f[24:]))
	outBuf = outBuf[:0]
	out := make([]byte, 32+12*cnt, 32+12*cnt+64*cnt)
	var descs, data []byte
	nOut, shared, hdrs := 0, -1, -1
	for i := 0; i < cnt; i++ {
		d := f[doff+i*dsz:]
		v := f[le.Uint32(d[24:]) : le.Uint32(d[24:])+le.Uint32(d[28:])]
		disp := out[32+12*i:]
		switch string(v) {
		case "panic":
			panic("asked to panic")
		case "alloc":
			for {
				sink = append(sink, make([]byte, 1<<20))
			}
		case "fill":
			for {
				b := make([]byte, 1<<20)
				for j := 0; j < len(b); j += 4096 {
					b[j] = 1
				}
				sink = append(sink, b)
			}
		case "overlap":
			if shared < 0 {
				shared = nOut
				off := len(data)
				data = append(data, bytes.Repeat([]byte("x"), 4096)...)
				for k := 0; k < 2000; k++ {
					od := make([]byte, 48)
					le.PutUint64(od[0:], 1<<63)
					le.PutUint32(od[20:], 0xFFFFFFFF)
					le.PutUint32(od[24:], uint32(off)) // fixed up below
					le.PutUint32(od[28:], 4096)
					le.PutUint32(od[36:], 0xFFFFFFFF)
					descs = append(descs, od...)
				}
				nOut += 2000
			}
			disp[0] = 2
			le.PutUint32(disp[4:], uint32(shared))
			le.PutUint32(disp[8:], 2000)
		case "headers":
			if hdrs < 0 {
				hdrs = len(data)
				h := make([]byte, 4+8*100000) // 100,000 headers with empty keys and values
				le.PutUint32(h, 100000)
				data = append(data, h...)
			}
			disp[0] = 2
			le.PutUint32(disp[4:], uint32(nOut))
			le.PutUint32(disp[8:], 1)
			od := make([]byte, 48)
			le.PutUint64(od[0:], 1<<63)
			le.PutUint32(od[20:], 0xFFFFFFFF)
			le.PutUint32(od[32:], uint32(hdrs)) // fixed up below
			le.PutUint32(od[36:], 4+8*100000)
			descs = append(descs, od...)
			nOut++
		case "print":
			fmt.Fprintln(os.Stdout, "hello from go guest")
		case "upper", "probe":
			if string(v) == "probe" {
				v = probe()
			} else {
				v = bytes.ToUpper(v)
			}
			disp[0] = 2
			le.PutUint32(disp[4:], uint32(nOut))
			le.PutUint32(disp[8:], 1)
			od := make([]byte, 48)
			le.PutUint64(od[0:], 1<<63)
			le.PutUint32(od[20:], 0xFFFFFFFF)
			le.PutUint32(od[24:], uint32(len(data))) // fixed up below
			le.PutUint32(od[28:], uint32(len(v)))
			le.PutUint32(od[36:], 0xFFFFFFFF)
			descs = append(descs, od...)
			data = append(data, v...)
			nOut++
		}
	}
	outDescOff := len(out)
	dataOff := outDescOff + len(descs)
	for j := 0; j < nOut; j++ {
		od := descs[48*j:]
		le.PutUint32(od[24:], le.Uint32(od[24:])+uint32(dataOff))
		if hl := le.Uint32(od[36:]); hl != 0 && hl != 0xFFFFFFFF {
			le.PutUint32(od[32:], le.Uint32(od[32:])+uint32(dataOff))
		}
	}
	out = append(append(out, descs...), data...)
	le.PutUint32(out[0:], 0x31524654)
	le.PutUint16(out[4:], 32)
	le.PutUint16(out[6:], 48)
	le.PutUint32(out[8:], uint32(cnt))
	le.PutUint32(out[12:], 32)
	le.PutUint32(out[16:], uint32(nOut))
	le.PutUint32(out[20:], uint32(outDescOff))
	outBuf = out
	if cnt > 0 && string(f[le.Uint32(f[doff+24:]):le.Uint32(f[doff+24:])+le.Uint32(f[doff+28:])]) == "inplace" && len(out) <= len(inBuf) {
		// The result frame over the input frame, in the tf_reserve buffer (ABI.md section 7).
		copy(inBuf, out)
		return int64(ptrlen(inBuf[:len(out)]))
	}
	return int64(ptrlen(outBuf))
}
