package schema

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Header keys set on a record by a source's decode: (the schema its value was written with) and by
// a sink's encode: (the schema it is written with). The id is decimal text; the subject is absent
// when the registry does not say which subject an id belongs to.
const (
	HeaderSchemaID      = "sluice-schema-id"
	HeaderSchemaSubject = "sluice-schema-subject"
)

// Info says which registry schema a value was written or read with. ID is 0 when no registry
// schema is involved (format json without the wire format); Subject and Version are empty when the
// registry does not report them.
type Info struct {
	ID      int
	Subject string
	Version int
}

// ErrUnavailable is matched (errors.Is) by errors that come from a registry that cannot be reached
// or that answers with a server error (HTTP 5xx, 429, a timeout). Retrying later may succeed: the
// engine retries with backoff, then stops with the error.
var ErrUnavailable = errors.New("schema registry unavailable")

// RecordError is the failure of one record: its payload is not in the wire format, names a schema
// id the registry does not know, does not decode with its schema, or (on encode) its value does not
// fit the target schema. The record goes to the dead letters; the rest of the stream goes on. Its
// message names the schema and what is wrong:
//
//	schema id 7 (subject prices-value): field "price": expected double, got string
type RecordError struct {
	Info   Info
	Reason string
}

func (e *RecordError) Error() string {
	var sb strings.Builder
	switch {
	case e.Info.ID != 0:
		sb.WriteString("schema id ")
		sb.WriteString(strconv.Itoa(e.Info.ID))
		if e.Info.Subject != "" {
			sb.WriteString(" (subject " + e.Info.Subject + ")")
		}
	case e.Info.Subject != "":
		sb.WriteString("subject " + e.Info.Subject)
	default:
		sb.WriteString("schema")
	}
	sb.WriteString(": ")
	sb.WriteString(e.Reason)
	return sb.String()
}

// unavailableError is a registry call that failed in a way retrying may fix.
type unavailableError struct {
	op  string
	err error
}

func (e *unavailableError) Error() string {
	return fmt.Sprintf("schema registry unavailable: %s: %v", e.op, e.err)
}

func (e *unavailableError) Unwrap() error { return e.err }

func (e *unavailableError) Is(target error) bool { return target == ErrUnavailable }

// pathError is a decode or encode failure inside a value, with the path of the field it is in.
// Path holds the steps innermost first, as the failure unwinds.
type pathError struct {
	path []string
	msg  string
}

func (e *pathError) Error() string {
	if len(e.path) == 0 {
		return e.msg
	}
	var sb strings.Builder
	sb.WriteString("field \"")
	for i := len(e.path) - 1; i >= 0; i-- {
		p := e.path[i]
		if i < len(e.path)-1 && !strings.HasPrefix(p, "[") {
			sb.WriteByte('.')
		}
		sb.WriteString(p)
	}
	sb.WriteString("\": ")
	sb.WriteString(e.msg)
	return sb.String()
}

// inField adds a step to the path of err (a *pathError, or any error, which becomes one).
func inField(err error, step string) error {
	var pe *pathError
	if errors.As(err, &pe) {
		pe.path = append(pe.path, step)
		return pe
	}
	return &pathError{path: []string{step}, msg: err.Error()}
}

func errorf(format string, args ...any) error {
	return &pathError{msg: fmt.Sprintf(format, args...)}
}
