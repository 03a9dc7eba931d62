package manifests

import (
	"fmt"
	"sort"
	"strings"

	"github.com/sluicehq/sluice/runtime/pipeline"
)

// String renders the position as FILE:LINE:COL, FILE:LINE when the column is unknown, or FILE when
// the line is unknown too. It returns "" for the zero Pos.
func (p Pos) String() string {
	switch {
	case p.File == "" && p.Line == 0:
		return ""
	case p.Line == 0:
		return p.File
	case p.Col == 0:
		return fmt.Sprintf("%s:%d", p.File, p.Line)
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
}

// Diagnostic is one problem found while loading manifests: where it is, what is wrong, and (when
// one helps) what to do about it. Messages never contain the values of secret fields.
type Diagnostic struct {
	Pos     Pos
	Message string
	// Hint says how to fix the problem; empty when the message says it all.
	Hint string
}

// String renders the diagnostic as "FILE:LINE:COL: message", followed by "\n    hint: ..." when
// there is a hint.
func (d Diagnostic) String() string {
	var b strings.Builder
	if p := d.Pos.String(); p != "" {
		b.WriteString(p)
		b.WriteString(": ")
	}
	b.WriteString(d.Message)
	if d.Hint != "" {
		b.WriteString("\n    hint: ")
		b.WriteString(d.Hint)
	}
	return b.String()
}

// Diagnostics is a list of problems. Load returns it sorted by file, line and column. It
// implements error; use Err to get a nil error when the list is empty.
type Diagnostics []Diagnostic

// Error renders every diagnostic, one per line (hints on their own indented lines).
func (ds Diagnostics) Error() string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = d.String()
	}
	return strings.Join(parts, "\n")
}

// Err returns ds as an error, or nil when there are no diagnostics. Returning a nil Diagnostics
// as an error directly would give a non-nil error interface.
func (ds Diagnostics) Err() error {
	if len(ds) == 0 {
		return nil
	}
	return ds
}

// Sort orders the diagnostics by file, line and column, keeping the order of those at the same
// position.
func (ds Diagnostics) Sort() {
	sort.SliceStable(ds, func(i, j int) bool {
		a, b := ds[i].Pos, ds[j].Pos
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
}

// Redact replaces every occurrence of each secret in s with "[redacted]", longest secrets first so
// that a secret containing another is hidden whole. Empty secrets are ignored.
func Redact(s string, secrets []string) string { return pipeline.Redact(s, secrets) }
