package template

// Field is the outcome of one path of LookupAll: what Lookup returns for it.
type Field struct {
	Raw  []byte
	OK   bool
	Err  error
	done bool
}

// LookupAll looks up several paths in one document and sets out[k] (out is as long as paths) to
// what Lookup(doc, paths[k]) returns, raw text, ok and error alike. When the document is an
// object and every path is one member name (the key and the time of a record, say), it reads the
// object's members once for all the paths, up to the last one it finds, instead of once per
// path; otherwise it calls Lookup for each.
func LookupAll(doc []byte, paths [][]string, out []Field) {
	out = out[:len(paths)]
	clear(out)
	s := scanner{b: doc}
	s.ws()
	simple := s.i < len(s.b) && s.b[s.i] == '{'
	for _, p := range paths {
		simple = simple && len(p) == 1
	}
	if !simple {
		for k, p := range paths {
			out[k].Raw, out[k].OK, out[k].Err = Lookup(doc, p)
		}
		return
	}
	// The steps of scanner.member, for every path still looked for at once: a path found gets
	// the outcome of its value, as Lookup does; one still looked for when the scan fails gets
	// the error, at the same byte, that Lookup would have met on its own pass.
	pending := len(paths)
	fail := func(err error) {
		for k := range out {
			if !out[k].done {
				out[k].Err = err
			}
		}
	}
	s.i++ // '{'
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == '}' {
		return
	}
	for {
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != '"' {
			fail(s.fail("expected a member name"))
			return
		}
		kstart := s.i
		kend, err := s.str()
		if err != nil {
			fail(err)
			return
		}
		s.i = kend
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			fail(s.fail(`expected ":"`))
			return
		}
		s.i++
		s.ws()
		start := s.i
		end, err := s.value()
		if err != nil {
			fail(err)
			return
		}
		name := s.b[kstart:kend]
		for k, p := range paths {
			if out[k].done || !keyEquals(name, p[0]) {
				continue
			}
			out[k].done = true
			pending--
			if raw := doc[start:end]; string(raw) != "null" {
				out[k].Raw, out[k].OK = raw, true
			}
		}
		if pending == 0 {
			return
		}
		s.i = end
		s.ws()
		if s.i >= len(s.b) {
			fail(s.fail("unexpected end inside an object"))
			return
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case '}':
			return
		default:
			fail(s.fail(`expected "," or "}"`))
			return
		}
	}
}
