// Package jsontext cuts JSON text into values without decoding it, for the connectors that take
// records out of HTTP bodies: the elements of an array, the lines of NDJSON.
package jsontext

import "bytes"

// FirstByte returns the first byte of b that is not JSON whitespace, or 0.
func FirstByte(b []byte) byte {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		}
		return c
	}
	return 0
}

// TrimSpace returns b without leading and trailing whitespace, its capacity cut to its length so
// that appending to it never writes into the bytes that follow.
func TrimSpace(b []byte) []byte {
	b = bytes.TrimSpace(b)
	return b[:len(b):len(b)]
}

// SplitArray returns the elements of a JSON array as subslices of it. arr must be valid JSON
// (json.Valid); what SplitArray returns for anything else is unspecified.
func SplitArray(arr []byte) [][]byte {
	var out [][]byte
	depth, start := 0, -1
	inStr, esc := false, false
	for i, c := range arr {
		if inStr {
			switch {
			case esc:
				esc = false
			case c == '\\':
				esc = true
			case c == '"':
				inStr = false
			}
			continue
		}
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		case '"':
			inStr = true
		case '[', '{':
			depth++
			if depth == 1 {
				continue
			}
		case ']', '}':
			depth--
			if depth == 0 {
				if start >= 0 {
					out = append(out, TrimSpace(arr[start:i]))
				}
				return out
			}
		case ',':
			if depth == 1 {
				out = append(out, TrimSpace(arr[start:i]))
				start = -1
				continue
			}
		}
		if depth >= 1 && start < 0 {
			start = i
		}
	}
	return out
}

// Lines calls f with each non-blank line of b (without its line ending and surrounding
// whitespace) and its 1-based line number, stopping when f returns false.
func Lines(b []byte, f func(line []byte, n int) bool) {
	for n := 1; len(b) > 0; n++ {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		if line = TrimSpace(line); len(line) > 0 && !f(line, n) {
			return
		}
	}
}
