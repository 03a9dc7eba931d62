package manifests

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// hasRef reports whether s holds a reference or an escape: anything starting with ${ or $${.
func hasRef(s string) bool {
	return strings.Contains(s, "${")
}

// expand resolves ${env:NAME} and ${file:PATH} references and $${ escapes in the scalar n. Any
// other ${...} is an error: a forgotten scheme (${NAME}) would otherwise be taken as literal
// text. Resolved values of references in secret fields go to col. ok is false when a reference
// could not be resolved (already reported).
func (d *docDecoder) expand(n *yaml.Node, secret bool, col *collector) (out string, refs bool, ok bool) {
	s := n.Value
	if !hasRef(s) {
		return s, false, true
	}
	var b strings.Builder
	ok = true
	runes := 0 // runes in s[:i], for the column of a reference
	tooLarge := func() bool {
		if b.Len() <= maxFileBytes {
			return false
		}
		d.errorf(n, "split the value, or read it from one ${file:PATH}", "value larger than %s after resolving references", FormatByteSize(maxFileBytes))
		return true
	}
	for i := 0; i < len(s); {
		if tooLarge() {
			return "", true, false
		}
		switch {
		case strings.HasPrefix(s[i:], "$${"):
			b.WriteString("${")
			i += 3
			runes += 3
		case strings.HasPrefix(s[i:], "${"):
			end := strings.IndexByte(s[i:], '}')
			p := d.refPos(n, runes)
			if end < 0 {
				if secret {
					d.report(p, "close it with }, or write $${ for a literal ${", "unterminated reference in a secret value")
				} else {
					d.report(p, "close it with }, or write $${ for a literal ${", "unterminated reference %s", quoteValue(s[i:], true))
				}
				return "", true, false
			}
			ref := s[i : i+end+1]
			if !strings.HasPrefix(ref, "${env:") && !strings.HasPrefix(ref, "${file:") {
				d.unknownRef(p, ref, secret)
				ok = false
				i += end + 1
				runes += utf8.RuneCountInString(ref)
				continue
			}
			v, good := d.lookupRef(p, ref)
			if good {
				refs = true
				if secret {
					col.secret(v)
				}
				b.WriteString(v)
			} else {
				ok = false
			}
			i += end + 1
			runes += utf8.RuneCountInString(ref)
		default:
			if s[i]&0xC0 != 0x80 { // not a UTF-8 continuation byte
				runes++
			}
			b.WriteByte(s[i])
			i++
		}
	}
	if tooLarge() {
		return "", true, false
	}
	return b.String(), true, ok
}

// unknownRef reports a ${...} that is neither ${env:...} nor ${file:...}, suggesting the reference
// it most likely means.
func (d *docDecoder) unknownRef(p Pos, ref string, secret bool) {
	body := ref[2 : len(ref)-1]
	literal := "$$" + ref[1:]
	if secret {
		d.report(p, "use ${env:NAME} or ${file:PATH}, or write $${ for a literal ${",
			"a secret value holds a ${...} that is not a ${env:NAME} or ${file:PATH} reference")
		return
	}
	var hint string
	lower := strings.ToLower(body)
	switch {
	case validEnvName(body):
		hint = fmt.Sprintf("did you mean ${env:%s}? Write %s for the text itself", body, literal)
	case strings.HasPrefix(lower, "env:") || strings.HasPrefix(lower, "file:"):
		scheme, rest, _ := strings.Cut(body, ":")
		hint = fmt.Sprintf("did you mean ${%s:%s}? Schemes are lowercase", strings.ToLower(scheme), rest)
	case strings.HasPrefix(lower, "env.") || strings.HasPrefix(lower, "file.") || strings.HasPrefix(lower, "env_"):
		scheme, rest := body[:strings.IndexAny(body, "._")], body[strings.IndexAny(body, "._")+1:]
		hint = fmt.Sprintf("did you mean ${%s:%s}?", strings.ToLower(scheme), rest)
	default:
		hint = fmt.Sprintf("write ${env:NAME} or ${file:PATH}, or %s for the text itself", literal)
	}
	d.report(p, hint, "%s is not a reference: references are ${env:NAME} and ${file:PATH}", quoteValue(ref, false))
}

// refPos is the position of the reference starting at rune col of a scalar: exact for one-line
// plain scalars, the scalar's own position otherwise.
func (d *docDecoder) refPos(n *yaml.Node, col int) Pos {
	p := d.pos(n)
	if n.Style == 0 && !strings.Contains(n.Value, "\n") {
		p.Col += col
	}
	return p
}

func (d *docDecoder) lookupRef(p Pos, ref string) (string, bool) {
	body := ref[2 : len(ref)-1]
	switch {
	case strings.HasPrefix(body, "env:"):
		name := body[len("env:"):]
		if !validEnvName(name) {
			d.report(p, "write ${env:NAME} with NAME made of letters, digits and _", "%s: invalid environment variable name %q", ref, name)
			return "", false
		}
		v, ok := d.l.opts.LookupEnv(name)
		if !ok {
			d.report(p, "export it, or use ${file:PATH}", "%s: environment variable %s is not set", ref, name)
			return "", false
		}
		return v, true
	default:
		name := body[len("file:"):]
		if name == "" {
			d.report(p, "write ${file:PATH}, PATH relative to the manifest's directory", "%s: empty file path", ref)
			return "", false
		}
		path := name
		if !filepath.IsAbs(path) {
			path = filepath.Join(d.dir, path)
		}
		if s, ok := d.files[path]; ok {
			return s, true
		}
		data, err := readSmallFile(path)
		if err != nil {
			d.report(p, fmt.Sprintf("${file:PATH} is relative to the manifest's directory (%s)", d.dir), "%s: cannot read %s: %v", ref, path, err)
			return "", false
		}
		s := string(data)
		if strings.HasSuffix(s, "\r\n") {
			s = s[:len(s)-2]
		} else if strings.HasSuffix(s, "\n") {
			s = s[:len(s)-1]
		}
		if d.files == nil {
			d.files = map[string]string{}
		}
		d.files[path] = s
		return s, true
	}
}

func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		if !(r == '_' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// readSmallFile reads a regular file of at most maxFileBytes. Errors carry no path (the caller
// names it).
func readSmallFile(path string) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, unwrapPathError(err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("not a regular file")
	}
	if st.Size() > maxFileBytes {
		return nil, fmt.Errorf("larger than %s", FormatByteSize(maxFileBytes))
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, unwrapPathError(err)
	}
	return data, nil
}

func unwrapPathError(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}
