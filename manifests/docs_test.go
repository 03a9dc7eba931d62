package manifests_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/manifests"
	"github.com/sluicehq/sluice/runtime/pipeline"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// TestRenderDocs compares the reference of the test components with golden files, and checks
// that each example in them loads.
func TestRenderDocs(t *testing.T) {
	for _, c := range []struct {
		kind connector.Kind
		name string
	}{{connector.KindSource, "testsource"}, {connector.KindSink, "testsink"}, {connector.KindSink, "testdrop"}} {
		t.Run(c.name, func(t *testing.T) {
			reg, ok := testCatalog.Lookup(c.kind, c.name)
			if !ok {
				t.Fatal("not registered")
			}
			doc := manifests.RenderDocs(reg.Spec)
			checkGolden(t, filepath.Join("testdata/docs", c.name+".md"), []byte(doc))
			if strings.Contains(doc, "hunter2") {
				t.Error("docs show a secret")
			}
			loadExample(t, reg.Spec, doc)
		})
	}
}

// loadExample completes the example snippet of a component's docs into a manifest and loads it.
func loadExample(t *testing.T, spec connector.Spec, doc string) {
	t.Helper()
	i := strings.Index(doc, "```yaml\n")
	j := strings.LastIndex(doc, "```\n")
	if i < 0 || j <= i {
		t.Fatal("no example in the docs")
	}
	snippet := doc[i+len("```yaml\n") : j]
	var m string
	body := strings.TrimPrefix(snippet, "spec:\n")
	if spec.Kind == connector.KindSource {
		m = "apiVersion: sluice.dev/v1\nkind: Pipeline\nmetadata: {name: example}\nspec:\n" + body + "  sinks: [{name: out, type: testdrop}]\n"
	} else {
		m = "apiVersion: sluice.dev/v1\nkind: Pipeline\nmetadata: {name: example}\nspec:\n  source: {type: testsource, config: {path: /tmp/a}}\n" + body
	}
	path := filepath.Join(t.TempDir(), "example.yaml")
	if err := os.WriteFile(path, []byte(m), 0o644); err != nil {
		t.Fatal(err)
	}
	// Secret placeholders are ${env:COMPONENT_FIELD}; give each a value of its field's type.
	values := map[string]string{}
	for _, f := range spec.Fields {
		v := "placeholder"
		switch f.Type {
		case connector.TypeInt, connector.TypeFloat:
			v = "1"
		case connector.TypeBool:
			v = "true"
		case connector.TypeDuration:
			v = "1s"
		case connector.TypeByteSize:
			v = "1KiB"
		}
		values[strings.ToUpper(strings.ReplaceAll(spec.Name+"_"+f.Name, "-", "_"))] = v
	}
	env := func(name string) (string, bool) {
		if v, ok := values[name]; ok {
			return v, true
		}
		return "placeholder", true
	}
	if _, diags := manifests.Load([]string{path}, manifests.LoadOptions{Catalog: testCatalog, LookupEnv: env}); len(diags) > 0 {
		t.Errorf("the example does not load:\n%s\n%v", m, diags)
	}
}

func TestRenderReadme(t *testing.T) {
	src, _ := testCatalog.Lookup(connector.KindSource, "testsource")
	sink, _ := testCatalog.Lookup(connector.KindSink, "testsink")
	r := manifests.RenderReadme(src.Spec, sink.Spec)
	if !strings.HasPrefix(r, manifests.GeneratedMarker) {
		t.Error("README does not start with the generated marker")
	}
	for _, want := range []string{"## `testsource` source", "## `testsink` sink", "### Configuration", "source and a sink"} {
		if !strings.Contains(r, want) {
			t.Errorf("README lacks %q", want)
		}
	}
}

// TestPipelineDocsShowRuntimeDefaults checks that the Pipeline reference shows the defaults the
// engine applies (runtime/pipeline), not copies of them.
func TestPipelineDocsShowRuntimeDefaults(t *testing.T) {
	doc := manifests.RenderPipelineDocs()
	for _, want := range []string{
		fmt.Sprintf("| `spec.batch.max_records` | int |  | `%d` | at least 1 |", pipeline.DefaultBatchRecords),
		fmt.Sprintf("| `spec.batch.max_bytes` | bytesize |  | `%s` |", manifests.FormatByteSize(pipeline.DefaultBatchBytes)),
		fmt.Sprintf("| `spec.batch.linger` | duration |  | `%s` |", pipeline.DefaultBatchLinger),
		fmt.Sprintf("| `spec.buffer.max_records` | int |  | `%d` | at least 1 |", pipeline.DefaultBufferRecords),
		fmt.Sprintf("| `spec.buffer.max_bytes` | bytesize |  | `%s` |", manifests.FormatByteSize(pipeline.DefaultBufferBytes)),
		fmt.Sprintf("| `spec.transforms[].limits.memory` | bytesize |  | `%s` | at least 64KiB and at most %s |", manifests.FormatByteSize(pipeline.DefaultTransformMemory), manifests.FormatByteSize(pipeline.MaxTransformMemory)),
		fmt.Sprintf("| `spec.transforms[].limits.timeout` | duration |  | `%s` |", pipeline.DefaultTransformTimeout),
		fmt.Sprintf("| `spec.transforms[].limits.mode` | string |  | `%s` |", pipeline.DefaultTransformMode),
		fmt.Sprintf("| `spec.transforms[].limits.instances` | int |  |  | at least 1 and at most %d |", pipeline.MaxTransformInstances),
		fmt.Sprintf("| `spec.dead_letter.failure_window` | int |  | `%d` |", pipeline.DefaultFailureWindow),
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("the reference lacks %q", want)
		}
	}
}
