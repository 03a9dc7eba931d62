// Command mask_fields replaces listed fields of JSON records (personal data) by "***" or by a
// salted SHA-256 hex digest, leaving every other byte of the record as it was. See README.md.
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"slices"
	"strings"

	"github.com/sluicehq/sluice/sdk/go/transform"
	"github.com/sluicehq/sluice/transforms/internal/rawjson"
)

func main() {}

// config is the decoded config, set once per instance at init.
type config struct {
	// Fields are dotted member paths ("email", "user.phone"); every occurrence is masked.
	Fields []string `json:"fields"`
	// Mode is "redact" (default: the value becomes "***") or "hash" (the value becomes the hex
	// SHA-256 of salt + value, so equal values stay joinable without being readable).
	Mode string `json:"mode"`
	// Salt is prepended to each value before hashing (hash mode).
	Salt string `json:"salt"`

	paths [][]string
}

var (
	cfg   config
	spans []rawjson.Span // reused per record
)

const schema = `{"type":"object","required":["fields"],"additionalProperties":false,"properties":{
"fields":{"type":"array","minItems":1,"items":{"type":"string","minLength":1}},
"mode":{"enum":["redact","hash"]},"salt":{"type":"string"}}}`

func init() {
	transform.Register(transform.Meta{
		Name:         "mask_fields",
		Version:      "1.0.0",
		Kinds:        []transform.Kind{transform.KindMap},
		ConfigSchema: schema,
	}, transform.ProcessFunc(process), transform.OnInit(setup))
}

func setup() error {
	var c config
	if err := transform.Config(&c); err != nil {
		return err
	}
	if len(c.Fields) == 0 {
		return errors.New("config: fields: list at least one field")
	}
	switch c.Mode {
	case "":
		c.Mode = "redact"
	case "redact", "hash":
	default:
		return errors.New(`config: mode: must be "redact" or "hash"`)
	}
	for _, f := range c.Fields {
		p := strings.Split(f, ".")
		if slices.Contains(p, "") {
			return errors.New("config: fields: " + f + ": empty path segment")
		}
		c.paths = append(c.paths, p)
	}
	if c.Mode == "hash" && c.Salt == "" {
		// Unsalted SHA-256 of short values (emails, phone numbers) is reversed by guessing.
		transform.Log(transform.LevelWarn, "mode hash without a salt: anyone can recompute the hashes of guessed values; "+
			"set salt, e.g. salt: ${env:MASK_SALT}")
	}
	cfg = c
	return nil
}

func process(b *transform.Batch) error {
	for i := 0; i < b.Len(); i++ {
		v := b.Record(i).Value
		if !rawjson.Valid(v) {
			b.Reject(i, transform.CodeInvalidInput, "not valid JSON")
			continue
		}
		doc, base := rawjson.Trim(v)
		if rawjson.KindOf(doc) != rawjson.Object {
			b.Reject(i, transform.CodeInvalidInput, "not a JSON object")
			continue
		}
		spans = spans[:0]
		for _, p := range cfg.paths {
			spans = rawjson.FindAll(doc, p, spans)
		}
		if len(spans) == 0 {
			continue // nothing to mask: PASS forwards the record unchanged
		}
		slices.SortFunc(spans, func(x, y rawjson.Span) int { return x.Start - y.Start })
		b.AppendEmit(i, "", nil, func(dst []byte) []byte {
			at := 0
			for _, s := range spans {
				if s.Start < at {
					continue // inside a value already masked (e.g. "user" and "user.phone")
				}
				dst = append(dst, v[at:base+s.Start]...)
				dst = mask(dst, doc[s.Start:s.End])
				at = base + s.End
			}
			return append(dst, v[at:]...)
		})
	}
	return nil
}

// mask appends the replacement of the JSON value val.
func mask(dst, val []byte) []byte {
	if cfg.Mode == "redact" {
		return append(dst, `"***"`...)
	}
	h := sha256.New()
	h.Write([]byte(cfg.Salt))
	if s, ok := rawjson.Unquote(val); ok {
		h.Write([]byte(s))
	} else {
		h.Write(val)
	}
	var sum [sha256.Size]byte
	dst = append(dst, '"')
	dst = hex.AppendEncode(dst, h.Sum(sum[:0]))
	return append(dst, '"')
}
