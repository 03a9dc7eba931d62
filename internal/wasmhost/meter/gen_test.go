package meter_test

import (
	"math"
	"math/rand"
)

// A generator of random valid modules from the binary format: typed expressions and statements
// over locals, globals, memory, tables and calls, with blocks, loops (bounded by counters), ifs,
// branches (br, br_if, br_table, return), multi-value blocks with parameters, SIMD, bulk memory
// and reference instructions; imports, a start function, element and data segments (active,
// passive, declarative) and a name section. Calls go to lower-indexed functions only, and every
// loop counts down a local of its own, so every call terminates.

const (
	i32  byte = 0x7f
	i64  byte = 0x7e
	f32  byte = 0x7d
	f64  byte = 0x7c
	v128      = 0x7b
)

var numTypes = []byte{i32, i64, f32, f64}

type fnType struct{ params, results []byte }

type genFunc struct {
	typ    int
	locals []byte // declared locals, one per entry
	body   []byte
	name   string
}

type genModule struct {
	rng       *rand.Rand
	types     []fnType
	funcs     []genFunc
	globals   []byte // types of the defined globals (all mutable but globalConst)
	hasStart  bool
	startFunc int
	useSIMD   bool
}

const (
	nImpFuncs   = 1 // env.h (i32) -> i32
	nImpGlobals = 1 // env.g i32, immutable
	memPages    = 1
	tableSize   = 16
	maxDepth    = 4
)

func (g *genModule) typeIndex(t fnType) int {
	for i, u := range g.types {
		if string(u.params) == string(t.params) && string(u.results) == string(t.results) {
			return i
		}
	}
	g.types = append(g.types, t)
	return len(g.types) - 1
}

func (g *genModule) randNum() byte { return numTypes[g.rng.Intn(len(numTypes))] }

// newModule generates a module of n defined functions.
func newModule(seed int64, n int, simd bool) *genModule {
	g := &genModule{rng: rand.New(rand.NewSource(seed)), useSIMD: simd}
	g.typeIndex(fnType{params: []byte{i32}, results: []byte{i32}}) // type 0: env.h
	for i := 0; i < 4; i++ {
		g.globals = append(g.globals, g.randNum())
	}
	g.globals = append(g.globals, i32, i64)
	for i := 0; i < n; i++ {
		var t fnType
		for k := g.rng.Intn(4); k > 0; k-- {
			t.params = append(t.params, g.randNum())
		}
		for k := g.rng.Intn(3); k > 0; k-- {
			t.results = append(t.results, g.randNum())
		}
		if i == n-1 && g.rng.Intn(2) == 0 {
			t = fnType{} // a start function
			g.hasStart, g.startFunc = true, i
		}
		g.funcs = append(g.funcs, genFunc{typ: g.typeIndex(t)})
	}
	for i := range g.funcs {
		fb := &funcBuilder{g: g, idx: i, t: g.types[g.funcs[i].typ]}
		g.funcs[i].body, g.funcs[i].locals = fb.build()
		g.funcs[i].name = "fn" + string(rune('a'+i%26)) + itoa(i)
	}
	return g
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	return string(b)
}

// funcBuilder generates one function body.
type funcBuilder struct {
	g      *genModule
	idx    int
	t      fnType
	locals []byte // params then declared locals
	// counters are locals reserved for loop counters, one per loop nesting level
	counters []uint32
	loopLvl  int
	labels   []label // open blocks, innermost last
	out      []byte
	budget   int // instructions left to generate
}

type label struct {
	types  []byte // what a branch to it carries
	isLoop bool
}

func (b *funcBuilder) rng() *rand.Rand { return b.g.rng }

func (b *funcBuilder) build() (body, declared []byte) {
	b.locals = append([]byte(nil), b.t.params...)
	for k := 2 + b.rng().Intn(4); k > 0; k-- {
		b.locals = append(b.locals, b.g.randNum())
	}
	if b.g.useSIMD {
		b.locals = append(b.locals, v128)
	}
	for i := 0; i < maxDepth; i++ {
		b.counters = append(b.counters, uint32(len(b.locals)))
		b.locals = append(b.locals, i32)
	}
	b.budget = 150 + b.rng().Intn(250)
	b.labels = []label{{types: b.t.results}}
	for k := 1 + b.rng().Intn(5); k > 0 && b.budget > 0; k-- {
		b.stmt(0)
	}
	for _, r := range b.t.results {
		b.expr(r, 0)
	}
	b.op(0x0b)
	return b.out, b.locals[len(b.t.params):]
}

func (b *funcBuilder) op(x ...byte) { b.out = append(b.out, x...); b.budget-- }
func (b *funcBuilder) u32(x uint32) { b.out = appendU32(b.out, x) }
func (b *funcBuilder) s64(x int64)  { b.out = appendS64(b.out, x) }

func appendU32(b []byte, v uint32) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

func appendS64(b []byte, v int64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

func (b *funcBuilder) localOf(t byte) (uint32, bool) {
	var c []uint32
	for i, l := range b.locals {
		if l == t && !b.isCounter(uint32(i)) {
			c = append(c, uint32(i))
		}
	}
	if len(c) == 0 {
		return 0, false
	}
	return c[b.rng().Intn(len(c))], true
}

func (b *funcBuilder) isCounter(x uint32) bool {
	for _, c := range b.counters {
		if c == x {
			return true
		}
	}
	return false
}

func (b *funcBuilder) globalOf(t byte) (uint32, bool) {
	var c []uint32
	for i, gt := range b.g.globals {
		if gt == t {
			c = append(c, uint32(nImpGlobals+i))
		}
	}
	if len(c) == 0 {
		return 0, false
	}
	return c[b.rng().Intn(len(c))], true
}

func (b *funcBuilder) constOf(t byte) {
	r := b.rng()
	switch t {
	case i32:
		b.op(0x41)
		b.s64(int64(int32(r.Uint32() >> uint(r.Intn(32)))))
	case i64:
		b.op(0x42)
		b.s64(int64(r.Uint64() >> uint(r.Intn(64))))
	case f32:
		b.op(0x43)
		v := math.Float32bits(float32(r.NormFloat64() * 100))
		if r.Intn(10) == 0 {
			v = r.Uint32()
		}
		b.out = append(b.out, byte(v), byte(v>>8), byte(v>>16), byte(v>>24))
	case f64:
		b.op(0x44)
		v := math.Float64bits(r.NormFloat64() * 1e6)
		if r.Intn(10) == 0 {
			v = r.Uint64()
		}
		for i := 0; i < 8; i++ {
			b.out = append(b.out, byte(v>>(8*i)))
		}
	case v128:
		b.op(0xfd)
		b.u32(12)
		for i := 0; i < 16; i++ {
			b.out = append(b.out, byte(r.Intn(256)))
		}
	}
}

// address leaves an i32 address, usually inside the first page.
func (b *funcBuilder) address(depth int) {
	b.expr(i32, depth+1)
	if b.rng().Intn(20) != 0 {
		b.op(0x41)
		b.s64(0xff8)
		b.op(0x71) // i32.and
	}
}

// Binary and unary operators per type: opcode, operand type, result type.
type opSpec struct {
	op      byte
	in, out byte
	binary  bool
}

var ops = func() []opSpec {
	var s []opSpec
	bin := func(in, out byte, codes ...byte) {
		for _, c := range codes {
			s = append(s, opSpec{op: c, in: in, out: out, binary: true})
		}
	}
	un := func(in, out byte, codes ...byte) {
		for _, c := range codes {
			s = append(s, opSpec{op: c, in: in, out: out})
		}
	}
	un(i32, i32, 0x45, 0x67, 0x68, 0x69, 0xc0, 0xc1)
	bin(i32, i32, 0x46, 0x47, 0x48, 0x49, 0x4a, 0x4b, 0x4c, 0x4d, 0x4e, 0x4f, 0x6a, 0x6b, 0x6c, 0x6d, 0x6e, 0x6f, 0x70, 0x71, 0x72, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78)
	un(i64, i32, 0x50, 0xa7)
	bin(i64, i32, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a)
	un(i64, i64, 0x79, 0x7a, 0x7b, 0xc2, 0xc3, 0xc4)
	bin(i64, i64, 0x7c, 0x7d, 0x7e, 0x7f, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a)
	bin(f32, i32, 0x5b, 0x5c, 0x5d, 0x5e, 0x5f, 0x60)
	bin(f64, i32, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66)
	un(f32, f32, 0x8b, 0x8c, 0x8d, 0x8e, 0x8f, 0x90, 0x91)
	bin(f32, f32, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98)
	un(f64, f64, 0x99, 0x9a, 0x9b, 0x9c, 0x9d, 0x9e, 0x9f)
	bin(f64, f64, 0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6)
	un(f32, i32, 0xa8, 0xa9, 0xbc)
	un(f64, i32, 0xaa, 0xab)
	un(i32, i64, 0xac, 0xad)
	un(f32, i64, 0xae, 0xaf)
	un(f64, i64, 0xb0, 0xb1, 0xbd)
	un(i32, f32, 0xb2, 0xb3, 0xbe)
	un(i64, f32, 0xb4, 0xb5)
	un(f64, f32, 0xb6)
	un(i32, f64, 0xb7, 0xb8)
	un(i64, f64, 0xb9, 0xba, 0xbf)
	un(f32, f64, 0xbb)
	return s
}()

// expr appends instructions that leave one value of type t.
func (b *funcBuilder) expr(t byte, depth int) {
	r := b.rng()
	if t == v128 {
		b.vexpr(depth)
		return
	}
	if depth >= maxDepth || b.budget <= 0 {
		if x, ok := b.localOf(t); ok && r.Intn(2) == 0 {
			b.op(0x20)
			b.u32(x)
			return
		}
		b.constOf(t)
		return
	}
	switch r.Intn(22) {
	case 0, 1:
		b.constOf(t)
	case 2, 3:
		if x, ok := b.localOf(t); ok {
			b.op(0x20)
			b.u32(x)
		} else {
			b.constOf(t)
		}
	case 4:
		if x, ok := b.globalOf(t); ok {
			b.op(0x23)
			b.u32(x)
		} else {
			b.constOf(t)
		}
	case 5, 6, 7, 8:
		var c []opSpec
		for _, o := range ops {
			if o.out == t {
				c = append(c, o)
			}
		}
		o := c[r.Intn(len(c))]
		b.expr(o.in, depth+1)
		if o.binary {
			b.expr(o.in, depth+1)
		}
		b.op(o.op)
	case 9: // load
		b.address(depth)
		switch t {
		case i32:
			b.op([]byte{0x28, 0x2c, 0x2d, 0x2e, 0x2f}[r.Intn(5)])
		case i64:
			b.op([]byte{0x29, 0x30, 0x31, 0x32, 0x33, 0x34, 0x35}[r.Intn(7)])
		case f32:
			b.op(0x2a)
		case f64:
			b.op(0x2b)
		}
		b.u32(0)
		b.u32(uint32(r.Intn(8)))
	case 10: // block with a result, maybe left by br_if
		b.blockOpen(0x02, nil, []byte{t})
		b.stmts(depth + 1)
		if r.Intn(2) == 0 {
			b.expr(t, depth+1)
			b.expr(i32, depth+1)
			b.op(0x0d)
			b.u32(0)
			b.op(0x1a)
		}
		b.expr(t, depth+1)
		b.blockEnd()
	case 11: // if/else with a result
		b.expr(i32, depth+1)
		b.blockOpen(0x04, nil, []byte{t})
		b.stmts(depth + 1)
		b.expr(t, depth+1)
		b.op(0x05)
		b.stmts(depth + 1)
		b.expr(t, depth+1)
		b.blockEnd()
	case 12: // multi-value block with a parameter: [p] -> [t, u], then drop u
		p, u := b.g.randNum(), b.g.randNum()
		b.expr(p, depth+1)
		b.blockOpen(0x02, []byte{p}, []byte{t, u})
		b.op(0x1a) // drop the parameter
		b.expr(t, depth+1)
		b.expr(u, depth+1)
		b.blockEnd()
		b.op(0x1a)
	case 13: // loop with a parameter and a result, counted
		b.loopExpr(t, depth)
	case 14: // call a lower-indexed function
		if !b.call(depth, t) {
			b.constOf(t)
		}
	case 15: // select
		b.expr(t, depth+1)
		b.expr(t, depth+1)
		b.expr(i32, depth+1)
		if r.Intn(2) == 0 {
			b.op(0x1b)
		} else {
			b.op(0x1c)
			b.u32(1)
			b.out = append(b.out, t)
		}
	case 16: // local.tee
		if x, ok := b.localOf(t); ok {
			b.expr(t, depth+1)
			b.op(0x22)
			b.u32(x)
		} else {
			b.constOf(t)
		}
	case 17: // references and tables
		if t != i32 {
			b.constOf(t)
			break
		}
		switch r.Intn(4) {
		case 0:
			b.op(0xd2)
			b.u32(uint32(nImpFuncs + r.Intn(len(b.g.funcs))))
			b.op(0xd1)
		case 1:
			b.op(0xd0, 0x70, 0xd1)
		case 2:
			b.op(0xfc)
			b.u32(16) // table.size
			b.u32(0)
		default:
			b.expr(i32, depth+1)
			b.op(0x41)
			b.s64(tableSize - 1)
			b.op(0x71)
			b.op(0x25) // table.get
			b.u32(0)
			b.op(0xd1)
		}
	case 18: // memory.size, memory.grow, saturating truncation
		switch {
		case t == i32 && r.Intn(2) == 0:
			b.op(0x3f, 0x00)
		case t == i32:
			b.op(0x41)
			b.s64(int64(r.Intn(3)))
			b.op(0x40, 0x00)
		case t == i64:
			b.expr(f64, depth+1)
			b.op(0xfc)
			b.u32(uint32(6 + r.Intn(2)))
		default:
			b.constOf(t)
		}
	case 19: // SIMD to scalar
		if !b.g.useSIMD {
			b.constOf(t)
			break
		}
		b.vexpr(depth + 1)
		switch t {
		case i32:
			switch r.Intn(4) {
			case 0:
				b.op(0xfd)
				b.u32(27) // i32x4.extract_lane
				b.out = append(b.out, byte(r.Intn(4)))
			case 1:
				b.op(0xfd)
				b.u32(83) // v128.any_true
			case 2:
				b.op(0xfd)
				b.u32(100) // i8x16.bitmask
			default:
				b.op(0xfd)
				b.u32(22) // i8x16.extract_lane_u
				b.out = append(b.out, byte(r.Intn(16)))
			}
		case i64:
			b.op(0xfd)
			b.u32(29)
			b.out = append(b.out, byte(r.Intn(2)))
		case f32:
			b.op(0xfd)
			b.u32(31)
			b.out = append(b.out, byte(r.Intn(4)))
		case f64:
			b.op(0xfd)
			b.u32(33)
			b.out = append(b.out, byte(r.Intn(2)))
		}
	case 20: // imported function
		if t == i32 {
			b.expr(i32, depth+1)
			b.op(0x10)
			b.u32(0)
		} else {
			b.constOf(t)
		}
	default: // call_indirect through the table
		if !b.callIndirect(depth, t) {
			b.constOf(t)
		}
	}
}

// vexpr leaves a v128.
func (b *funcBuilder) vexpr(depth int) {
	r := b.rng()
	if depth >= maxDepth || b.budget <= 0 {
		b.constOf(v128)
		return
	}
	switch r.Intn(8) {
	case 0:
		b.constOf(v128)
	case 1: // splat
		b.expr(i32, depth+1)
		b.op(0xfd)
		b.u32(17)
	case 2: // binary lane ops
		b.vexpr(depth + 1)
		b.vexpr(depth + 1)
		b.op(0xfd)
		b.u32([]uint32{14, 35, 78, 80, 81, 110, 113, 142, 149, 174, 177, 181, 206, 228, 240, 186}[r.Intn(16)])
	case 3: // unary lane ops
		b.vexpr(depth + 1)
		b.op(0xfd)
		b.u32([]uint32{77, 96, 97, 98, 128, 129, 160, 161, 192, 193, 224, 236, 248, 250}[r.Intn(14)])
	case 4: // shuffle
		b.vexpr(depth + 1)
		b.vexpr(depth + 1)
		b.op(0xfd)
		b.u32(13)
		for i := 0; i < 16; i++ {
			b.out = append(b.out, byte(r.Intn(32)))
		}
	case 5: // load
		b.address(depth)
		b.op(0xfd)
		b.u32([]uint32{0, 1, 4, 7, 10, 92, 93}[r.Intn(7)])
		b.u32(0)
		b.u32(uint32(r.Intn(8)))
	case 6: // replace lane
		b.vexpr(depth + 1)
		b.expr(i32, depth+1)
		b.op(0xfd)
		b.u32(28)
		b.out = append(b.out, byte(r.Intn(4)))
	default: // bitselect
		b.vexpr(depth + 1)
		b.vexpr(depth + 1)
		b.vexpr(depth + 1)
		b.op(0xfd)
		b.u32(82)
	}
}

func (b *funcBuilder) blockType(params, results []byte) {
	switch {
	case len(params) == 0 && len(results) == 0:
		b.out = append(b.out, 0x40)
	case len(params) == 0 && len(results) == 1:
		b.out = append(b.out, results[0])
	default:
		b.s64(int64(b.g.typeIndex(fnType{params: params, results: results})))
	}
}

func (b *funcBuilder) blockOpen(op byte, params, results []byte) {
	b.op(op)
	b.blockType(params, results)
	l := label{types: results}
	if op == 0x03 {
		l = label{types: params, isLoop: true}
	}
	b.labels = append(b.labels, l)
}

func (b *funcBuilder) blockEnd() {
	b.labels = b.labels[:len(b.labels)-1]
	b.op(0x0b)
}

// loopExpr: counter = n; p; loop (param p) (result t) ... p' counter-- br_if 0; drop; t end.
func (b *funcBuilder) loopExpr(t byte, depth int) {
	if b.loopLvl >= len(b.counters) {
		b.constOf(t)
		return
	}
	c := b.counters[b.loopLvl]
	b.loopLvl++
	defer func() { b.loopLvl-- }()
	b.op(0x41)
	b.s64(int64(1 + b.rng().Intn(6)))
	b.op(0x21)
	b.u32(c)
	p := b.g.randNum()
	b.expr(p, depth+1)
	b.blockOpen(0x03, []byte{p}, []byte{t})
	b.stmts(depth + 1)
	// the parameter is still on the stack: carry it round
	b.op(0x20)
	b.u32(c)
	b.op(0x41)
	b.s64(1)
	b.op(0x6b)
	b.op(0x22)
	b.u32(c)
	b.op(0x0d)
	b.u32(0)
	b.op(0x1a)
	b.expr(t, depth+1)
	b.blockEnd()
}

// loopStmt: counter = n; loop ... counter-- br_if 0 end.
func (b *funcBuilder) loopStmt(depth int) {
	if b.loopLvl >= len(b.counters) {
		return
	}
	c := b.counters[b.loopLvl]
	b.loopLvl++
	defer func() { b.loopLvl-- }()
	b.op(0x41)
	b.s64(int64(1 + b.rng().Intn(8)))
	b.op(0x21)
	b.u32(c)
	b.blockOpen(0x03, nil, nil)
	b.stmts(depth + 1)
	b.op(0x20)
	b.u32(c)
	b.op(0x41)
	b.s64(1)
	b.op(0x6b)
	b.op(0x22)
	b.u32(c)
	b.op(0x0d)
	b.u32(0)
	b.blockEnd()
}

func (b *funcBuilder) args(t fnType, depth int) {
	for _, p := range t.params {
		b.expr(p, depth+1)
	}
}

// call calls a lower-indexed function and leaves a value of type t (0: nothing).
func (b *funcBuilder) call(depth int, t byte) bool {
	if b.idx == 0 {
		return false
	}
	f := b.rng().Intn(b.idx)
	if b.g.hasStart && f == b.g.startFunc {
		return false
	}
	ft := b.g.types[b.g.funcs[f].typ]
	b.args(ft, depth)
	b.op(0x10)
	b.u32(uint32(nImpFuncs + f))
	b.useResults(ft.results, t, depth)
	return true
}

func (b *funcBuilder) useResults(results []byte, t byte, depth int) {
	if t != 0 && len(results) > 0 && results[len(results)-1] == t {
		if len(results) == 1 {
			return
		}
		x, ok := b.localOf(t)
		if !ok {
			for range results {
				b.op(0x1a)
			}
			b.expr(t, depth+1)
			return
		}
		b.op(0x21)
		b.u32(x)
		for range results[:len(results)-1] {
			b.op(0x1a)
		}
		b.op(0x20)
		b.u32(x)
		return
	}
	for range results {
		b.op(0x1a)
	}
	if t != 0 {
		b.expr(t, depth+1)
	}
}

func (b *funcBuilder) callIndirect(depth int, t byte) bool {
	if b.idx == 0 {
		return false
	}
	f := b.rng().Intn(b.idx)
	if b.g.hasStart && f == b.g.startFunc {
		return false
	}
	ft := b.g.types[b.g.funcs[f].typ]
	b.args(ft, depth)
	b.op(0x41)
	b.s64(int64(f % tableSize)) // the table holds function i at i (mod its size)
	b.op(0x11)
	b.u32(uint32(b.g.funcs[f].typ))
	b.u32(0)
	b.useResults(ft.results, t, depth)
	return true
}

func (b *funcBuilder) stmts(depth int) {
	for k := b.rng().Intn(3); k > 0 && b.budget > 0; k-- {
		b.stmt(depth)
	}
}

// stmt appends instructions with no net effect on the stack.
func (b *funcBuilder) stmt(depth int) {
	r := b.rng()
	if depth >= maxDepth || b.budget <= 0 {
		return
	}
	switch r.Intn(16) {
	case 0, 1: // local.set
		t := b.g.randNum()
		if x, ok := b.localOf(t); ok {
			b.expr(t, depth+1)
			b.op(0x21)
			b.u32(x)
		}
	case 2: // global.set
		t := b.g.randNum()
		if x, ok := b.globalOf(t); ok {
			b.expr(t, depth+1)
			b.op(0x24)
			b.u32(x)
		}
	case 3: // store
		t := b.g.randNum()
		b.address(depth)
		b.expr(t, depth+1)
		switch t {
		case i32:
			b.op([]byte{0x36, 0x3a, 0x3b}[r.Intn(3)])
		case i64:
			b.op([]byte{0x37, 0x3c, 0x3d, 0x3e}[r.Intn(4)])
		case f32:
			b.op(0x38)
		case f64:
			b.op(0x39)
		}
		b.u32(0)
		b.u32(uint32(r.Intn(8)))
	case 4, 5:
		b.loopStmt(depth)
	case 6: // block with br_if out
		b.blockOpen(0x02, nil, nil)
		b.stmts(depth + 1)
		b.expr(i32, depth+1)
		b.op(0x0d)
		b.u32(0)
		b.stmts(depth + 1)
		b.blockEnd()
	case 7: // if without else
		b.expr(i32, depth+1)
		b.blockOpen(0x04, nil, nil)
		b.stmts(depth + 1)
		b.blockEnd()
	case 8: // br_table over nested blocks
		b.blockOpen(0x02, nil, nil)
		b.blockOpen(0x02, nil, nil)
		b.blockOpen(0x02, nil, nil)
		b.expr(i32, depth+1)
		b.op(0x0e)
		b.u32(3)
		for i := 0; i < 4; i++ {
			b.u32(uint32(r.Intn(3)))
		}
		b.blockEnd()
		b.stmts(depth + 1)
		b.blockEnd()
		b.stmts(depth + 1)
		b.blockEnd()
	case 9: // conditional return
		b.expr(i32, depth+1)
		b.blockOpen(0x04, nil, nil)
		for _, t := range b.t.results {
			b.expr(t, depth+1)
		}
		if r.Intn(2) == 0 {
			b.op(0x0f)
		} else { // br to the function label
			b.op(0x0c)
			b.u32(uint32(len(b.labels) - 1))
		}
		b.blockEnd()
	case 10: // call for effect
		if r.Intn(2) == 0 {
			b.call(depth, 0)
		} else {
			b.callIndirect(depth, 0)
		}
	case 11: // bulk memory
		switch r.Intn(4) {
		case 0: // memory.fill
			b.address(depth)
			b.expr(i32, depth+1)
			b.op(0x41)
			b.s64(int64(r.Intn(64)))
			b.op(0xfc)
			b.u32(11)
			b.out = append(b.out, 0)
		case 1: // memory.copy
			b.address(depth)
			b.address(depth)
			b.op(0x41)
			b.s64(int64(r.Intn(64)))
			b.op(0xfc)
			b.u32(10)
			b.out = append(b.out, 0, 0)
		case 2: // memory.init from the passive segment
			b.address(depth)
			b.op(0x41)
			b.s64(int64(r.Intn(4)))
			b.op(0x41)
			b.s64(int64(r.Intn(4)))
			b.op(0xfc)
			b.u32(8)
			b.u32(1)
			b.out = append(b.out, 0)
		default: // table.init from the passive segment (function 0 and null), or table.copy
			// behind a branch never taken: a copied slot could call a higher function
			copy := r.Intn(2) == 0
			if copy {
				b.op(0x41)
				b.s64(0)
				b.blockOpen(0x04, nil, nil)
			}
			b.op(0x41)
			b.s64(int64(r.Intn(8)))
			b.op(0x41)
			b.s64(0)
			b.op(0x41)
			b.s64(int64(r.Intn(3)))
			b.op(0xfc)
			if !copy {
				b.u32(12)
				b.u32(1)
				b.u32(0)
			} else {
				b.u32(14)
				b.u32(0)
				b.u32(0)
				b.blockEnd()
			}
		}
	case 12: // SIMD store
		if b.g.useSIMD {
			b.address(depth)
			b.vexpr(depth + 1)
			if r.Intn(2) == 0 {
				b.op(0xfd)
				b.u32(11)
				b.u32(0)
				b.u32(uint32(r.Intn(8)))
			} else {
				b.op(0xfd)
				b.u32(uint32(88 + r.Intn(4))) // store lane
				b.u32(0)
				b.u32(uint32(r.Intn(8)))
				b.out = append(b.out, byte(r.Intn(2)))
			}
		}
	case 13: // table.set / table.fill with ref.func
		b.op(0x41)
		b.s64(int64(r.Intn(tableSize)))
		b.op(0xd2)
		b.u32(uint32(nImpFuncs + r.Intn(len(b.g.funcs))))
		b.op(0x1a) // keep the table as built: only exercise ref.func
		b.op(0x1a)
	case 14: // drop an expression
		b.expr(b.g.randNum(), depth+1)
		b.op(0x1a)
	default: // nop, or unreachable behind a never-taken branch
		if r.Intn(4) == 0 {
			b.op(0x41)
			b.s64(0)
			b.blockOpen(0x04, nil, nil)
			b.op(0x00)
			b.blockEnd()
		} else {
			b.op(0x01)
		}
	}
}

// encode returns the module's binary.
func (g *genModule) encode() []byte {
	out := []byte("\x00asm\x01\x00\x00\x00")
	section := func(id byte, payload []byte) {
		out = append(out, id)
		out = appendU32(out, uint32(len(payload)))
		out = append(out, payload...)
	}
	var p []byte
	// imports before types: building a body may add block types
	imp := appendU32(nil, 2)
	imp = appendName(imp, "env")
	imp = appendName(imp, "h")
	imp = append(imp, 0x00, 0x00)
	imp = appendName(imp, "env")
	imp = appendName(imp, "g")
	imp = append(imp, 0x03, i32, 0x00)

	p = appendU32(nil, uint32(len(g.types)))
	for _, t := range g.types {
		p = append(p, 0x60)
		p = appendU32(p, uint32(len(t.params)))
		p = append(p, t.params...)
		p = appendU32(p, uint32(len(t.results)))
		p = append(p, t.results...)
	}
	section(1, p)
	section(2, imp)
	p = appendU32(nil, uint32(len(g.funcs)))
	for _, f := range g.funcs {
		p = appendU32(p, uint32(f.typ))
	}
	section(3, p)
	section(4, []byte{1, 0x70, 0x00, tableSize})
	section(5, []byte{1, 0x01, memPages, 4})
	p = appendU32(nil, uint32(len(g.globals)))
	for i, t := range g.globals {
		p = append(p, t, 1)
		switch {
		case i == len(g.globals)-1: // an i64 initialised from nothing special
			p = append(p, 0x42, 0x07, 0x0b)
		case t == i32 && i == len(g.globals)-2: // initialised from the imported global
			p = append(p, 0x23, 0x00, 0x0b)
		case t == i32:
			p = append(p, 0x41, 0x05, 0x0b)
		case t == i64:
			p = append(p, 0x42, 0x09, 0x0b)
		case t == f32:
			p = append(p, 0x43, 0, 0, 0x80, 0x3f, 0x0b)
		case t == f64:
			p = append(p, 0x44, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f, 0x0b)
		}
	}
	section(6, p)
	var exps [][]byte
	for i := range g.funcs {
		if g.hasStart && i == g.startFunc {
			continue
		}
		e := appendName(nil, "f"+itoa(i))
		e = append(e, 0x00)
		exps = append(exps, appendU32(e, uint32(nImpFuncs+i)))
	}
	exps = append(exps, append(appendName(nil, "memory"), 0x02, 0x00))
	for i := range g.globals {
		e := appendName(nil, "g"+itoa(i))
		e = append(e, 0x03)
		exps = append(exps, appendU32(e, uint32(nImpGlobals+i)))
	}
	p = appendU32(nil, uint32(len(exps)))
	for _, e := range exps {
		p = append(p, e...)
	}
	section(7, p)
	if g.hasStart {
		section(8, appendU32(nil, uint32(nImpFuncs+g.startFunc)))
	}
	// elements: active at 0 (function i at i mod 16), passive expressions, declarative
	p = appendU32(nil, 3)
	n := min(len(g.funcs), tableSize)
	p = append(p, 0x00, 0x41, 0x00, 0x0b)
	p = appendU32(p, uint32(n))
	for i := 0; i < n; i++ {
		p = appendU32(p, uint32(nImpFuncs+i))
	}
	p = append(p, 0x05, 0x70, 0x02, 0xd2)
	p = appendU32(p, uint32(nImpFuncs))
	p = append(p, 0x0b, 0xd0, 0x70, 0x0b)
	p = append(p, 0x03, 0x00)
	p = appendU32(p, uint32(len(g.funcs)))
	for i := range g.funcs {
		p = appendU32(p, uint32(nImpFuncs+i))
	}
	section(9, p)
	section(12, []byte{2})
	var code []byte
	code = appendU32(code, uint32(len(g.funcs)))
	for _, f := range g.funcs {
		var b []byte
		b = appendU32(b, uint32(len(f.locals)))
		for _, l := range f.locals {
			b = append(b, 1, l)
		}
		b = append(b, f.body...)
		code = appendU32(code, uint32(len(b)))
		code = append(code, b...)
	}
	section(10, code)
	data := appendU32(nil, 2)
	data = append(data, 0x00, 0x41, 0x10, 0x0b, 8, 1, 2, 3, 4, 5, 6, 7, 8)
	data = append(data, 0x01, 6, 'p', 'a', 's', 's', 'i', 'v')
	section(11, data)
	// name section: module, function and local names
	var names []byte
	sub := func(id byte, payload []byte) {
		names = append(names, id)
		names = appendU32(names, uint32(len(payload)))
		names = append(names, payload...)
	}
	sub(0, appendName(nil, "generated"))
	p = appendU32(nil, uint32(1+len(g.funcs)))
	p = appendU32(p, 0)
	p = appendName(p, "env.h")
	for i, f := range g.funcs {
		p = appendU32(p, uint32(nImpFuncs+i))
		p = appendName(p, f.name)
	}
	sub(1, p)
	p = appendU32(nil, uint32(len(g.funcs)))
	for i := range g.funcs {
		p = appendU32(p, uint32(nImpFuncs+i))
		p = appendU32(p, 1)
		p = appendU32(p, 0)
		p = appendName(p, "first")
	}
	sub(2, p)
	section(0, append(appendName(nil, "name"), names...))
	section(0, append(appendName(nil, "producers"), 0x00))
	return out
}

func appendName(b []byte, s string) []byte {
	b = appendU32(b, uint32(len(s)))
	return append(b, s...)
}
