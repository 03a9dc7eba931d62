package connector

import (
	"fmt"
	"sort"
	"time"
)

// Type is the type of a configuration field.
type Type string

// Field types. Durations are written as Go durations ("30s", "1m30s"); ByteSize as an integer or
// with a unit ("64MiB", "1KB").
const (
	TypeString   Type = "string"
	TypeInt      Type = "int"
	TypeFloat    Type = "float"
	TypeBool     Type = "bool"
	TypeDuration Type = "duration"
	TypeByteSize Type = "bytesize"
	TypeObject   Type = "object" // nested fields in Field.Fields
	TypeList     Type = "list"   // elements described by Field.Elem
	TypeMap      Type = "map"    // string keys, values described by Field.Elem (nil: any)
	TypeAny      Type = "any"    // free-form YAML, passed through
)

// Field declares one configuration field of a component.
type Field struct {
	Name        string
	Type        Type
	Description string
	// Required fields must be present. A field with a Default is never required.
	Required bool
	// Default is applied when the field is absent. Its Go type matches Type: string, int64,
	// float64, bool, time.Duration, int64 (bytesize), []any, map[string]any.
	Default any
	// Enum restricts a string field to these values.
	Enum []string
	// Secret fields never appear in logs, errors or docs examples.
	Secret bool
	// Example is shown in docs.
	Example any
	// Fields are the nested fields of an object.
	Fields []Field
	// Elem describes list elements or map values.
	Elem *Field
}

// Kind says what a component is.
type Kind string

// Component kinds.
const (
	KindSource Kind = "source"
	KindSink   Kind = "sink"
)

// Spec declares a component: its name, what it is for, and its configuration. One Spec feeds
// manifest validation, `sluice docs`, the JSON Schema and plugin metadata.
type Spec struct {
	Name        string
	Kind        Kind
	Summary     string // one line
	Description string // markdown, may be long
	Fields      []Field
	// Bounded is true for sources that end on their own (a file without follow).
	Bounded bool
	// ExactlyOnce is true for sinks that store source positions in the same transaction as their
	// data, so a pipeline with delivery exactly_once can resume from them.
	ExactlyOnce bool
}

// Field returns the top-level field with the given name.
func (s *Spec) Field(name string) (Field, bool) {
	for _, f := range s.Fields {
		if f.Name == name {
			return f, true
		}
	}
	return Field{}, false
}

// Config is a component's configuration after validation: every declared field with a default is
// present, every value has the Go type its Field.Type maps to (see Field.Default), and references
// such as ${env:NAME} are resolved.
type Config map[string]any

// Has reports whether the field is set (explicitly or by default).
func (c Config) Has(name string) bool { _, ok := c[name]; return ok }

// String returns a string field, or "" when absent.
func (c Config) String(name string) string {
	v, _ := c[name].(string)
	return v
}

// Int returns an integer (or bytesize) field, or 0 when absent.
func (c Config) Int(name string) int64 {
	switch v := c[name].(type) {
	case int64:
		return v
	case int:
		return int64(v)
	case float64:
		return int64(v)
	}
	return 0
}

// Float returns a float field (integers convert), or 0 when absent.
func (c Config) Float(name string) float64 {
	switch v := c[name].(type) {
	case float64:
		return v
	case int64:
		return float64(v)
	case int:
		return float64(v)
	}
	return 0
}

// Bool returns a boolean field, or false when absent.
func (c Config) Bool(name string) bool {
	v, _ := c[name].(bool)
	return v
}

// Duration returns a duration field, or 0 when absent.
func (c Config) Duration(name string) time.Duration {
	switch v := c[name].(type) {
	case time.Duration:
		return v
	case int64:
		return time.Duration(v)
	}
	return 0
}

// Object returns a nested object field as a Config, or nil when absent.
func (c Config) Object(name string) Config {
	switch v := c[name].(type) {
	case map[string]any:
		return Config(v)
	case Config:
		return v
	}
	return nil
}

// List returns a list field, or nil when absent.
func (c Config) List(name string) []any {
	v, _ := c[name].([]any)
	return v
}

// Strings returns a list of strings, skipping non-string elements.
func (c Config) Strings(name string) []string {
	var out []string
	for _, e := range c.List(name) {
		if s, ok := e.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// Keys returns the set field names, sorted.
func (c Config) Keys() []string {
	ks := make([]string, 0, len(c))
	for k := range c {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// ConfigError is returned by constructors for a configuration problem the spec cannot express
// (two fields that exclude each other). Field names the offending field, so the manifest loader can
// point at its line and column.
type ConfigError struct {
	Field string
	Msg   string
	// Hint says how to fix the problem; optional. The manifest loader prints it below the message.
	Hint string
}

func (e *ConfigError) Error() string { return fmt.Sprintf("%s: %s", e.Field, e.Msg) }
