package manifests

import (
	"errors"
	"fmt"
	"strings"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

// Redact hides the component's secret values in s (see the package-level Redact).
func (c *Component) Redact(s string) string { return Redact(s, c.Secrets) }

// ErrorDiagnostic turns an error returned by the component's constructor into a Diagnostic.
// label names the component in the message ("source", `sink "lake"`, "dead_letter"). A
// *connector.ConfigError anywhere in err's chain is placed at its field's key in the manifest
// (Field may be dotted for nested fields: "tls.cert"); a field the manifest does not set (a default)
// or any other error is placed at the component. Secret values are redacted from the message.
func (c *Component) ErrorDiagnostic(label string, err error) Diagnostic {
	var ce *connector.ConfigError
	if errors.As(err, &ce) {
		return Diagnostic{
			Pos:     c.fieldPos(ce.Field),
			Message: c.Redact(fmt.Sprintf("%s: config.%s: %s", label, ce.Field, ce.Msg)),
			Hint:    c.Redact(ce.Hint),
		}
	}
	return Diagnostic{Pos: c.Pos, Message: c.Redact(fmt.Sprintf("%s: %v", label, err))}
}

// fieldPos finds the position of a config field, falling back to its closest enclosing field and
// then to the component.
func (c *Component) fieldPos(field string) Pos {
	return closestField(c.Fields, field, c.Pos)
}

// closestField looks field up in fields, then its enclosing fields ("a.b[2]" → "a.b" → "a"),
// and returns def when none is there.
func closestField(fields map[string]Pos, field string, def Pos) Pos {
	for f := field; f != ""; {
		if p, ok := fields[f]; ok {
			return p
		}
		i := strings.LastIndexAny(f, ".[")
		if i < 0 {
			break
		}
		f = f[:i]
	}
	return def
}

// FieldError is a problem with one setting of a manifest entry, found by a check outside the
// loader (a module's config schema, the host's limits). Field is the setting's path under the
// entry: "wasm", "sha256", "limits.memory", "config", "config.max_price", "config.fields[0]" (see
// ConfigField), the same in an aggregate stage, whose module settings are under aggregate:, or
// one of the stage's own ("aggregate.window.session"). The loader places it at that key of the
// manifest.
type FieldError struct {
	Field string
	Msg   string
	// Hint says how to fix it; may be empty.
	Hint string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// ConfigField turns a JSON pointer into a transform's config ("/fields/0/name") into the field
// path Transform.Fields uses ("config.fields[0].name"). A pointer token of digits is read as a
// list index.
func ConfigField(pointer string) string {
	var b strings.Builder
	b.WriteString("config")
	if pointer == "" || pointer == "/" {
		return b.String()
	}
	for _, tok := range strings.Split(strings.TrimPrefix(pointer, "/"), "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		if tok != "" && strings.Trim(tok, "0123456789") == "" {
			b.WriteString("[" + tok + "]")
		} else {
			b.WriteString("." + tok)
		}
	}
	return b.String()
}

// diagnostics turns an error of the CheckModule hook into diagnostics: each *FieldError in it
// (errors.Join may hold several) at its field, anything else at the wasm: value. In an aggregate
// stage, the messages name the module's settings by where the manifest writes them
// ("aggregate.config.field").
func (t *Transform) diagnostics(label string, err error) []Diagnostic {
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	var out []Diagnostic
	for _, e := range errs {
		var fe *FieldError
		if errors.As(e, &fe) {
			name := fe.Field
			if t.Aggregate != nil && name != "aggregate" && !strings.HasPrefix(name, "aggregate.") {
				name = "aggregate." + name
			}
			out = append(out, Diagnostic{Pos: t.fieldPos(fe.Field), Message: fmt.Sprintf("%s: %s: %s", label, name, fe.Msg), Hint: fe.Hint})
			continue
		}
		out = append(out, Diagnostic{Pos: t.WasmPos, Message: fmt.Sprintf("%s: %v", label, e)})
	}
	return out
}

// fieldPos finds the position of a transform setting, falling back to its closest enclosing
// setting and then to the transform.
func (t *Transform) fieldPos(field string) Pos {
	return closestField(t.Fields, field, t.Pos)
}
