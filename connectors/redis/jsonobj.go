package redis

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/sluicehq/sluice/sdk/go/template"
)

var errNotObject = errors.New("value is not a JSON object")

// appendFields appends to arena, for each top-level member of the JSON object v, its name and its
// value as Redis stores it (a string without its quotes, anything else as compact JSON text), and
// calls fn with the two appended slices. A value that is not a JSON object, or one without
// members, is an error and fn is not called.
func appendFields(arena, v []byte, fn func(name, val []byte)) ([]byte, error) {
	if !json.Valid(v) {
		return arena, fmt.Errorf("%w: not valid JSON", errNotObject)
	}
	i := skipSpace(v, 0)
	if v[i] != '{' {
		return arena, fmt.Errorf("%w: a JSON %s", errNotObject, jsonKind(v[i]))
	}
	i = skipSpace(v, i+1)
	if v[i] == '}' {
		return arena, fmt.Errorf("%w with fields: it is empty", errNotObject)
	}
	for {
		end := skipValue(v, i)
		nameStart := len(arena)
		arena, _ = template.AppendText(arena, v[i:end]) // v is valid JSON
		i = skipSpace(v, skipSpace(v, end)+1)           // past the colon
		end = skipValue(v, i)
		valStart := len(arena)
		arena, _ = template.AppendText(arena, v[i:end])
		fn(arena[nameStart:valStart:valStart], arena[valStart:len(arena):len(arena)])
		i = skipSpace(v, end)
		if v[i] == '}' {
			return arena, nil
		}
		i = skipSpace(v, i+1) // past the comma
	}
}

func skipSpace(v []byte, i int) int {
	for i < len(v) && (v[i] == ' ' || v[i] == '\t' || v[i] == '\n' || v[i] == '\r') {
		i++
	}
	return i
}

// skipValue returns the end of the valid JSON value starting at i.
func skipValue(v []byte, i int) int {
	switch v[i] {
	case '"':
		return skipString(v, i)
	case '{', '[':
		depth := 0
		for ; i < len(v); i++ {
			switch v[i] {
			case '"':
				i = skipString(v, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return i
	}
	for ; i < len(v); i++ {
		switch v[i] {
		case ',', '}', ']', ' ', '\t', '\r', '\n':
			return i
		}
	}
	return i
}

// skipString returns the index after the closing quote of the string starting at i.
func skipString(v []byte, i int) int {
	for i++; i < len(v); i++ {
		switch v[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return i
}

func jsonKind(c byte) string {
	switch c {
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	}
	return "number"
}
