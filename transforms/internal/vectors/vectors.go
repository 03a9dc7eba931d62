// Package vectors runs a transform over the test cases in a testdata directory and compares what
// it does with the expected files there. The same files serve the native tests of each transform
// (through the Go SDK's local runner) and the tests of the built .wasm modules (through the host).
//
// A testdata directory holds input.jsonl (one record value per line, split on "\n", passed
// verbatim) and one case per config: the default case uses config.json ({} when there is none),
// the case NAME uses config_NAME.json. A case may have its own input_NAME.jsonl. Each case
// has its expected files, with the suffix _NAME for named cases:
//
//   - expected_kept.jsonl: the values sent to port main (passed inputs verbatim, emitted values),
//     one per line, in output order;
//   - expected_PORT.jsonl: the same for each other port that receives anything;
//   - expected_rejects.jsonl: one {"line","code","reason","value"} object per rejected input.
//
// Dropped inputs appear nowhere.
package vectors

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/sdk/go/abi"
)

// Action names of Outcome.
const (
	Pass   = "pass"
	Drop   = "drop"
	Emit   = "emit"
	Reject = "reject"
)

// actionName is the Outcome.Action of an ABI action: its name in lower case ("pass").
func actionName(a abi.Action) string { return strings.ToLower(a.String()) }

// Outcome is what a transform did with one input.
type Outcome struct {
	Action  string
	Code    uint16
	Reason  string
	Emitted []Output
}

// Output is one emitted record.
type Output struct {
	Port  string
	Value []byte
}

// Runner runs the transform under test with a config over the input values.
type Runner func(config []byte, values [][]byte) ([]Outcome, error)

// RejectLine is one line of expected_rejects*.jsonl.
type RejectLine struct {
	Line   int    `json:"line"`
	Code   uint16 `json:"code"`
	Reason string `json:"reason"`
	Value  string `json:"value"`
}

// Case is one config of a testdata directory.
type Case struct {
	Name   string // "" for config.json or no config
	Config []byte
	Input  [][]byte
}

// Cases lists the cases of a testdata directory.
func Cases(dir string) ([]Case, error) {
	cfgs, err := filepath.Glob(filepath.Join(dir, "config*.json"))
	if err != nil {
		return nil, err
	}
	sort.Strings(cfgs)
	if len(cfgs) == 0 || filepath.Base(cfgs[0]) != "config.json" {
		cfgs = append([]string{""}, cfgs...) // the default case, with config {}
	}
	var out []Case
	for _, c := range cfgs {
		cs := Case{Config: []byte("{}")}
		if c != "" {
			base := strings.TrimSuffix(filepath.Base(c), ".json")
			cs.Name = strings.TrimPrefix(strings.TrimPrefix(base, "config"), "_")
			if cs.Config, err = os.ReadFile(c); err != nil {
				return nil, err
			}
		}
		in := filepath.Join(dir, "input"+suffix(cs.Name)+".jsonl")
		if _, err := os.Stat(in); err != nil {
			in = filepath.Join(dir, "input.jsonl")
		}
		b, err := os.ReadFile(in)
		if err != nil {
			return nil, err
		}
		b = bytes.TrimSuffix(b, []byte("\n"))
		cs.Input = bytes.Split(b, []byte("\n"))
		out = append(out, cs)
	}
	return out, nil
}

func suffix(name string) string {
	if name == "" {
		return ""
	}
	return "_" + name
}

// Render turns outcomes into the expected files' contents, keyed by file name.
func Render(c Case, out []Outcome) (map[string][]byte, error) {
	if len(out) != len(c.Input) {
		return nil, fmt.Errorf("%d outcomes for %d inputs", len(out), len(c.Input))
	}
	files := map[string]*bytes.Buffer{}
	file := func(port string) *bytes.Buffer {
		name := "expected_" + port + suffix(c.Name) + ".jsonl"
		if port == "main" {
			name = "expected_kept" + suffix(c.Name) + ".jsonl"
		}
		if files[name] == nil {
			files[name] = &bytes.Buffer{}
		}
		return files[name]
	}
	file("main")
	rej := file("rejects")
	enc := json.NewEncoder(rej)
	enc.SetEscapeHTML(false)
	for i, o := range out {
		switch o.Action {
		case Pass:
			file("main").Write(append(c.Input[i], '\n'))
		case Drop:
		case Emit:
			for _, e := range o.Emitted {
				if bytes.IndexByte(e.Value, '\n') >= 0 {
					return nil, fmt.Errorf("input %d: emitted value holds a newline: %q", i+1, e.Value)
				}
				file(e.Port).Write(append(e.Value, '\n'))
			}
		case Reject:
			if err := enc.Encode(RejectLine{Line: i + 1, Code: o.Code, Reason: o.Reason, Value: string(c.Input[i])}); err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("input %d: unknown action %q", i+1, o.Action)
		}
	}
	res := map[string][]byte{}
	for k, v := range files {
		res[k] = v.Bytes()
	}
	return res, nil
}

// Check runs every case of dir through run and compares the rendered files with the expected_*
// files of that case (all of them: an expected file for a port that received nothing must be
// empty). With update it first rewrites the expected files.
func Check(t *testing.T, dir string, run Runner, update bool) {
	t.Helper()
	cases, err := Cases(dir)
	if err != nil {
		t.Fatalf("read cases in %s: %v", dir, err)
	}
	var names []string
	for _, c := range cases {
		names = append(names, c.Name)
	}
	for _, c := range cases {
		name := c.Name
		if name == "" {
			name = "default"
		}
		t.Run(name, func(t *testing.T) {
			out, err := run(c.Config, c.Input)
			if err != nil {
				t.Fatalf("run: %v", err)
			}
			got, err := Render(c, out)
			if err != nil {
				t.Fatal(err)
			}
			if update {
				for f, b := range got {
					if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
						t.Fatal(err)
					}
				}
			}
			existing, err := filepath.Glob(filepath.Join(dir, "expected_*"+suffix(c.Name)+".jsonl"))
			if err != nil {
				t.Fatal(err)
			}
			seen := map[string]bool{}
			for _, path := range existing {
				f := filepath.Base(path)
				if !belongs(f, c.Name, names) {
					continue
				}
				seen[f] = true
				want, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got[f], want) {
					t.Errorf("%s differs:\n--- got\n%s--- want\n%s", f, got[f], want)
				}
			}
			for f, b := range got {
				if !seen[f] && len(b) > 0 {
					t.Errorf("output %s has no expected file (run the native test with -update):\n%s", f, b)
				}
			}
		})
	}
}

// belongs reports whether an expected file name is of case name: expected_X_NAME.jsonl belongs to
// the case NAME when NAME is one of the directory's case names, anything else to the default case.
func belongs(file, name string, names []string) bool {
	base := strings.TrimSuffix(strings.TrimPrefix(file, "expected_"), ".jsonl")
	owner := ""
	for _, n := range names {
		if n != "" && strings.HasSuffix(base, "_"+n) {
			owner = n
		}
	}
	return owner == name
}
