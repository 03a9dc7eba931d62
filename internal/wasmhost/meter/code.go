package meter

// Control frame kinds.
const (
	frameFunc = iota
	frameBlock
	frameIf
	frameLoop // a loop, wrapped in three more labels (see loopHeader)
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

// analyse walks every body once, then decides which functions are light, which need a check at
// their entry, and what each region costs.
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
	m.decideChecks()
}

// UncheckedCost bounds the work of a function without an entry check: its code outside loops and
// that of the functions without entry checks it calls from there.
const UncheckedCost = 1 << 15

// decideChecks gives an entry check to the heavy functions that need one, so that the work between
// two checks stays bounded: functions that can be called through a table (call_indirect may reach
// anything the module's tables can hold), functions on a cycle of direct calls (recursion), and
// functions whose code outside loops, with the unchecked functions it calls from there, may run
// more than UncheckedCost instructions (call trees). The others only charge their entry: whatever
// they run without a check is bounded, and their loops check every iteration.
func (m *module) decideChecks() {
	n := len(m.funcs)
	// Tarjan's strongly connected components over the direct calls between heavy functions.
	index := make([]int32, n)
	low := make([]int32, n)
	onStack := make([]bool, n)
	var stack []uint32
	next := int32(1)
	var visit func(v uint32)
	visit = func(v uint32) {
		index[v], low[v] = next, next
		next++
		stack = append(stack, v)
		onStack[v] = true
		for _, c := range m.funcs[v].calls {
			w := c.callee
			if m.funcs[w].light {
				continue
			}
			if w == v {
				m.funcs[v].checked = true
			}
			if index[w] == 0 {
				visit(w)
				low[v] = min(low[v], low[w])
			} else if onStack[w] {
				low[v] = min(low[v], index[w])
			}
		}
		if low[v] == index[v] {
			var comp []uint32
			for {
				w := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				onStack[w] = false
				comp = append(comp, w)
				if w == v {
					break
				}
			}
			if len(comp) > 1 {
				for _, w := range comp {
					m.funcs[w].checked = true
				}
			}
			// Components come out callees first: the unchecked cost of v's callees is known.
			for _, w := range comp {
				m.uncheckedCost(w)
			}
		}
	}
	for v := range m.funcs {
		if !m.funcs[v].light && index[v] == 0 {
			visit(uint32(v))
		}
	}
}

// uncheckedCost decides whether heavy function i needs an entry check, its callees decided.
func (m *module) uncheckedCost(i uint32) {
	f := &m.funcs[i]
	if f.addrTaken {
		f.checked = true
	}
	if f.checked {
		return
	}
	u := f.regions[0]
	for _, c := range f.calls {
		if g := &m.funcs[c.callee]; c.region == 0 && !g.light && !g.checked {
			u += g.unchecked
		}
	}
	f.unchecked = u
	if u > UncheckedCost {
		f.checked = true
		f.unchecked = 0
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

// entryCheck appends "L = global - cost", and with check "if L < 0 then L = refill(L)".
func (w *walker) entryCheck(cost int64, check bool) {
	w.local(0x23, w.m.nGlobals)
	w.out = append(w.out, 0x42)
	w.out = appendS64(w.out, cost)
	w.out = append(w.out, 0x7d) // i64.sub
	if !check {
		w.local(0x21, w.L) // local.set
		return
	}
	w.local(0x22, w.L) // local.tee
	w.checkTail()
}

// loopHeader replaces the loop instruction at start (block type bt, region cost) by
//
//	block bt                 ;; $done
//	  loop P->P              ;; $retry
//	    block P->P           ;; $refill
//	      loop bt            ;; the loop
//	        L = L - cost; br_if $refill (L < 0)
//
// and loopEnd closes it with
//
//	      end
//	      br $done
//	    end
//	    L = refill(L) + cost
//	    br $retry
//	  end
//	  unreachable
//	end
//
// so that the call to refill is outside the loop: a call inside it, even one never made, makes
// the compiler keep the loop's values where the call cannot clobber them, which slowed byte
// loops by 5-15%. The check branches out with the loop's parameters, which are then on the stack,
// and enters it again after the refill, whose grant the check then finds whole (the cost added
// back pays for the check's second run: the iteration is charged once). Branches from inside the loop to labels outside it count
// the three added labels (crossed).
func (w *walker) loopHeader(start int, bt int64, cost int64) {
	r := &w.r
	btBytes := r.b[start+1 : r.p]
	pp := []byte{0x40}
	if bt >= 0 {
		if p := w.m.types[bt].params; len(p) > 0 {
			pp = appendS64(nil, int64(w.m.findType(funcType{params: p, results: p})))
		}
	}
	w.flush(start)
	w.out = append(w.out, 0x02)
	w.out = append(w.out, btBytes...)
	w.out = append(w.out, 0x03)
	w.out = append(w.out, pp...)
	w.out = append(w.out, 0x02)
	w.out = append(w.out, pp...)
	w.out = append(w.out, 0x03)
	w.out = append(w.out, btBytes...)
	w.local(0x20, w.L)
	w.out = append(w.out, 0x42)
	w.out = appendS64(w.out, cost)
	w.out = append(w.out, 0x7d)                         // i64.sub
	w.local(0x22, w.L)                                  // local.tee
	w.out = append(w.out, 0x42, 0x00, 0x53, 0x0d, 0x01) // i64.const 0; i64.lt_s; br_if 1
	w.copied = r.p
}

// loopEnd replaces the end of a loop at start whose region costs cost (see loopHeader).
func (w *walker) loopEnd(start int, cost int64) {
	w.flush(start)
	w.out = append(w.out, 0x0b, 0x0c, 0x02, 0x0b) // end; br 2; end
	w.local(0x20, w.L)
	w.out = append(w.out, 0x10)
	w.out = appendU32(w.out, w.m.nImpFuncs) // call refill
	w.out = append(w.out, 0x42)
	w.out = appendS64(w.out, cost)
	w.out = append(w.out, 0x7c) // i64.add
	w.local(0x21, w.L)
	w.out = append(w.out, 0x0c, 0x00, 0x0b, 0x00, 0x0b) // br 0; end; unreachable; end
	w.copied = w.r.p
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
// per 2^shift of it. The next check (loop iteration, function entry) acts on it: a check here
// would put a call into loops.
func (w *walker) bulk(shift int64) {
	w.local(0x21, w.S)
	w.local(0x20, w.L)
	w.local(0x20, w.S)
	w.out = append(w.out, 0xad, 0x42) // i64.extend_i32_u; i64.const
	w.out = appendS64(w.out, shift)
	w.out = append(w.out, 0x88, 0x7d) // i64.shr_u; i64.sub
	w.local(0x21, w.L)
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

func (w *walker) blockType() int64 {
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
	return bt
}

// crossed returns how many labels the wrappers add between the current point and branch depth l.
func (w *walker) crossed(l uint32) uint32 {
	var n uint32
	for i := len(w.ctrl) - int(l); i < len(w.ctrl); i++ {
		if w.ctrl[i] == frameLoop {
			n += 3
		}
	}
	return n
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
		w.entryCheck(f.regions[0], f.checked)
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
			bt := w.blockType()
			region := w.nRegions
			w.nRegions++
			w.regStack = append(w.regStack, region)
			if !w.emit {
				f.hasLoop = true
				f.regions = append(f.regions, 0)
				if bt >= 0 && len(m.types[bt].params) > 0 {
					p := m.types[bt].params
					m.findType(funcType{params: p, results: p})
				}
			} else if w.heavy {
				w.loopHeader(start, bt, f.regions[region])
			}
			w.ctrl = append(w.ctrl, frameLoop)
		case op == 0x05:
			if w.ctrl[len(w.ctrl)-1] != frameIf {
				r.p = start
				r.fail("else without if")
			}
		case op == 0x0b:
			kind := w.ctrl[len(w.ctrl)-1]
			w.ctrl = w.ctrl[:len(w.ctrl)-1]
			if kind == frameLoop {
				region := w.regStack[len(w.regStack)-1]
				w.regStack = w.regStack[:len(w.regStack)-1]
				if w.emit && w.heavy {
					w.loopEnd(start, f.regions[region])
				}
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
			l := w.label()
			if w.emit && w.heavy && int(l) == len(w.ctrl)-1 {
				w.flush(start)
				w.writeBack()
			}
			if c := w.crossed(l); c > 0 && w.emit {
				w.flush(start)
				w.out = append(w.out, op)
				w.out = appendU32(w.out, l+c)
				w.copied = r.p
			}
		case op == 0x0e:
			n := r.count()
			out := false
			var labels []uint32
			moved := false
			for i := uint64(0); i <= uint64(n); i++ {
				l := w.label()
				if int(l) == len(w.ctrl)-1 {
					out = true
				}
				if c := w.crossed(l); c > 0 {
					moved = true
					l += c
				}
				labels = append(labels, l)
			}
			if out && w.emit && w.heavy {
				w.flush(start)
				w.writeBack()
			}
			if moved && w.emit {
				w.flush(start)
				w.out = append(w.out, 0x0e)
				w.out = appendU32(w.out, n)
				for _, l := range labels {
					w.out = appendU32(w.out, l)
				}
				w.copied = r.p
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
			m.refFunc(x)
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
