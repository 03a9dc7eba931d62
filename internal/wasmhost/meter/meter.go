// Package meter rewrites a WebAssembly module so that its host can stop it cheaply: the rewritten
// module counts its work in a global and calls the host once the count runs out.
//
// Rewrite adds to a module two imported functions of the module ImportModule and one exported
// mutable i64 global, the fuel counter:
//
//	sluice_meter.refill      (i64) -> i64   called with the counter once it is below zero; returns
//	                                        the new counter, or traps to end the call
//	sluice_meter.memory_grow (i32) -> i32   replaces memory.grow: grows memory 0 by the given pages
//	                                        and returns the old size in pages, or -1 if refused
//	export "sluice_meter_fuel"              the counter (mutable i64), read and set by the host
//	                                        around calls
//
// Work is charged in units of at most one executed instruction. Code is cut into regions: a
// function's body, and each loop's body, without the loops nested in them. A region costs its
// instruction count (each instruction once, whichever branches run), plus the whole call tree of
// each light function it calls (below). Every loop iteration and every function entry subtracts
// the cost of the region it starts; every executed instruction belongs to one region and runs at
// most once per entry of it, so the charges bound the work. Bulk instructions (memory.fill,
// memory.copy, memory.init, table.init, table.copy, table.fill, table.grow) are charged one unit
// per 16 bytes (per 4 table elements) of their length operand before they run.
//
// Checks (a call to refill when the counter is below zero) come with every loop iteration, and at
// the entry of the functions that need one: those a table may hold (call_indirect can reach
// them), those on a cycle of calls (recursion), and those that would otherwise run more than
// UncheckedCost instructions, with the unchecked functions they call, before a check (call trees
// without loops). Other functions only charge at their entry: what they run before the next check
// is bounded. A function without loops, indirect calls and bulk instructions whose call tree is at
// most LightCost instructions of such functions is light: it is left as it is, and charged at
// its call sites. The host is therefore entered once per granted amount of work whatever the
// module does (loops, recursion, call trees, bulk copies), give or take UncheckedCost; it reads
// the counter after a call to see the work since the last check.
//
// Inside a function the counter lives in a local (a register, for a compiler), written back to the
// global before calls to functions that use it, read back after them, and before the function
// returns. A check costs a subtraction, a comparison and a branch: the call to refill is placed
// outside the loop (see loopHeader), because a call inside a loop, even one never made, makes the
// compiler keep the loop's values where the call cannot clobber them.
//
// Function indices of the module's own functions move up by two (the added imports come after
// the module's imported functions): calls, ref.func, exports, the start function, element
// segments, global initialisers and the name section are renumbered. Custom sections are kept,
// except DWARF (".debug_*"), whose code offsets the rewrite would falsify. The rewrite refuses
// (with *Error) what it does not know: instructions outside WebAssembly 2.0 with SIMD, bulk
// memory and reference types (threads, tail calls, exception handling, GC, multiple memories,
// memory64, extended constant expressions), malformed encodings, and modules that already use
// the names it adds. It keeps an invalid module invalid: every index it could make valid (types,
// globals, locals it adds to the index spaces) is checked against the original spaces, and
// function indices are moved one to one.
//
// The package uses only the standard library and holds no state; Rewrite is safe for concurrent
// use.
package meter

import (
	"fmt"
)

// Names the rewritten module imports and exports.
const (
	ImportModule = "sluice_meter"
	RefillName   = "refill"
	GrowName     = "memory_grow"
	FuelExport   = "sluice_meter_fuel"
)

// LightCost is the largest call tree, in instructions, of a function left without a check.
const LightCost = 1024

// Error is a module Rewrite cannot handle, with the byte offset in the module where it found out.
type Error struct {
	Offset int
	Msg    string
}

func (e *Error) Error() string { return fmt.Sprintf("at byte %#x: %s", e.Offset, e.Msg) }

// Info describes what a rewrite did.
type Info struct {
	Functions int // functions defined by the module
	Light     int // of which light: left without checks
	Loops     int // loop headers checked
	BytesIn   int
	BytesOut  int
}

// Rewrite returns the metered form of the module bin (see the package documentation), or an
// *Error. bin is not modified.
func Rewrite(bin []byte) (out []byte, info Info, err error) {
	defer func() {
		if r := recover(); r != nil {
			e, ok := r.(*Error)
			if !ok {
				panic(r)
			}
			out, info, err = nil, Info{}, e
		}
	}()
	m := &module{bin: bin}
	m.parse()
	m.analyse()
	out = m.write()
	info = Info{Functions: len(m.funcs), Loops: m.loops, BytesIn: len(bin), BytesOut: len(out)}
	for i := range m.funcs {
		if m.funcs[i].light {
			info.Light++
		}
	}
	return out, info, nil
}

// section is one section of the input module.
type section struct {
	id         byte
	start, end int // payload
	name       string
}

type funcType struct {
	params, results []byte
}

// function is one function the module defines.
type function struct {
	typ        uint32
	body       []byte // locals and code, without the size
	bodyOff    int    // offset of body in the module
	nLocals    uint32 // parameters and declared locals
	hasLoop    bool
	hasDynamic bool // call_indirect or a bulk instruction
	needsS     bool // a bulk instruction: needs the scratch local
	own        int64
	regions    []int64    // instruction count of each region: 0 the function level, then each loop
	calls      []callSite // direct calls of defined functions
	light      bool
	cost       int64 // light: the cost of its call tree; state of the light analysis otherwise
	addrTaken  bool  // in a table or named by ref.func: call_indirect may reach it
	checked    bool  // heavy, with a check at its entry (decideChecks)
	unchecked  int64 // heavy without an entry check: the most its entry may run without a check
}

type callSite struct {
	region int32
	callee uint32 // index among the defined functions
}

type module struct {
	bin      []byte
	sections []section
	types    []funcType
	// imports
	nImpFuncs, nImpTables, nImpMems, nImpGlobals uint32
	nTables, nMems, nGlobals                     uint32 // totals, imports included
	funcs                                        []function
	loops                                        int

	refillType, growType uint32 // type indices of the added imports
	newTypes             []funcType
	hasCode              bool
}

func (m *module) nFuncs() uint32 { return m.nImpFuncs + uint32(len(m.funcs)) }

// fn maps a function index of the input to the output.
func (m *module) fn(r *reader, x uint32) uint32 {
	if x >= m.nFuncs() {
		r.fail("function index %d out of range", x)
	}
	if x < m.nImpFuncs {
		return x
	}
	return x + 2
}

// refFunc notes that function x (an input index) can be called through a table.
func (m *module) refFunc(x uint32) {
	if x >= m.nImpFuncs && x < m.nFuncs() {
		m.funcs[x-m.nImpFuncs].addrTaken = true
	}
}

func (m *module) global(r *reader, x uint32) {
	if x >= m.nGlobals {
		r.fail("global index %d out of range", x)
	}
}

func (m *module) typeIdx(r *reader, x uint32) {
	if x >= uint32(len(m.types)) {
		r.fail("type index %d out of range", x)
	}
}

// order ranks known sections in the order the format requires.
var order = map[byte]int{1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 7, 7: 8, 8: 9, 9: 10, 12: 11, 10: 12, 11: 13}

func (m *module) parse() {
	r := &reader{b: m.bin}
	if len(m.bin) < 8 || string(m.bin[:4]) != "\x00asm" {
		r.fail("not a WebAssembly module")
	}
	if string(m.bin[4:8]) != "\x01\x00\x00\x00" {
		r.fail("unsupported binary format version % x", m.bin[4:8])
	}
	r.p = 8
	last := 0
	for !r.done() {
		id := r.byte()
		size := r.u32()
		start := r.p
		r.bytes(int(size))
		s := section{id: id, start: start, end: r.p}
		sr := &reader{b: m.bin[:s.end], p: start}
		if id == 0 {
			s.name = sr.name()
			m.sections = append(m.sections, s)
			continue
		}
		rank, ok := order[id]
		if !ok {
			r.p = start
			r.fail("unsupported section %d", id)
		}
		if rank <= last {
			r.p = start
			r.fail("section %d out of order or repeated", id)
		}
		last = rank
		m.sections = append(m.sections, s)
		switch id {
		case 1:
			m.parseTypes(sr)
		case 2:
			m.parseImports(sr)
		case 3:
			n := sr.count()
			m.funcs = make([]function, n)
			for i := range m.funcs {
				t := sr.u32()
				m.typeIdx(sr, t)
				m.funcs[i].typ = t
			}
		case 4:
			n := sr.count()
			for i := uint32(0); i < n; i++ {
				tableType(sr)
			}
			m.nTables += n
		case 5:
			n := sr.count()
			for i := uint32(0); i < n; i++ {
				limits(sr, true)
			}
			m.nMems += n
		case 6:
			n := sr.count()
			for i := uint32(0); i < n; i++ {
				globalType(sr)
				m.constExpr(sr, nil)
			}
			m.nGlobals += n
		case 10:
			m.hasCode = true
			n := sr.count()
			if int(n) != len(m.funcs) {
				sr.fail("%d function bodies for %d functions", n, len(m.funcs))
			}
			for i := range m.funcs {
				size := sr.u32()
				m.funcs[i].bodyOff = sr.p
				m.funcs[i].body = sr.bytes(int(size))
			}
		}
		if id == 9 {
			var scratch []byte
			m.elements(sr, &scratch)
		}
		// Sections 7 (export), 8 (start), 11 (data) and 12 (data count) are checked when they
		// are written, once every index space is known.
		if id != 7 && id != 8 && id != 9 && id != 11 && id != 12 && !sr.done() {
			sr.fail("%d bytes left at the end of section %d", len(sr.b)-sr.p, id)
		}
	}
	if !m.hasCode && len(m.funcs) > 0 {
		r.fail("%d functions without a code section", len(m.funcs))
	}

	// The added imports' types: existing ones when the module has them.
	m.refillType = m.findType(funcType{params: []byte{0x7e}, results: []byte{0x7e}})
	m.growType = m.findType(funcType{params: []byte{0x7f}, results: []byte{0x7f}})
}

func (m *module) findType(t funcType) uint32 {
	for i, u := range m.types {
		if string(u.params) == string(t.params) && string(u.results) == string(t.results) {
			return uint32(i)
		}
	}
	for i, u := range m.newTypes {
		if string(u.params) == string(t.params) && string(u.results) == string(t.results) {
			return uint32(len(m.types) + i)
		}
	}
	m.newTypes = append(m.newTypes, t)
	return uint32(len(m.types) + len(m.newTypes) - 1)
}

func (m *module) parseTypes(r *reader) {
	n := r.count()
	m.types = make([]funcType, 0, min(n, 1<<16))
	for i := uint32(0); i < n; i++ {
		if f := r.byte(); f != 0x60 {
			r.p--
			r.fail("unsupported type form %#x (only function types)", f)
		}
		var t funcType
		np := r.count()
		t.params = r.bytes(int(np))
		for _, v := range t.params {
			checkValType(r, v)
		}
		nr := r.count()
		t.results = r.bytes(int(nr))
		for _, v := range t.results {
			checkValType(r, v)
		}
		m.types = append(m.types, t)
	}
}

func (m *module) parseImports(r *reader) {
	n := r.count()
	for i := uint32(0); i < n; i++ {
		mod := r.name()
		r.name()
		if mod == ImportModule {
			r.fail("the module imports from %q, a name reserved for the host", ImportModule)
		}
		switch k := r.byte(); k {
		case 0:
			m.typeIdx(r, r.u32())
			m.nImpFuncs++
		case 1:
			tableType(r)
			m.nImpTables++
		case 2:
			limits(r, true)
			m.nImpMems++
		case 3:
			globalType(r)
			m.nImpGlobals++
		default:
			r.p--
			r.fail("unsupported import kind %#x", k)
		}
	}
	m.nTables += m.nImpTables
	m.nMems += m.nImpMems
	m.nGlobals += m.nImpGlobals
}

func checkValType(r *reader, v byte) {
	switch v {
	case 0x7f, 0x7e, 0x7d, 0x7c, 0x7b, 0x70, 0x6f:
	default:
		r.fail("unsupported value type %#x", v)
	}
}

func refType(r *reader) {
	if t := r.byte(); t != 0x70 && t != 0x6f {
		r.p--
		r.fail("unsupported reference type %#x", t)
	}
}

func tableType(r *reader) {
	refType(r)
	limits(r, false)
}

// limits reads the limits of a table or memory; shared memories (threads) are read, and left for
// the runtime to refuse, memory64 is refused here.
func limits(r *reader, memory bool) {
	flag := r.byte()
	switch {
	case flag <= 1, memory && flag <= 3:
	default:
		r.p--
		r.fail("unsupported limits flag %#x", flag)
	}
	r.u32()
	if flag&1 != 0 {
		r.u32()
	}
}

func globalType(r *reader) {
	checkValType(r, r.byte())
	if mut := r.byte(); mut > 1 {
		r.p--
		r.fail("malformed global mutability %#x", mut)
	}
}

// constExpr reads a constant expression and, when out is not nil, appends it with function
// indices moved.
func (m *module) constExpr(r *reader, out *[]byte) {
	start := r.p
	for {
		at := r.p
		switch op := r.byte(); op {
		case 0x0b:
			if out != nil {
				*out = append(*out, r.b[start:r.p]...)
			}
			return
		case 0x41:
			r.sleb(32)
		case 0x42:
			r.sleb(64)
		case 0x43:
			r.bytes(4)
		case 0x44:
			r.bytes(8)
		case 0xd0:
			refType(r)
		case 0x23:
			m.global(r, r.u32())
		case 0xd2:
			x := r.u32()
			y := m.fn(r, x)
			m.refFunc(x)
			if out != nil && x != y {
				*out = append(*out, r.b[start:at]...)
				*out = append(*out, 0xd2)
				*out = appendU32(*out, y)
				start = r.p
			}
		case 0xfd:
			if sub := r.u32(); sub != 12 {
				r.p = at
				r.fail("unsupported instruction 0xfd %d in a constant expression", sub)
			}
			r.bytes(16)
		default:
			r.p = at
			r.fail("unsupported instruction %#x in a constant expression", op)
		}
	}
}
