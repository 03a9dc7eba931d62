package meter

// Control frame kinds.
const (
	frameFunc = iota
	frameBlock
	frameLoop
	frameIf
)

// maxLocals bounds the locals of a function, as browsers do (the JavaScript API's implementation
// limits): wazero allocates by the declared total before it looks at the code.
const maxLocals = 50000

// walker decodes one function body. Without emit it analyses the body (regions, calls, flags);
// with emit it appends the rewritten body to out.
type walker struct {
	m    *module
	f    *function
	r    reader
	emit bool
	out  []byte
	// copied is the offset in the body up to which the input has been appended to out.
	copied int
	heavy  bool
	L, S   uint32 // the counter's local and the scratch local (heavy functions)
	ctrl   []byte
	// regions of the open loops, innermost last; 0 is the function level
	regStack []int32
	nRegions int32
}

// simdOK lists the SIMD opcodes (0xfd prefix) of WebAssembly 2.0, which wazero implements.
var simdOK = func() (ok [256]bool) {
	for i := range ok {
		ok[i] = true
	}
	for _, x := range []int{0x9a, 0xa2, 0xa5, 0xa6, 0xaf, 0xb0, 0xb2, 0xb3, 0xb4, 0xbb, 0xc2, 0xc5, 0xc6, 0xcf, 0xd0, 0xd2, 0xd3, 0xd4, 0xe2, 0xee} {
		ok[x] = false
	}
	return ok
}()

// analyse walks every body once, then decides which functions are light and what each region
// costs.
func (m *module) analyse() {
	for i := range m.funcs {
		w := walker{m: m, f: &m.funcs[i]}
		w.walk()
	}
	const unvisited, visiting, heavy = -1, -2, -3
	for i := range m.funcs {
		m.funcs[i].cost = unvisited
	}
	var lightCost func(i uint32) int64
	lightCost = func(i uint32) int64 {
		f := &m.funcs[i]
		switch f.cost {
		case visiting:
			return heavy // recursion
		case unvisited:
		default:
			return f.cost
		}
		if f.hasLoop || f.hasDynamic {
			f.cost = heavy
			return heavy
		}
		f.cost = visiting
		total := f.own
		for _, c := range f.calls {
			cc := lightCost(c.callee)
			if cc < 0 {
				f.cost = heavy
				return heavy
			}
			total += cc
			if total > LightCost {
				f.cost = heavy
				return heavy
			}
		}
		f.cost = total
		f.light = true
		return total
	}
	for i := range m.funcs {
		lightCost(uint32(i))
	}
	for i := range m.funcs {
		f := &m.funcs[i]
		for _, c := range f.calls {
			if g := &m.funcs[c.callee]; g.light {
				f.regions[c.region] += g.cost
			}
		}
		if !f.light {
			m.loops += len(f.regions) - 1
		}
	}
}

// writeBody appends the rewritten body of function i to out.
func (m *module) writeBody(i int, out []byte) []byte {
	w := walker{m: m, f: &m.funcs[i], emit: true, out: out, heavy: !m.funcs[i].light}
	w.walk()
	return w.out
}

func (w *walker) flush(to int) {
	w.out = append(w.out, w.r.b[w.copied:to]...)
	w.copied = to
}

func (w *walker) local(op byte, x uint32) {
	w.out = append(w.out, op)
	w.out = appendU32(w.out, x)
}

// checkTail appends "(counter on the stack, also in L) if counter < 0 then L = refill(L)".
func (w *walker) checkTail() {
	w.out = append(w.out, 0x42, 0x00, 0x53, 0x04, 0x40) // i64.const 0; i64.lt_s; if
	w.local(0x20, w.L)
	w.out = append(w.out, 0x10)
	w.out = appendU32(w.out, w.m.nImpFuncs) // call refill
	w.local(0x21, w.L)
	w.out = append(w.out, 0x0b)
}

// charge appends "L = src - cost; check", src being the global (function entry) or L.
func (w *walker) charge(fromGlobal bool, cost int64) {
	if fromGlobal {
		w.local(0x23, w.m.nGlobals)
	} else {
		w.local(0x20, w.L)
	}
	w.out = append(w.out, 0x42)
	w.out = appendS64(w.out, cost)
	w.out = append(w.out, 0x7d) // i64.sub
	w.local(0x22, w.L)          // local.tee
	w.checkTail()
}

func (w *walker) writeBack() {
	w.local(0x20, w.L)
	w.local(0x24, w.m.nGlobals)
}

func (w *walker) reload() {
	w.local(0x23, w.m.nGlobals)
	w.local(0x21, w.L)
}

// bulk appends the charge of a bulk instruction whose length operand is on the stack: one unit
// per 2^shift of it.
func (w *walker) bulk(shift int64) {
	w.local(0x21, w.S)
	w.local(0x20, w.L)
	w.local(0x20, w.S)
	w.out = append(w.out, 0xad, 0x42) // i64.extend_i32_u; i64.const
	w.out = appendS64(w.out, shift)
	w.out = append(w.out, 0x88, 0x7d) // i64.shr_u; i64.sub
	w.local(0x22, w.L)
	w.checkTail()
	w.local(0x20, w.S)
}

// locals reads the local declarations; when emitting a heavy function it appends them with the
// added locals.
func (w *walker) locals() {
	r := &w.r
	t := w.m.types[w.f.typ]
	n := r.count()
	total := uint64(len(t.params))
	for i := uint32(0); i < n; i++ {
		total += uint64(r.u32())
		checkValType(r, r.byte())
		if total > maxLocals {
			r.fail("more than %d locals", maxLocals)
		}
	}
	w.f.nLocals = uint32(total)
	if !w.emit {
		return
	}
	if !w.heavy {
		w.flush(r.p)
		return
	}
	w.L, w.S = uint32(total), uint32(total)+1
	added := uint32(1)
	if w.f.needsS {
		added++
	}
	w.out = appendU32(w.out, n+added)
	// skip the original count, keep the entries
	c := reader{b: r.b}
	c.u32()
	w.copied = c.p
	w.flush(r.p)
	w.out = append(w.out, 1, 0x7e)
	if w.f.needsS {
		w.out = append(w.out, 1, 0x7f)
	}
}

func (w *walker) blockType() {
	r := &w.r
	bt := r.sleb(33)
	switch {
	case bt == -64: // empty
	case bt < 0:
		switch bt {
		case -1, -2, -3, -4, -5, -16, -17:
		default:
			r.fail("unsupported block type %d", bt)
		}
	default:
		if bt >= int64(len(w.m.types)) {
			r.fail("type index %d out of range", bt)
		}
	}
}

func (w *walker) memarg() {
	r := &w.r
	if align := r.u32(); align&0x40 != 0 {
		r.fail("multiple memories are not supported")
	}
	r.u32()
}

func (w *walker) label() uint32 {
	l := w.r.u32()
	if uint64(l) >= uint64(len(w.ctrl)) {
		w.r.fail("branch depth %d out of range", l)
	}
	return l
}

func (w *walker) walk() {
	f := w.f
	w.r = reader{b: f.body, base: f.bodyOff}
	r := &w.r
	w.locals()
	w.ctrl = append(w.ctrl[:0], frameFunc)
	w.regStack = append(w.regStack[:0], 0)
	w.nRegions = 1
	if !w.emit {
		f.regions = append(f.regions[:0], 0)
	} else if w.heavy {
		w.charge(true, f.regions[0])
	}
	m := w.m
	for {
		if !w.emit {
			f.regions[w.regStack[len(w.regStack)-1]]++
			f.own++
		}
		start := r.p
		op := r.byte()
		switch {
		case op == 0x00 || op == 0x01 || op == 0x1a || op == 0x1b || op == 0xd1 || (op >= 0x45 && op <= 0xc4):
			// no immediates
		case op == 0x02 || op == 0x04:
			w.blockType()
			kind := byte(frameBlock)
			if op == 0x04 {
				kind = frameIf
			}
			w.ctrl = append(w.ctrl, kind)
		case op == 0x03:
			w.blockType()
			w.ctrl = append(w.ctrl, frameLoop)
			region := w.nRegions
			w.nRegions++
			w.regStack = append(w.regStack, region)
			if !w.emit {
				f.hasLoop = true
				f.regions = append(f.regions, 0)
			} else if w.heavy {
				w.flush(r.p)
				w.charge(false, f.regions[region])
			}
		case op == 0x05:
			if w.ctrl[len(w.ctrl)-1] != frameIf {
				r.p = start
				r.fail("else without if")
			}
		case op == 0x0b:
			kind := w.ctrl[len(w.ctrl)-1]
			w.ctrl = w.ctrl[:len(w.ctrl)-1]
			if kind == frameLoop {
				w.regStack = w.regStack[:len(w.regStack)-1]
			}
			if kind == frameFunc {
				if !r.done() {
					r.fail("%d bytes after the end of the function", len(r.b)-r.p)
				}
				if w.emit {
					if w.heavy {
						w.flush(start)
						w.writeBack()
					}
					w.flush(r.p)
				}
				return
			}
		case op == 0x0c || op == 0x0d:
			if l := w.label(); w.emit && w.heavy && int(l) == len(w.ctrl)-1 {
				w.flush(start)
				w.writeBack()
			}
		case op == 0x0e:
			n := r.count()
			out := false
			for i := uint64(0); i <= uint64(n); i++ {
				if int(w.label()) == len(w.ctrl)-1 {
					out = true
				}
			}
			if out && w.emit && w.heavy {
				w.flush(start)
				w.writeBack()
			}
		case op == 0x0f:
			if w.emit && w.heavy {
				w.flush(start)
				w.writeBack()
			}
		case op == 0x10:
			x := r.u32()
			y := m.fn(r, x)
			defined := x >= m.nImpFuncs
			if !w.emit {
				if defined {
					f.calls = append(f.calls, callSite{region: w.regStack[len(w.regStack)-1], callee: x - m.nImpFuncs})
				}
				break
			}
			wrap := w.heavy && defined && !m.funcs[x-m.nImpFuncs].light
			if wrap {
				w.flush(start)
				w.writeBack()
			}
			if x != y {
				w.flush(start)
				w.out = append(w.out, 0x10)
				w.out = appendU32(w.out, y)
				w.copied = r.p
			}
			if wrap {
				w.flush(r.p)
				w.reload()
			}
		case op == 0x11:
			t := r.u32()
			m.typeIdx(r, t)
			if tab := r.u32(); tab >= m.nTables {
				r.fail("table index %d out of range", tab)
			}
			if !w.emit {
				f.hasDynamic = true
			} else if w.heavy {
				w.flush(start)
				w.writeBack()
				w.flush(r.p)
				w.reload()
			}
		case op == 0x1c:
			n := r.count()
			for i := uint32(0); i < n; i++ {
				checkValType(r, r.byte())
			}
		case op >= 0x20 && op <= 0x22:
			if x := r.u32(); x >= f.nLocals {
				r.fail("local index %d out of range", x)
			}
		case op == 0x23 || op == 0x24:
			m.global(r, r.u32())
		case op == 0x25 || op == 0x26:
			if x := r.u32(); x >= m.nTables {
				r.fail("table index %d out of range", x)
			}
		case op >= 0x28 && op <= 0x3e:
			w.memarg()
		case op == 0x3f:
			if r.byte() != 0 {
				r.fail("multiple memories are not supported")
			}
		case op == 0x40:
			if r.byte() != 0 {
				r.fail("multiple memories are not supported")
			}
			if m.nMems == 0 {
				r.fail("memory.grow without a memory")
			}
			if w.emit {
				w.flush(start)
				w.out = append(w.out, 0x10)
				w.out = appendU32(w.out, m.nImpFuncs+1)
				w.copied = r.p
			}
		case op == 0x41:
			r.sleb(32)
		case op == 0x42:
			r.sleb(64)
		case op == 0x43:
			r.bytes(4)
		case op == 0x44:
			r.bytes(8)
		case op == 0xd0:
			refType(r)
		case op == 0xd2:
			x := r.u32()
			if y := m.fn(r, x); w.emit && x != y {
				w.flush(start)
				w.out = append(w.out, 0xd2)
				w.out = appendU32(w.out, y)
				w.copied = r.p
			}
		case op == 0xfc:
			w.misc(start)
		case op == 0xfd:
			w.simd(start)
		default:
			r.p = start
			r.fail("unsupported instruction %#x%s", op, opNote(op))
		}
	}
}

// misc handles the 0xfc prefix: saturating truncations, bulk memory and table instructions.
func (w *walker) misc(start int) {
	r := &w.r
	sub := r.u32()
	shift := int64(-1) // the charge of a bulk instruction: one unit per 2^shift of its length
	switch {
	case sub <= 7:
	case sub == 8: // memory.init
		r.u32()
		if r.byte() != 0 {
			r.fail("multiple memories are not supported")
		}
		shift = 4
	case sub == 9 || sub == 13: // data.drop, elem.drop
		r.u32()
	case sub == 10: // memory.copy
		if r.byte() != 0 || r.byte() != 0 {
			r.fail("multiple memories are not supported")
		}
		shift = 4
	case sub == 11: // memory.fill
		if r.byte() != 0 {
			r.fail("multiple memories are not supported")
		}
		shift = 4
	case sub == 12 || sub == 14: // table.init, table.copy
		r.u32()
		r.u32()
		shift = 2
	case sub == 15 || sub == 17: // table.grow, table.fill
		r.u32()
		shift = 2
	case sub == 16: // table.size
		r.u32()
	default:
		r.p = start
		r.fail("unsupported instruction 0xfc %d", sub)
	}
	if shift < 0 {
		return
	}
	if !w.emit {
		w.f.hasDynamic = true
		w.f.needsS = true
	} else if w.heavy {
		w.flush(start)
		w.bulk(shift)
	}
}

// simd handles the 0xfd prefix. The opcode is a u32 in LEB128, but wazero reads it as one byte
// (for opcodes from 0x80 on, it then reads the LEB's second byte, 0x01, as a nop): the rewriter
// accepts only encodings both readings agree on, or they would see different instructions.
func (w *walker) simd(start int) {
	r := &w.r
	sub := r.u32()
	if sub >= 256 {
		r.p = start
		r.fail("unsupported instruction 0xfd %d (relaxed SIMD or unknown)", sub)
	}
	if n := r.p - start - 1; (sub < 0x80 && n != 1) || (sub >= 0x80 && n != 2) {
		r.p = start
		r.fail("SIMD instruction not in its canonical encoding")
	}
	switch {
	case sub <= 11 || sub == 92 || sub == 93: // loads and stores
		w.memarg()
	case sub == 12 || sub == 13: // v128.const, i8x16.shuffle
		r.bytes(16)
	case sub >= 21 && sub <= 34: // extract and replace lane
		r.byte()
	case sub >= 84 && sub <= 91: // load and store lane
		w.memarg()
		r.byte()
	case sub < 256 && simdOK[sub]:
	default:
		r.p = start
		r.fail("unsupported instruction 0xfd %d (relaxed SIMD or unknown)", sub)
	}
}

func opNote(op byte) string {
	switch op {
	case 0x06, 0x07, 0x08, 0x09, 0x0a, 0x18, 0x19, 0x1f:
		return " (exception handling)"
	case 0x12, 0x13:
		return " (tail calls)"
	case 0x14, 0x15, 0xd3, 0xd4, 0xd5, 0xd6:
		return " (typed function references)"
	case 0xfb:
		return " (garbage collection)"
	case 0xfe:
		return " (threads)"
	}
	return ""
}
