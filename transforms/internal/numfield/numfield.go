// Package numfield reads one number out of JSON records for the aggregate modules (stats,
// anomaly): the value at a dotted member path, as a JSON number or a string holding one, with the
// reject reasons of the first-party transforms (code 1 for a record that is not a JSON object,
// 2 for a field missing, duplicated or not a number, 3 for a number out of a double's range).
package numfield

import (
	"errors"
	"math"
	"strconv"
	"strings"

	"github.com/sluicehq/sluice/sdk/go/aggregate"
	"github.com/sluicehq/sluice/transforms/internal/rawjson"
)

// Errors that do not depend on the path.
var (
	ErrNotJSON   = &aggregate.RejectError{Code: aggregate.CodeInvalidInput, Reason: "not valid JSON"}
	ErrNotObject = &aggregate.RejectError{Code: aggregate.CodeInvalidInput, Reason: "not a JSON object"}
)

// Field is a dotted member path ("price", "quote.bid") with its reject errors, built once at init
// so that a rejected record costs no allocation.
type Field struct {
	Name  string
	path  []string
	spans []rawjson.Span // reused per record

	missing, duplicate, notNumber, outOfRange *aggregate.RejectError
}

// New parses a dotted path: member names separated by dots, none empty.
func New(name string) (*Field, error) {
	if name == "" {
		return nil, errors.New("field: must not be empty")
	}
	p := strings.Split(name, ".")
	for _, s := range p {
		if s == "" {
			return nil, errors.New("field: " + strconv.Quote(name) + ": empty path segment")
		}
	}
	rej := func(code aggregate.Code, what string) *aggregate.RejectError {
		return &aggregate.RejectError{Code: code, Reason: name + ": " + what}
	}
	return &Field{
		Name:       name,
		path:       p,
		missing:    rej(aggregate.CodeSchema, "missing"),
		duplicate:  rej(aggregate.CodeSchema, "duplicate key"),
		notNumber:  rej(aggregate.CodeSchema, "must be a number or a string holding one"),
		outOfRange: rej(aggregate.CodeOutOfRange, "out of the range of a double"),
	}, nil
}

// Number returns the field's value in the JSON record value: a JSON number, or a string whose
// whole text is a JSON number ("12.5", "-3e2"). The error is a *aggregate.RejectError.
func (f *Field) Number(value []byte) (float64, error) {
	if !rawjson.Valid(value) {
		return 0, ErrNotJSON
	}
	doc, _ := rawjson.Trim(value)
	if rawjson.KindOf(doc) != rawjson.Object {
		return 0, ErrNotObject
	}
	f.spans = rawjson.FindAll(doc, f.path, f.spans[:0])
	switch len(f.spans) {
	case 0:
		return 0, f.missing
	case 1:
	default:
		return 0, f.duplicate
	}
	v := doc[f.spans[0].Start:f.spans[0].End]
	var text string
	switch rawjson.KindOf(v) {
	case rawjson.Number:
		text = string(v)
	case rawjson.String:
		s, ok := rawjson.Unquote(v)
		if !ok || !IsNumber(s) {
			return 0, f.notNumber
		}
		text = s
	default:
		return 0, f.notNumber
	}
	x, err := strconv.ParseFloat(text, 64)
	if err != nil || math.IsInf(x, 0) || math.IsNaN(x) {
		return 0, f.outOfRange
	}
	return x, nil
}

// IsNumber reports whether s is one JSON number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func IsNumber(s string) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	digits := func() int {
		d := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		return i - d
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		digits()
	default:
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(s)
}

// AppendFloat appends v in its shortest form (strconv 'g', -1), or null when v is not finite
// (JSON has no NaN or infinity).
func AppendFloat(dst []byte, v float64) []byte {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return append(dst, "null"...)
	}
	return strconv.AppendFloat(dst, v, 'g', -1, 64)
}

// AppendKey appends a slot key as a JSON string (invalid UTF-8 replaced by U+FFFD), or null for a
// null key.
func AppendKey(dst []byte, s *aggregate.Slot) []byte {
	if s.KeyNull {
		return append(dst, "null"...)
	}
	return rawjson.AppendString(dst, string(s.Key))
}
