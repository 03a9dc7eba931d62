package manifests

import (
	"bytes"
	"regexp"
	"strconv"
	"strings"
)

var yamlLineRe = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parserProblems are the yaml.v3 parser's messages (as opposed to its scanner's).
var parserProblems = map[string]bool{
	"did not find expected ',' or '}'":       true,
	"did not find expected ',' or ']'":       true,
	"did not find expected key":              true,
	"did not find expected '-' indicator":    true,
	"did not find expected node content":     true,
	"did not find expected <document start>": true,
	"did not find expected <stream-start>":   true,
	"found undefined tag handle":             true,
	"found duplicate %YAML directive":        true,
	"found incompatible YAML document":       true,
	"found duplicate %TAG directive":         true,
}

// syntaxDiagnostic turns a yaml.v3 parse error into a diagnostic. yaml.v3 reports a line but no
// column; the column given is that of the line's first non-blank character.
func syntaxDiagnostic(file string, data []byte, err error) Diagnostic {
	msg := err.Error()
	p := Pos{File: file}
	if m := yamlLineRe.FindStringSubmatch(msg); m != nil {
		p.Line, _ = strconv.Atoi(m[1])
		msg = m[2]
		if parserProblems[msg] {
			// yaml.v3 reports parser (not scanner) errors with a 0-based line, that of the
			// collection being parsed rather than of the offending token.
			p.Line++
			if strings.HasPrefix(msg, "did not find expected ',' or") || msg == "did not find expected key" || msg == "did not find expected '-' indicator" {
				msg += " (in the collection that starts on this line)"
			}
		}
		p.Col = firstCol(data, p.Line)
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	hint := "check the indentation and quoting around this line"
	switch {
	case strings.Contains(msg, "tab") || p.Line > 0 && leadingTab(data, p.Line):
		hint = "indent with spaces, not tabs"
		if p.Line > 0 && leadingTab(data, p.Line) {
			p.Col = 1
		}
	case p.Line > 0 && refInFlow(data, p.Line):
		hint = `inside {...} or [...], quote values that contain ${...}: {token: "${env:TOKEN}"}`
	}
	return Diagnostic{Pos: p, Message: "YAML syntax error: " + msg, Hint: hint}
}

// refInFlow reports whether the line, or the one before it, holds a reference inside a flow
// collection, where the { of ${ ends a plain scalar.
func refInFlow(data []byte, line int) bool {
	lines := bytes.Split(data, []byte("\n"))
	for l := line - 1; l >= line-2 && l >= 0; l-- {
		if l < len(lines) {
			t := string(lines[l])
			if i := strings.Index(t, "${"); i > 0 && strings.ContainsAny(t[:i], "{[") {
				return true
			}
		}
	}
	return false
}

// leadingTab reports whether the line is indented with a tab.
func leadingTab(data []byte, line int) bool {
	lines := bytes.Split(data, []byte("\n"))
	if line < 1 || line > len(lines) {
		return false
	}
	l := lines[line-1]
	return len(l) > len(bytes.TrimLeft(l, " \t")) && bytes.Contains(l[:len(l)-len(bytes.TrimLeft(l, " \t"))], []byte("\t"))
}

func firstCol(data []byte, line int) int {
	lines := bytes.Split(data, []byte("\n"))
	if line < 1 || line > len(lines) {
		return 0
	}
	text := string(lines[line-1])
	trimmed := strings.TrimLeft(text, " \t")
	if trimmed == "" {
		return 1
	}
	return len([]rune(text)) - len([]rune(trimmed)) + 1
}
