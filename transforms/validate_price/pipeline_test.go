package validate_price_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// repeats is how many times the shared vectors are fed through the pipeline, so that the records
// span many batches.
const repeats = 40

// TestPipelineFileToFileWithDeadLetters runs `sluice run` on a pipeline file source →
// validate_price (the committed Go module) → file sink, with a file dead-letter sink, and checks
// that every input line comes out exactly once: kept lines in order and byte for byte, rejected
// lines in the dead letters with the code and reason of the shared vectors.
func TestPipelineFileToFileWithDeadLetters(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the sluice binary")
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "sluice")
	build := exec.Command("go", "build", "-o", bin, "./cmd/sluice")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build sluice: %v\n%s", err, out)
	}

	vectors, err := os.ReadFile(filepath.Join("testdata", "input.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	wantKept, err := os.ReadFile(filepath.Join("testdata", "expected_kept.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	wantRejects := readRejects(t, filepath.Join("testdata", "expected_rejects.jsonl"))
	inputLines := bytes.Split(bytes.TrimSuffix(vectors, []byte("\n")), []byte("\n"))

	in := filepath.Join(dir, "in.jsonl")
	if err := os.WriteFile(in, bytes.Repeat(vectors, repeats), 0o644); err != nil {
		t.Fatal(err)
	}
	kept, dlq := filepath.Join(dir, "kept.jsonl"), filepath.Join(dir, "rejected.jsonl")
	manifest := filepath.Join(dir, "pipeline.yaml")
	yaml := `apiVersion: sluice.dev/v1
kind: Pipeline
metadata: {name: validate-price-e2e}
spec:
  source: {type: file, config: {path: ` + quote(in) + `}}
  transforms:
    - name: validate
      wasm: ` + quote(filepath.Join(root, "transforms", "validate_price", "go", "validate_price.wasm")) + `
  sinks:
    - {name: kept, type: file, config: {path: ` + quote(kept) + `, fsync: false}}
  dead_letter: {type: file, config: {path: ` + quote(dlq) + `, fsync: false}}
  batch: {max_records: 64}
`
	if err := os.WriteFile(manifest, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	run := exec.CommandContext(ctx, bin, "run", "--data-dir", filepath.Join(dir, "data"), "--admin-addr", "", "--log-level", "warn", manifest)
	run.Dir = dir
	if out, err := run.CombinedOutput(); err != nil {
		t.Fatalf("sluice run: %v\n%s", err, out)
	}

	gotKept, err := os.ReadFile(kept)
	if err != nil {
		t.Fatal(err)
	}
	letters := readDeadLetters(t, dlq)
	nIn := repeats * len(inputLines)
	nKept := bytes.Count(gotKept, []byte("\n"))
	if nKept+len(letters) != nIn {
		t.Fatalf("in %d != kept %d + rejected %d", nIn, nKept, len(letters))
	}
	if !bytes.Equal(gotKept, bytes.Repeat(wantKept, repeats)) {
		t.Errorf("kept records differ from %d copies of expected_kept.jsonl", repeats)
	}

	// Every rejected input, with its code and reason, repeats times (dead letters of different
	// batches may interleave, so compare as sorted lists).
	var want, got []string
	for _, r := range wantRejects {
		for k := 0; k < repeats; k++ {
			want = append(want, string(inputLines[r.Line-1])+"\x00"+itoa(r.Code)+"\x00"+r.Reason)
		}
	}
	for _, l := range letters {
		got = append(got, l.value+"\x00"+itoa(l.Code)+"\x00"+l.Reason)
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("dead letters differ from the expected rejects: got %d, want %d", len(got), len(want))
		for i := 0; i < len(got) && i < len(want); i++ {
			if got[i] != want[i] {
				t.Errorf("first difference:\n got %q\nwant %q", got[i], want[i])
				break
			}
		}
	}
}

type rejectLine struct {
	Line   int    `json:"line"`
	Code   int    `json:"code"`
	Reason string `json:"reason"`
}

func readRejects(t *testing.T, path string) []rejectLine {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []rejectLine
	for _, l := range bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n")) {
		var r rejectLine
		if err := json.Unmarshal(l, &r); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, r)
	}
	return out
}

type deadLetter struct {
	Stage       string  `json:"stage"`
	Code        int     `json:"code"`
	Reason      string  `json:"reason"`
	Value       *string `json:"value"`
	ValueBase64 string  `json:"value_base64"`
	value       string
}

func readDeadLetters(t *testing.T, path string) []deadLetter {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []deadLetter
	for _, l := range bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n")) {
		if len(l) == 0 {
			continue
		}
		var d deadLetter
		if err := json.Unmarshal(l, &d); err != nil {
			t.Fatalf("%s: %v in %q", path, err, l)
		}
		switch {
		case d.Value != nil:
			d.value = *d.Value
		default:
			v, err := base64.StdEncoding.DecodeString(d.ValueBase64)
			if err != nil {
				t.Fatalf("%s: value_base64: %v", path, err)
			}
			d.value = string(v)
		}
		if d.Stage != "validate" {
			t.Fatalf("dead letter from stage %q, want validate: %s", d.Stage, l)
		}
		out = append(out, d)
	}
	return out
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func itoa(n int) string { return strings.TrimSpace(string(must(json.Marshal(n)))) }

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}
