package meter

import "strings"

// write assembles the output module.
func (m *module) write() []byte {
	out := make([]byte, 0, len(m.bin)+len(m.bin)/4+256)
	out = append(out, m.bin[:8]...)
	have := map[byte]bool{}
	for _, s := range m.sections {
		have[s.id] = true
	}
	// Sections the rewrite adds to and the module may lack.
	added := []byte{1, 2, 6, 7}
	if len(m.newTypes) == 0 {
		added = added[1:]
	}
	done := map[byte]bool{}
	missing := func(before int) {
		for _, id := range added {
			if !have[id] && !done[id] && order[id] < before {
				out = m.writeSection(out, section{id: id})
				done[id] = true
			}
		}
	}
	for _, s := range m.sections {
		if s.id != 0 {
			missing(order[s.id])
		}
		out = m.writeSection(out, s)
	}
	missing(1 << 30)
	return out
}

// writeSection appends section s, rewritten where the rewrite changes it; a section with no
// payload (start == end == 0) is one the module lacks.
func (m *module) writeSection(out []byte, s section) []byte {
	r := &reader{b: m.bin[:s.end], p: s.start}
	body := func(f func()) {
		out = append(out, s.id)
		var at int
		out, at = reserveU32(out)
		n := len(out)
		f()
		putU32(out, at, uint32(len(out)-n))
	}
	count := func() uint32 {
		if s.end == 0 {
			return 0
		}
		return r.count()
	}
	switch s.id {
	case 0:
		nr := *r
		nr.name()
		switch {
		case strings.HasPrefix(s.name, ".debug_"):
			return out // the rewrite moves code: DWARF would lie
		case s.name == "name":
			if payload, ok := m.names(m.bin[nr.p:s.end]); ok {
				body(func() {
					out = appendName(out, s.name)
					out = append(out, payload...)
				})
				return out
			}
		}
	case 1:
		body(func() {
			n := count()
			out = appendU32(out, n+uint32(len(m.newTypes)))
			out = append(out, m.bin[r.p:s.end]...)
			for _, t := range m.newTypes {
				out = append(out, 0x60)
				out = appendU32(out, uint32(len(t.params)))
				out = append(out, t.params...)
				out = appendU32(out, uint32(len(t.results)))
				out = append(out, t.results...)
			}
		})
		return out
	case 2:
		body(func() {
			n := count()
			out = appendU32(out, n+2)
			out = append(out, m.bin[r.p:s.end]...)
			for _, imp := range []struct {
				name string
				typ  uint32
			}{{RefillName, m.refillType}, {GrowName, m.growType}} {
				out = appendName(out, ImportModule)
				out = appendName(out, imp.name)
				out = append(out, 0x00)
				out = appendU32(out, imp.typ)
			}
		})
		return out
	case 6:
		body(func() {
			n := count()
			out = appendU32(out, n+1)
			for i := uint32(0); i < n; i++ {
				start := r.p
				globalType(r)
				out = append(out, m.bin[start:r.p]...)
				m.constExpr(r, &out)
			}
			out = append(out, 0x7e, 0x01, 0x42, 0x00, 0x0b) // (mut i64) (i64.const 0)
		})
		return out
	case 7:
		body(func() {
			n := count()
			out = appendU32(out, n+1)
			for i := uint32(0); i < n; i++ {
				name := r.name()
				if name == FuelExport {
					r.fail("the module exports %q, a name reserved for the host", FuelExport)
				}
				out = appendName(out, name)
				kind := r.byte()
				x := r.u32()
				switch kind {
				case 0:
					x = m.fn(r, x)
				case 1:
					if x >= m.nTables {
						r.fail("table index %d out of range", x)
					}
				case 2:
					if x >= m.nMems {
						r.fail("memory index %d out of range", x)
					}
				case 3:
					m.global(r, x)
				default:
					r.fail("unsupported export kind %#x", kind)
				}
				out = append(out, kind)
				out = appendU32(out, x)
			}
			if !r.done() {
				r.fail("%d bytes left at the end of the export section", len(r.b)-r.p)
			}
			out = appendName(out, FuelExport)
			out = append(out, 0x03)
			out = appendU32(out, m.nGlobals)
		})
		return out
	case 8:
		body(func() {
			out = appendU32(out, m.fn(r, r.u32()))
			if !r.done() {
				r.fail("bytes left at the end of the start section")
			}
		})
		return out
	case 9:
		body(func() { m.elements(r, &out) })
		return out
	case 10:
		body(func() {
			r.u32()
			out = appendU32(out, uint32(len(m.funcs)))
			for i := range m.funcs {
				var at int
				out, at = reserveU32(out)
				n := len(out)
				out = m.writeBody(i, out)
				putU32(out, at, uint32(len(out)-n))
			}
		})
		return out
	case 11:
		m.checkData(r)
	case 12:
		r.u32()
		if !r.done() {
			r.fail("bytes left at the end of the data count section")
		}
	}
	// unchanged
	out = append(out, s.id)
	out = appendU32(out, uint32(s.end-s.start))
	return append(out, m.bin[s.start:s.end]...)
}

// elements rewrites the element section: function indices, in vectors or in expressions, move.
func (m *module) elements(r *reader, out *[]byte) {
	n := r.count()
	*out = appendU32(*out, n)
	funcs := func() {
		k := r.count()
		*out = appendU32(*out, k)
		for i := uint32(0); i < k; i++ {
			x := r.u32()
			m.refFunc(x)
			*out = appendU32(*out, m.fn(r, x))
		}
	}
	exprs := func() {
		k := r.count()
		*out = appendU32(*out, k)
		for i := uint32(0); i < k; i++ {
			m.constExpr(r, out)
		}
	}
	table := func() {
		x := r.u32()
		if x >= m.nTables {
			r.fail("table index %d out of range", x)
		}
		*out = appendU32(*out, x)
	}
	elemKind := func() {
		if k := r.byte(); k != 0 {
			r.p--
			r.fail("unsupported element kind %#x", k)
		}
		*out = append(*out, 0)
	}
	refT := func() {
		start := r.p
		refType(r)
		*out = append(*out, r.b[start:r.p]...)
	}
	for i := uint32(0); i < n; i++ {
		flags := r.u32()
		*out = appendU32(*out, flags)
		switch flags {
		case 0:
			m.constExpr(r, out)
			funcs()
		case 1, 3:
			elemKind()
			funcs()
		case 2:
			table()
			m.constExpr(r, out)
			elemKind()
			funcs()
		case 4:
			m.constExpr(r, out)
			exprs()
		case 5, 7:
			refT()
			exprs()
		case 6:
			table()
			m.constExpr(r, out)
			refT()
			exprs()
		default:
			r.fail("unsupported element segment flags %d", flags)
		}
	}
	if !r.done() {
		r.fail("%d bytes left at the end of the element section", len(r.b)-r.p)
	}
}

// checkData reads the data section for the global indices of its offsets.
func (m *module) checkData(r *reader) {
	n := r.count()
	for i := uint32(0); i < n; i++ {
		switch flags := r.u32(); flags {
		case 0:
			m.constExpr(r, nil)
		case 1:
		case 2:
			r.u32()
			m.constExpr(r, nil)
		default:
			r.fail("unsupported data segment flags %d", flags)
		}
		r.bytes(int(r.u32()))
	}
	if !r.done() {
		r.fail("%d bytes left at the end of the data section", len(r.b)-r.p)
	}
}

// names rewrites the name section: function indices move in the function, local and label names.
// A name section it cannot read is kept as it is (false): the runtime then refuses or ignores it
// exactly as it would the original.
func (m *module) names(payload []byte) (out []byte, ok bool) {
	defer func() {
		if r := recover(); r != nil {
			if _, isErr := r.(*Error); !isErr {
				panic(r)
			}
			out, ok = nil, false
		}
	}()
	r := &reader{b: payload}
	shift := func(x uint32) uint32 {
		if x >= m.nImpFuncs && x < m.nFuncs() {
			return x + 2
		}
		return x
	}
	nameMap := func(moveIdx bool) {
		n := r.count()
		out = appendU32(out, n)
		for i := uint32(0); i < n; i++ {
			x := r.u32()
			if moveIdx {
				x = shift(x)
			}
			out = appendU32(out, x)
			out = appendName(out, r.name())
		}
	}
	for !r.done() {
		id := r.byte()
		size := r.u32()
		end := r.p + int(size)
		if end > len(r.b) {
			r.fail("name subsection too long")
		}
		out = append(out, id)
		var at int
		out, at = reserveU32(out)
		start := len(out)
		switch id {
		case 1:
			nameMap(true)
		case 2, 3:
			n := r.count()
			out = appendU32(out, n)
			for i := uint32(0); i < n; i++ {
				out = appendU32(out, shift(r.u32()))
				nameMap(false)
			}
		default:
			out = append(out, r.bytes(int(size))...)
		}
		if r.p != end {
			r.fail("name subsection %d has the wrong size", id)
		}
		putU32(out, at, uint32(len(out)-start))
	}
	return out, true
}
