package manifests_test

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/manifests"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

var update = flag.Bool("update", false, "rewrite the .golden files from the current output")

// testEnv is the environment the test manifests see.
var testEnv = map[string]string{
	"DATA_DIR":       "/srv/data",
	"COUNT":          "42",
	"FOLLOW":         "true",
	"INTERVAL":       "250ms",
	"PORT":           "8080",
	"SECRET_PIN":     "hunter2-pin",
	"SECRET_PIN_NUM": "97531",
	"DB_PASSWORD":    "hunter2-db-password",
	"BAD_TIMEOUT":    "soon",
}

// secretValues must never appear in any diagnostic.
var secretValues = []string{"hunter2-pin", "hunter2-db-password", "hunter2-literal-token", "12345678", "246810", "97531", "s3cr3t-from-file"}

func testOptions() manifests.LoadOptions {
	return manifests.LoadOptions{
		Catalog: testCatalog,
		LookupEnv: func(name string) (string, bool) {
			v, ok := testEnv[name]
			return v, ok
		},
		CheckModule: func(t *manifests.Transform) error {
			if strings.Contains(t.Module, "broken") {
				return errors.New("module does not export sluice_abi_version_1")
			}
			// Modules that do not fit their stage, as the WASM host's check reports them.
			switch base := filepath.Base(t.Module); {
			case base == "plain.wasm" && t.Aggregate != nil:
				return &manifests.FieldError{Field: "wasm", Msg: "module " + base + " is not an aggregate module (ABI 1.1, kinds: aggregate); use it as a transform with wasm:", Hint: "sluice transform inspect shows a module's kinds"}
			case strings.HasPrefix(base, "agg") && t.Aggregate == nil:
				return &manifests.FieldError{Field: "wasm", Msg: "module " + base + " is an aggregate module; use it under aggregate:"}
			case strings.Contains(base, "nomerge") && t.Aggregate != nil && t.Aggregate.Session > 0:
				return &manifests.FieldError{Field: "aggregate.window.session", Msg: "session windows need a module that merges states", Hint: "use tumbling or hopping windows"}
			}
			if strings.Contains(t.Module, "strict") {
				// Problems with settings, as the WASM host's check reports them.
				return errors.Join(
					&manifests.FieldError{Field: manifests.ConfigField("/bounds/1/max"), Msg: "must be at most 10", Hint: "see the config_schema"},
					&manifests.FieldError{Field: manifests.ConfigField("/missing"), Msg: "placed at the closest enclosing key"},
					&manifests.FieldError{Field: "limits.memory", Msg: "too much"},
					errors.New("a problem of the module itself"))
			}
			return nil
		},
	}
}

// checkGolden compares got with the golden file, or rewrites it under -update.
func checkGolden(t *testing.T, golden string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("read golden file: %v (run go test ./manifests -run %s -update)", err, t.Name())
	}
	if string(want) != string(got) {
		t.Errorf("output differs from %s (if the change is intended, run go test ./manifests -update)\n--- got:\n%s\n--- want:\n%s", golden, got, want)
	}
}

// TestBadManifests loads each entry of testdata/bad (a file, or a directory loaded as a whole) and
// compares every diagnostic with its .golden file.
func TestBadManifests(t *testing.T) {
	entries, err := os.ReadDir("testdata/bad")
	if err != nil {
		t.Fatal(err)
	}
	ran := 0
	for _, e := range entries {
		name := e.Name()
		if strings.HasSuffix(name, ".golden") {
			continue
		}
		ran++
		path := filepath.Join("testdata/bad", name)
		t.Run(strings.TrimSuffix(name, filepath.Ext(name)), func(t *testing.T) {
			pipelines, diags := manifests.Load([]string{path}, testOptions())
			if len(diags) == 0 {
				t.Fatalf("no diagnostics for a bad manifest")
			}
			out := diags.Error() + "\n"
			for _, s := range secretValues {
				if strings.Contains(out, s) {
					t.Errorf("a secret value (%q) appears in the diagnostics:\n%s", s, out)
				}
			}
			for _, d := range diags {
				if d.Pos.File == "" || (d.Pos.Line == 0 && !strings.HasPrefix(d.Message, "cannot read") && !strings.Contains(d.Message, "no Pipeline documents")) {
					t.Errorf("diagnostic without a position: %s", d)
				}
			}
			for _, p := range pipelines {
				for _, d := range diags {
					if d.Pos.File == p.Pos.File && d.Pos.Line >= p.Pos.Line && p.Pos.Line > 0 && sameDocument(path, p, d) {
						t.Errorf("pipeline %q returned although its document has a problem: %s", p.Name, d)
					}
				}
			}
			checkGolden(t, strings.TrimSuffix(path, filepath.Ext(path))+".golden", []byte(out))
		})
	}
	if ran < 12 {
		t.Fatalf("only %d bad manifests found", ran)
	}
}

// sameDocument reports whether diagnostic d falls in pipeline p's document: between its start and
// the next "---" line.
func sameDocument(path string, p *manifests.Pipeline, d manifests.Diagnostic) bool {
	data, err := os.ReadFile(d.Pos.File)
	if err != nil {
		return false
	}
	lines := strings.Split(string(data), "\n")
	for i := p.Pos.Line; i < d.Pos.Line && i <= len(lines); i++ {
		if strings.HasPrefix(lines[i-1], "---") {
			return false
		}
	}
	return true
}

// TestGoodManifests loads every good manifest and compares the resulting pipelines (values with
// their Go types, positions, secrets) with golden files.
func TestGoodManifests(t *testing.T) {
	files, _ := filepath.Glob("testdata/good/*.yaml")
	if len(files) == 0 {
		t.Fatal("no good manifests")
	}
	for _, path := range files {
		t.Run(strings.TrimSuffix(filepath.Base(path), ".yaml"), func(t *testing.T) {
			pipelines, diags := manifests.Load([]string{path}, testOptions())
			if len(diags) > 0 {
				t.Fatalf("unexpected diagnostics:\n%v", diags)
			}
			if len(pipelines) == 0 {
				t.Fatal("no pipelines")
			}
			out, err := json.MarshalIndent(dumpPipelines(pipelines), "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			checkGolden(t, strings.TrimSuffix(path, ".yaml")+".golden", append(out, '\n'))
		})
	}
}

func TestDefaults(t *testing.T) {
	pipelines, diags := manifests.Load([]string{"testdata/good/full.yaml"}, testOptions())
	if len(diags) > 0 {
		t.Fatal(diags)
	}
	var p *manifests.Pipeline
	for _, x := range pipelines {
		if x.Name == "minimal" {
			p = x
		}
	}
	if p == nil {
		t.Fatal("pipeline minimal not loaded")
	}
	want := manifests.BatchPolicy{MaxRecords: 1024, MaxBytes: 4 << 20, Linger: 20 * time.Millisecond}
	if p.Batch != want {
		t.Errorf("batch = %+v, want %+v", p.Batch, want)
	}
	if p.Buffer != (manifests.BufferPolicy{MaxRecords: 65536, MaxBytes: 64 << 20}) {
		t.Errorf("buffer = %+v", p.Buffer)
	}
	if p.Delivery != manifests.AtLeastOnce || p.DeadLetter != nil {
		t.Errorf("delivery = %q, dead letter = %v", p.Delivery, p.DeadLetter)
	}
	if p.Sinks[0].From != manifests.DefaultPort {
		t.Errorf("from = %q", p.Sinks[0].From)
	}
	cfg := p.Source.Config
	if cfg.Int("count") != 100 || cfg.Duration("interval") != time.Second || cfg.String("format") != "json" || cfg.Int("max_line") != 1<<20 {
		t.Errorf("source defaults not applied: %v", cfg)
	}
	if r := cfg.Object("retry"); r.Int("max_attempts") != 3 || r.Duration("backoff") != 100*time.Millisecond {
		t.Errorf("nested defaults not applied: %v", r)
	}
	if cfg.Has("tls") {
		// tls has a default (enabled: false) and no required field, so it is filled in.
		if cfg.Object("tls").Bool("enabled") {
			t.Errorf("tls.enabled default wrong")
		}
	} else {
		t.Errorf("tls not filled in with its defaults")
	}
}

func TestReferences(t *testing.T) {
	pipelines, diags := manifests.Load([]string{"testdata/good/refs.yaml"}, testOptions())
	if len(diags) > 0 {
		t.Fatal(diags)
	}
	p := pipelines[0]
	src := p.Source.Config
	if got := src.String("path"); got != "/srv/data/in-us-east\n.log" {
		// region.txt ends in two newlines: only one is trimmed.
		t.Errorf("path = %q", got)
	}
	if src.Int("count") != 42 || !src.Bool("follow") || src.Duration("interval") != 250*time.Millisecond {
		t.Errorf("typed references not converted: %v", src)
	}
	if got := src.Object("headers").String("literal"); got != "${env:NOT_A_REF} and ${cursor} and $5" {
		t.Errorf("escape: %q", got)
	}
	sink := p.Sinks[0]
	if sink.Config.String("token") != "s3cr3t-from-file" || sink.Config.Int("pin") != 97531 {
		t.Errorf("secret references: %v", sink.Config)
	}
	sort.Strings(sink.Secrets)
	want := []string{"97531", "hunter2-db-password", "pre-hunter2-db-password-post", "s3cr3t-from-file", "svc"}
	if fmt.Sprint(sink.Secrets) != fmt.Sprint(want) {
		t.Errorf("secrets = %q, want %q", sink.Secrets, want)
	}
	if len(p.Source.Secrets) != 0 {
		t.Errorf("source has no secret fields, got secrets %q", p.Source.Secrets)
	}
}

func TestErrorDiagnostic(t *testing.T) {
	pipelines, diags := manifests.Load([]string{"testdata/good/full.yaml"}, testOptions())
	if len(diags) > 0 {
		t.Fatal(diags)
	}
	lake := pipelines[0].Sinks[0]
	reg, _ := testCatalog.Lookup(connector.KindSink, lake.Type)
	cfg := connector.Config{}
	for k, v := range lake.Config {
		cfg[k] = v
	}
	delete(cfg, "key")
	_, err := reg.NewSink(cfg, connector.Env{})
	if err == nil {
		t.Fatal("constructor accepted upsert without key")
	}
	d := lake.ErrorDiagnostic(`sink "lake"`, fmt.Errorf("build: %w", err))
	if got, want := d.String(), `testdata/good/full.yaml:49:9: sink "lake": config.mode: upsert needs key to be set`; got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	d = lake.ErrorDiagnostic(`sink "lake"`, &connector.ConfigError{Field: "auth.password", Msg: "rejected pa55word"})
	if got, want := d.String(), `testdata/good/full.yaml:54:11: sink "lake": config.auth.password: rejected [redacted]`; got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	d = lake.ErrorDiagnostic(`sink "lake"`, &connector.ConfigError{Field: "not_set", Msg: "x"})
	if d.Pos != lake.Pos {
		t.Errorf("unknown field placed at %v, want the component at %v", d.Pos, lake.Pos)
	}
}

func TestLoadPaths(t *testing.T) {
	dir := t.TempDir()
	_, diags := manifests.Load([]string{filepath.Join(dir, "missing.yaml"), dir}, testOptions())
	got := diags.Error()
	for _, want := range []string{"missing.yaml: cannot read manifest: no such file or directory", dir + ": no manifests in directory"} {
		if !strings.Contains(got, want) {
			t.Errorf("diagnostics %q do not contain %q", got, want)
		}
	}
	// A directory and a file inside it are loaded once.
	good := "testdata/good"
	pipelines, diags := manifests.Load([]string{good, filepath.Join(good, "refs.yaml")}, testOptions())
	if len(diags) > 0 || len(pipelines) != 8 {
		t.Errorf("got %d pipelines, diagnostics %v", len(pipelines), diags)
	}
	if (manifests.Diagnostics(nil)).Err() != nil {
		t.Error("empty Diagnostics.Err() is not nil")
	}
}

// dumpPipelines renders pipelines with every value's Go type, so golden files show conversions.
func dumpPipelines(ps []*manifests.Pipeline) []any {
	var out []any
	for _, p := range ps {
		m := map[string]any{
			"name":          p.Name,
			"labels":        p.Labels,
			"pos":           p.Pos.String(),
			"source":        dumpComponent(p.Source),
			"delivery":      p.Delivery,
			"failure_limit": map[string]any{"ratio": p.FailureLimit.Ratio, "window": p.FailureLimit.Window},
			"batch":         fmt.Sprintf("%+v", p.Batch),
			"buffer":        fmt.Sprintf("%+v", p.Buffer),
		}
		var ts, ss []any
		for _, t := range p.Transforms {
			tm := map[string]any{
				"name": t.Name, "wasm": t.Module, "sha256": t.SHA256, "config": string(t.Config),
				"limits": fmt.Sprintf("%+v", t.Limits), "on_reject": t.OnReject,
				"pos": t.Pos.String(), "wasm_pos": t.WasmPos.String(),
			}
			if t.Aggregate != nil {
				tm["aggregate"] = fmt.Sprintf("%+v", *t.Aggregate)
				fields := map[string]string{}
				for k, p := range t.Fields {
					fields[k] = p.String()
				}
				tm["fields"] = fields
			}
			ts = append(ts, tm)
		}
		for _, s := range p.Sinks {
			c := dumpComponent(s.Component)
			c["name"], c["from"] = s.Name, s.From
			if s.Batch != nil {
				c["batch"] = fmt.Sprintf("%+v", *s.Batch)
			}
			ss = append(ss, c)
		}
		m["transforms"], m["sinks"] = ts, ss
		if p.DeadLetter != nil {
			m["dead_letter"] = dumpComponent(*p.DeadLetter)
		}
		out = append(out, m)
	}
	return out
}

func dumpComponent(c manifests.Component) map[string]any {
	fields := map[string]string{}
	for k, p := range c.Fields {
		fields[k] = p.String()
	}
	secrets := append([]string(nil), c.Secrets...)
	sort.Strings(secrets)
	out := map[string]any{"type": c.Type, "pos": c.Pos.String(), "config": typed(map[string]any(c.Config)), "fields": fields, "secrets": secrets}
	if c.Decode != nil {
		out["decode"] = typed(map[string]any(c.Decode))
	}
	if c.Encode != nil {
		out["encode"] = typed(map[string]any(c.Encode))
	}
	if c.CodecFields != nil {
		cf := map[string]string{}
		for k, p := range c.CodecFields {
			cf[k] = p.String()
		}
		out["codec_fields"] = cf
	}
	return out
}

func typed(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, e := range x {
			out[k] = typed(e)
		}
		return out
	case []any:
		out := []any{}
		for _, e := range x {
			out = append(out, typed(e))
		}
		return out
	case nil:
		return "nil"
	}
	return fmt.Sprintf("%T(%v)", v, v)
}
