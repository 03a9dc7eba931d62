// Command json_schema validates JSON records against the JSON Schema given in its config
// ({"schema": {...}}), with github.com/santhosh-tekuri/jsonschema/v6. Valid records pass; the others
// are rejected with reasons that name the failing JSON pointer, e.g. "/price: must be >= 0". See
// README.md.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"github.com/sluicehq/sluice/sdk/go/transform"
)

func main() {}

// schema is compiled once per instance at init and only read afterwards.
var schema *jsonschema.Schema

var printer = message.NewPrinter(language.English)

// maxLeaves caps how many failures one reason lists.
const maxLeaves = 8

const configSchema = `{"type":"object","required":["schema"],"additionalProperties":false,"properties":{
"schema":{"type":["object","boolean"]},"assert_format":{"type":"boolean"}}}`

func init() {
	transform.Register(transform.Meta{
		Name:         "json_schema",
		Version:      "1.0.0",
		Kinds:        []transform.Kind{transform.KindValidate},
		ConfigSchema: configSchema,
	}, transform.ProcessFunc(process), transform.OnInit(setup))
}

// noLoader refuses every external reference: a guest has no filesystem or network, and a schema
// must be self-contained.
type noLoader struct{}

func (noLoader) Load(url string) (any, error) {
	return nil, errors.New("external schema references are not supported: " + url)
}

func setup() error {
	var c struct {
		Schema       json.RawMessage `json:"schema"`
		AssertFormat bool            `json:"assert_format"`
	}
	if err := transform.Config(&c); err != nil {
		return err
	}
	if len(c.Schema) == 0 {
		return errors.New("config: schema: required")
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(c.Schema))
	if err != nil {
		return errors.New("config: schema: " + err.Error())
	}
	comp := jsonschema.NewCompiler()
	comp.DefaultDraft(jsonschema.Draft2020)
	comp.UseLoader(noLoader{})
	if c.AssertFormat {
		comp.AssertFormat()
	}
	const url = "sluice:///config/schema.json"
	if err := comp.AddResource(url, doc); err != nil {
		return errors.New("config: schema: " + err.Error())
	}
	s, err := comp.Compile(url)
	if err != nil {
		return errors.New("config: schema: " + err.Error())
	}
	schema = s
	return nil
}

func process(b *transform.Batch) error {
	for i := 0; i < b.Len(); i++ {
		v := b.Record(i).Value
		if !utf8.Valid(v) {
			b.Reject(i, transform.CodeInvalidInput, "not valid JSON")
			continue
		}
		inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(v))
		if err != nil {
			b.Reject(i, transform.CodeInvalidInput, "not valid JSON")
			continue
		}
		err = schema.Validate(inst)
		if err == nil {
			continue
		}
		var ve *jsonschema.ValidationError
		if !errors.As(err, &ve) {
			b.Reject(i, transform.CodeSchema, err.Error())
			continue
		}
		b.Reject(i, transform.CodeSchema, reason(ve))
	}
	return nil
}

type leaf struct{ ptr, msg string }

// reason lists the leaf failures, sorted by pointer so that the text does not depend on the
// validator's traversal order.
func reason(ve *jsonschema.ValidationError) string {
	ls := leaves(ve, nil)
	slices.SortStableFunc(ls, func(a, b leaf) int {
		if c := strings.Compare(a.ptr, b.ptr); c != 0 {
			return c
		}
		return strings.Compare(a.msg, b.msg)
	})
	ls = slices.Compact(ls)
	var sb strings.Builder
	for k, l := range ls {
		if k == maxLeaves {
			sb.WriteString("; and " + strconv.Itoa(len(ls)-k) + " more")
			break
		}
		if k > 0 {
			sb.WriteString("; ")
		}
		sb.WriteString(l.ptr + ": " + l.msg)
	}
	return sb.String()
}

func leaves(e *jsonschema.ValidationError, out []leaf) []leaf {
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
			out = append(out, leaf{child(at, m), "missing"})
		}
		return out
	case *kind.AdditionalProperties:
		for _, p := range k.Properties {
			out = append(out, leaf{child(at, p), "not allowed"})
		}
		return out
	}
	return append(out, leaf{display(at), message1(e.ErrorKind)})
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
