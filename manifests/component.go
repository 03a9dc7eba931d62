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
		}
	}
	return Diagnostic{Pos: c.Pos, Message: c.Redact(fmt.Sprintf("%s: %v", label, err))}
}

// fieldPos finds the position of a config field, falling back to its closest enclosing field and
// then to the component.
func (c *Component) fieldPos(field string) Pos {
	for f := field; f != ""; {
		if p, ok := c.Fields[f]; ok {
			return p
		}
		i := strings.LastIndexAny(f, ".[")
		if i < 0 {
			break
		}
		f = f[:i]
	}
	return c.Pos
}
