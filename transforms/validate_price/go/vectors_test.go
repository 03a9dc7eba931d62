package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/sluicehq/sluice/sdk/go/transform"
)

var update = flag.Bool("update", false, "rewrite testdata/expected_*.jsonl from this implementation")

// rejectLine is one line of expected_rejects*.jsonl (SPEC section 7).
type rejectLine struct {
	Line   int    `json:"line"`
	Code   uint16 `json:"code"`
	Reason string `json:"reason"`
	Value  string `json:"value"`
}

func readLines(t *testing.T, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	b = bytes.TrimSuffix(b, []byte("\n"))
	return bytes.Split(b, []byte("\n"))
}

// render produces the expected_kept and expected_rejects files for a run.
func render(lines [][]byte, out []transform.LocalOutcome) (kept, rejects []byte, err error) {
	var rb bytes.Buffer
	enc := json.NewEncoder(&rb)
	enc.SetEscapeHTML(false)
	for i, o := range out {
		switch o.Action {
		case transform.ActionPass:
			kept = append(append(kept, lines[i]...), '\n')
		case transform.ActionReject:
			if err := enc.Encode(rejectLine{Line: i + 1, Code: o.Code, Reason: o.Reason, Value: string(lines[i])}); err != nil {
				return nil, nil, err
			}
		default:
			return nil, nil, &json.UnsupportedValueError{Str: "unexpected action " + o.Action.String()}
		}
	}
	return kept, rb.Bytes(), nil
}

func TestVectors(t *testing.T) {
	lines := readLines(t, "../testdata/input.jsonl")
	cases := []struct {
		name, config, suffix string
	}{
		{"default config", "{}", ""},
		{"max_price 250.5", "../testdata/config_max250.json", "_max250"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := []byte(tc.config)
			if tc.config != "{}" {
				var err error
				if cfg, err = os.ReadFile(tc.config); err != nil {
					t.Fatal(err)
				}
			}
			in := make([]transform.LocalRecord, len(lines))
			for i, l := range lines {
				in[i] = transform.LocalRecord{Value: l, Timestamp: transform.NoTimestamp}
			}
			out, err := transform.RunLocal(cfg, in)
			if err != nil {
				t.Fatal(err)
			}
			kept, rejects, err := render(lines, out)
			if err != nil {
				t.Fatal(err)
			}
			keptPath := filepath.Join("../testdata", "expected_kept"+tc.suffix+".jsonl")
			rejPath := filepath.Join("../testdata", "expected_rejects"+tc.suffix+".jsonl")
			if *update {
				if err := os.WriteFile(keptPath, kept, 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(rejPath, rejects, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			wantKept, err := os.ReadFile(keptPath)
			if err != nil {
				t.Fatal(err)
			}
			wantRej, err := os.ReadFile(rejPath)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(kept, wantKept) {
				t.Errorf("kept records differ from %s:\n got: %s\nwant: %s", keptPath, kept, wantKept)
			}
			if !bytes.Equal(rejects, wantRej) {
				t.Errorf("rejects differ from %s:\n got: %s\nwant: %s", rejPath, rejects, wantRej)
			}
		})
	}
}
