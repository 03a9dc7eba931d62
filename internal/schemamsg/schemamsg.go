// Package schemamsg phrases JSON Schema validation errors (github.com/santhosh-tekuri/jsonschema/v6)
// for people: "/max_price: must be > 0" rather than the library's "exclusiveMinimum: got 0, want 0".
// The WASM host uses it for transform configs, the json_schema transform for records.
package schemamsg

import (
	"encoding/json"
	"math/big"
	"slices"
	"strconv"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

var printer = message.NewPrinter(language.English)

// Leaf is one failing value: its JSON pointer ("" for the root) and what is wrong with it.
type Leaf struct{ Pointer, Message string }

// Leaves lists the failures of ve, one per failing value (a missing or unexpected key is named by
// its own pointer), sorted by pointer so that the order does not depend on the validator's
// traversal.
func Leaves(ve *jsonschema.ValidationError) []Leaf {
	ls := leaves(ve, nil)
	slices.SortStableFunc(ls, func(a, b Leaf) int {
		if c := strings.Compare(a.Pointer, b.Pointer); c != 0 {
			return c
		}
		return strings.Compare(a.Message, b.Message)
	})
	return slices.Compact(ls)
}

// Reason phrases a validation error as "POINTER: must ..." for each failing value, e.g.
// "/price: must be >= 0; /name: missing" ("(root)" names the root), listing at most max failures
// ("; and N more").
func Reason(ve *jsonschema.ValidationError, max int) string {
	ls := Leaves(ve)
	var sb strings.Builder
	for k, l := range ls {
		if k == max {
			sb.WriteString("; and " + strconv.Itoa(len(ls)-k) + " more")
			break
		}
		if k > 0 {
			sb.WriteString("; ")
		}
		sb.WriteString(display(l.Pointer) + ": " + l.Message)
	}
	return sb.String()
}

func leaves(e *jsonschema.ValidationError, out []Leaf) []Leaf {
	if len(e.Causes) > 0 {
		for _, c := range e.Causes {
			out = leaves(c, out)
		}
		return out
	}
	at := pointer(e.InstanceLocation)
	switch k := e.ErrorKind.(type) {
	case *kind.Required:
		for _, m := range k.Missing {
			out = append(out, Leaf{child(at, m), "missing"})
		}
		return out
	case *kind.AdditionalProperties:
		for _, p := range k.Properties {
			out = append(out, Leaf{child(at, p), "not allowed"})
		}
		return out
	}
	return append(out, Leaf{at, message1(e.ErrorKind)})
}

// message1 phrases one failure as "must ...".
func message1(k jsonschema.ErrorKind) string {
	switch k := k.(type) {
	case *kind.Type:
		return "must be " + strings.Join(k.Want, " or ") + ", not " + k.Got
	case *kind.Minimum:
		return "must be >= " + num(k.Want)
	case *kind.Maximum:
		return "must be <= " + num(k.Want)
	case *kind.ExclusiveMinimum:
		return "must be > " + num(k.Want)
	case *kind.ExclusiveMaximum:
		return "must be < " + num(k.Want)
	case *kind.MultipleOf:
		return "must be a multiple of " + num(k.Want)
	case *kind.MinLength:
		return "must be at least " + strconv.Itoa(k.Want) + " characters long"
	case *kind.MaxLength:
		return "must be at most " + strconv.Itoa(k.Want) + " characters long"
	case *kind.MinItems:
		return "must have at least " + strconv.Itoa(k.Want) + " items"
	case *kind.MaxItems:
		return "must have at most " + strconv.Itoa(k.Want) + " items"
	case *kind.MinProperties:
		return "must have at least " + strconv.Itoa(k.Want) + " properties"
	case *kind.MaxProperties:
		return "must have at most " + strconv.Itoa(k.Want) + " properties"
	case *kind.Pattern:
		return "must match the pattern " + strconv.Quote(k.Want)
	case *kind.Format:
		return "must be a valid " + k.Want
	case *kind.Enum:
		return "must be one of " + jsonText(k.Want)
	case *kind.Const:
		return "must be " + jsonText(k.Want)
	case *kind.FalseSchema:
		return "not allowed"
	}
	return k.LocalizedString(printer)
}

func num(r *big.Rat) string {
	if r.IsInt() {
		return r.Num().String()
	}
	f, _ := r.Float64()
	return strconv.FormatFloat(f, 'g', -1, 64)
}

func jsonText(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return "?"
	}
	return string(b)
}

// pointer renders an instance location as an RFC 6901 JSON pointer.
func pointer(loc []string) string {
	var sb strings.Builder
	for _, s := range loc {
		sb.WriteByte('/')
		sb.WriteString(strings.NewReplacer("~", "~0", "/", "~1").Replace(s))
	}
	return sb.String()
}

func child(ptr, name string) string {
	return ptr + "/" + strings.NewReplacer("~", "~0", "/", "~1").Replace(name)
}

// display names the root "(root)", as the empty pointer would read as nothing.
func display(ptr string) string {
	if ptr == "" {
		return "(root)"
	}
	return ptr
}
