package manifests

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

// scalarIn is a scalar being decoded as a field: its node, its text with references resolved,
// and how to report a problem with it.
type scalarIn struct {
	d      *docDecoder
	n      *yaml.Node
	f      connector.Field
	l      loc
	secret bool
	tag    string // the node's YAML tag (!!str, !!int, ...)
	text   string // the value, references resolved
	refs   bool   // the value came from references
}

// quoted reports a quoted (or otherwise string-tagged) scalar written in the manifest itself: a
// quoted number where a number is expected is refused, with a hint, unless it came from a
// reference (references are always strings).
func (c *scalarIn) quoted() bool { return c.tag == "!!str" && !c.refs }

// got describes the value for messages, naming the reference it came from.
func (c *scalarIn) got() string {
	switch {
	case c.secret:
		return "a secret value"
	case c.refs:
		return fmt.Sprintf("%s (from %s)", quoteValue(c.text, true), quoteValue(c.n.Value, false))
	}
	return quoteValue(c.n.Value, c.tag == "!!str")
}

// bad reports "expected NOUN, got VALUE" with the hint (or the type's own).
func (c *scalarIn) bad(hint string) (any, bool) {
	ft := typeOf(c.f.Type)
	if hint == "" || c.secret && strings.Contains(hint, c.n.Value) {
		hint = ft.hint
		if c.f.Type == connector.TypeString && c.secret {
			hint = "quote it"
		}
	}
	c.d.errorf(c.n, hint, "%s: expected %s, got %s", c.l.at(), ft.noun, c.got())
	return nil, false
}

// failed reports a parse error of the value's text.
func (c *scalarIn) failed(err error) (any, bool) {
	if c.secret {
		return c.bad("")
	}
	msg := err.Error()
	if c.refs {
		msg = fmt.Sprintf("%v (from %s)", err, quoteValue(c.n.Value, false))
	}
	c.d.errorf(c.n, typeOf(c.f.Type).hint, "%s: %s", c.l.at(), msg)
	return nil, false
}

// scalarDecoder wraps the decoder of a scalar type: it refuses collections and nulls, resolves
// references and records secrets before handing the text over.
func scalarDecoder(fn func(c *scalarIn) (any, bool)) func(*docDecoder, *yaml.Node, connector.Field, loc, bool, *collector) (any, bool) {
	return func(d *docDecoder, n *yaml.Node, f connector.Field, l loc, secret bool, col *collector) (any, bool) {
		ft := typeOf(f.Type)
		if n.Kind != yaml.ScalarNode || isNull(n) {
			d.errorf(n, ft.hint, "%s: expected %s, got %s", l.at(), ft.noun, describe(n, secret))
			return nil, false
		}
		text, refs, ok := d.expand(n, secret, col)
		if !ok {
			return nil, false
		}
		if secret {
			col.secret(text)
		}
		return fn(&scalarIn{d: d, n: n, f: f, l: l, secret: secret, tag: n.ShortTag(), text: text, refs: refs})
	}
}

func decodeString(c *scalarIn) (any, bool) {
	if c.tag != "!!str" && c.tag != "!!binary" && c.tag != "!!timestamp" {
		return c.bad(fmt.Sprintf("quote it: %q", c.n.Value))
	}
	if len(c.f.Enum) > 0 && !contains(c.f.Enum, c.text) {
		msg := fmt.Sprintf("%s: %s is not one of %s", c.l.at(), c.got(), strings.Join(c.f.Enum, ", "))
		if !c.secret {
			msg += didYouMean(c.text, c.f.Enum)
		}
		c.d.errorf(c.n, "", "%s", msg)
		return nil, false
	}
	return c.text, true
}

func decodeInt(c *scalarIn) (any, bool) {
	switch {
	case c.tag == "!!int":
		var v int64
		if err := c.n.Decode(&v); err != nil {
			return c.bad("the value must fit in a 64-bit integer")
		}
		return v, true
	case c.tag == "!!float":
		if v, ok := wholeNumber(c.text); ok {
			return v, true // 1.0, 1e3: a whole number, as JSON Schema's integer accepts it
		}
		return c.bad("use a whole number between -9223372036854775808 and 9223372036854775807")
	case c.quoted():
		if _, err := strconv.ParseInt(c.text, 0, 64); err == nil {
			return c.bad("remove the quotes")
		}
		return c.bad("")
	case c.tag != "!!str":
		return c.bad("")
	}
	v, err := strconv.ParseInt(strings.TrimSpace(c.text), 0, 64)
	if err != nil {
		return c.bad("")
	}
	return v, true
}

func decodeFloat(c *scalarIn) (any, bool) {
	if c.tag == "!!int" || c.tag == "!!float" {
		var v float64
		if err := c.n.Decode(&v); err != nil {
			return c.bad("")
		}
		return v, true
	}
	if c.quoted() || c.tag != "!!str" {
		if _, err := strconv.ParseFloat(c.text, 64); err == nil && c.quoted() {
			return c.bad("remove the quotes")
		}
		return c.bad("")
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(c.text), 64)
	if err != nil {
		return c.bad("")
	}
	return v, true
}

func decodeBool(c *scalarIn) (any, bool) {
	if c.tag == "!!bool" {
		var v bool
		if err := c.n.Decode(&v); err != nil {
			return c.bad("")
		}
		return v, true
	}
	if c.quoted() || c.tag != "!!str" {
		return c.bad("")
	}
	v, err := strconv.ParseBool(strings.TrimSpace(c.text))
	if err != nil {
		return c.bad("")
	}
	return v, true
}

func decodeDuration(c *scalarIn) (any, bool) {
	if c.tag == "!!int" && c.n.Value == "0" {
		return time.Duration(0), true
	}
	if c.tag != "!!str" {
		if c.tag == "!!int" || c.tag == "!!float" {
			return c.bad(fmt.Sprintf("add a unit: %ss or %sms", c.n.Value, c.n.Value))
		}
		return c.bad("")
	}
	v, err := parseDuration(c.text)
	if err != nil {
		return c.failed(err)
	}
	return v, true
}

func decodeByteSize(c *scalarIn) (any, bool) {
	if c.tag == "!!int" {
		var v int64
		if err := c.n.Decode(&v); err != nil || v < 0 {
			return c.bad("")
		}
		return v, true
	}
	if c.tag == "!!float" {
		if v, ok := wholeNumber(c.text); ok && v >= 0 {
			return v, true
		}
		return c.bad("a number of bytes is whole; for a fraction use a unit: 1.5KiB")
	}
	if c.tag != "!!str" {
		return c.bad("")
	}
	v, err := ParseByteSize(c.text)
	if err != nil {
		return c.failed(err)
	}
	return v, true
}

// wholeNumber reads a YAML float that holds a whole number within int64 (1.0, 1e3).
func wholeNumber(text string) (int64, bool) {
	f, err := strconv.ParseFloat(strings.ReplaceAll(text, "_", ""), 64)
	if err != nil || f != math.Trunc(f) || f < math.MinInt64 || f >= math.MaxInt64 {
		return 0, false
	}
	return int64(f), true
}
