package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/connectors/all"
	"github.com/sluicehq/sluice/internal/metrics"
	"github.com/sluicehq/sluice/runtime/supervisor"
)

// reloadFixture runs the manifests of a directory on a supervisor with a reloader, as
// `sluice run DIR` does, without the watch goroutine: the tests call reload and scan themselves.
type reloadFixture struct {
	dir string
	sup *supervisor.Supervisor
	r   *reloader
}

func reloadManifest(name, extra string) string {
	return fmt.Sprintf(`apiVersion: sluice.dev/v1
kind: Pipeline
metadata: {name: %s}
spec:
  source: {type: generate, config: {rate: 200, template: "{{seq}}"}}
%s  sinks: [{name: out, type: drop}]
`, name, extra)
}

func writeText(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func startReloadFixture(t *testing.T, files map[string]string) *reloadFixture {
	t.Helper()
	return startReloadFixtureWith(t, func(string) {}, files)
}

func startReloadFixtureIn(t *testing.T, dir string) *reloadFixture {
	t.Helper()
	g := &Globals{Catalog: all.Catalog(), DataDir: filepath.Join(dir, "data")}
	log := slog.New(slog.DiscardHandler)
	m := metrics.New()
	args := []string{dir}
	seen := scanStamps(args)
	l, err := g.loadPipelines(context.Background(), log, m, supervisor.Options{}, args)
	if err != nil || len(l.diags) > 0 {
		t.Fatalf("load: %v %v", err, l.diags)
	}
	r, err := newReloader(g, log, m, l.sup, args, l.specs, seen, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- l.sup.Run(ctx, supervisor.RunOptions{Reload: true}) }()
	t.Cleanup(func() {
		stop()
		if err := <-ran; err != nil {
			t.Error(err)
		}
		_ = l.sup.Close(context.Background())
	})
	f := &reloadFixture{dir: dir, sup: l.sup, r: r}
	f.waitRunning(t)
	return f
}

// waitRunning waits until every pipeline runs.
func (f *reloadFixture) waitRunning(t *testing.T) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(5 * time.Millisecond) {
		all := true
		for _, st := range f.sup.Status() {
			all = all && st.State == "running"
		}
		if all {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not every pipeline running: %+v", f.sup.Status())
		}
	}
}

func (f *reloadFixture) restarts(t *testing.T) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, st := range f.sup.Status() {
		out[st.Name] = st.Restarts
	}
	return out
}

func (f *reloadFixture) path(name string) string { return filepath.Join(f.dir, name) }

// A pipeline moved to another file, and a manifest whose text changes but not its meaning, are
// not restarted; the reloader then knows the pipeline's new file.
func TestReloadMovedOrReformattedPipelineIsNotRestarted(t *testing.T) {
	f := startReloadFixture(t, map[string]string{"a.yaml": reloadManifest("one", "") + "---\n" + reloadManifest("two", ""), "b.yaml": reloadManifest("three", "")})
	// "two" moves from a.yaml to b.yaml, written in the same change; a.yaml gains a comment.
	writeText(t, f.path("a.yaml"), "# only one now\n"+reloadManifest("one", ""))
	writeText(t, f.path("b.yaml"), reloadManifest("three", "")+"---\n"+reloadManifest("two", ""))
	rep := f.r.reload(context.Background(), "signal", nil)
	if rep.Result != "ok" || len(rep.Restarted)+len(rep.Added)+len(rep.Removed) != 0 || !slices.Equal(rep.Unchanged, []string{"one", "three", "two"}) {
		t.Fatalf("report = %+v, want everything unchanged", rep)
	}
	if got := f.restarts(t); got["one"]+got["two"]+got["three"] != 0 || len(got) != 3 {
		t.Fatalf("restarts = %v", got)
	}
	st := f.r.state().(reloadState)
	for _, p := range st.Pipelines {
		if p.Name == "two" && p.File != f.path("b.yaml") {
			t.Errorf("two comes from %s, want b.yaml", p.File)
		}
	}
}

// A pipeline moved by two saves, the new file first: the first save is refused (the name is
// still in the old file), the second applies both, and the pipeline never restarts.
func TestReloadMoveInTwoSavesAppliesOnceBothAreDone(t *testing.T) {
	f := startReloadFixture(t, map[string]string{"a.yaml": reloadManifest("one", "") + "---\n" + reloadManifest("two", ""), "b.yaml": reloadManifest("three", "")})
	writeText(t, f.path("b.yaml"), reloadManifest("three", "")+"---\n"+reloadManifest("two", ""))
	rep := f.r.reload(context.Background(), "watch", []string{f.path("b.yaml")})
	if rep.Result != "error" || len(rep.Errors) != 1 || !strings.Contains(rep.Errors[0], `pipeline "two" is also defined at `+f.path("a.yaml")+":") ||
		!strings.HasPrefix(rep.Errors[0], f.path("b.yaml")+":") {
		t.Fatalf("report = %+v, want the duplicate placed in b.yaml", rep)
	}
	writeText(t, f.path("a.yaml"), reloadManifest("one", ""))
	rep = f.r.reload(context.Background(), "watch", []string{f.path("a.yaml")})
	if rep.Result != "ok" || len(rep.Restarted)+len(rep.Added)+len(rep.Removed) != 0 {
		t.Fatalf("report = %+v, want the move applied with nothing restarted", rep)
	}
	if st := f.r.state().(reloadState); len(st.Errors) != 0 {
		t.Fatalf("errors left: %+v", st.Errors)
	}
	if got := f.restarts(t); got["two"] != 0 || len(got) != 3 {
		t.Fatalf("restarts = %v", got)
	}
}

// Two new files defining the same new name: neither is applied, each names the other.
func TestReloadSameNewNameInTwoFiles(t *testing.T) {
	f := startReloadFixture(t, map[string]string{"a.yaml": reloadManifest("one", "")})
	writeText(t, f.path("b.yaml"), reloadManifest("new", ""))
	writeText(t, f.path("c.yaml"), reloadManifest("new", ""))
	rep := f.r.reload(context.Background(), "watch", f.r.scan())
	if rep.Result != "error" || len(rep.Errors) != 2 || len(rep.Added) != 0 {
		t.Fatalf("report = %+v", rep)
	}
	for i, other := range []string{"c.yaml", "b.yaml"} {
		if !strings.Contains(rep.Errors[i], "is also defined at "+f.path(other)) {
			t.Errorf("error %d = %s, want it to name %s", i, rep.Errors[i], other)
		}
	}
	if len(f.sup.Status()) != 1 {
		t.Fatalf("status = %+v, want only one", f.sup.Status())
	}
}

// A module rebuilt in place restarts the pipelines that load it (the watch sees the module
// change), and only them.
func TestReloadRestartsPipelinesWhoseModuleChanged(t *testing.T) {
	root, err := filepath.Abs("../../transforms/validate_price")
	if err != nil {
		t.Fatal(err)
	}
	rust, err := os.ReadFile(filepath.Join(root, "rust", "validate_price.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	goModule, err := os.ReadFile(filepath.Join(root, "go", "validate_price.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	transform := "  transforms: [{name: validate, wasm: validate.wasm}]\n  dead_letter: {type: drop}\n"
	f := startReloadFixtureWith(t, func(d string) {
		writeText(t, filepath.Join(d, "validate.wasm"), string(rust))
	}, map[string]string{"with.yaml": reloadManifest("with", transform), "without.yaml": reloadManifest("without", "")})
	if changed := f.r.scan(); len(changed) != 0 {
		t.Fatalf("first scan: %v changed", changed)
	}
	writeText(t, f.path("validate.wasm"), string(goModule))
	changed := f.r.scan()
	if !slices.Equal(changed, []string{f.path("with.yaml")}) {
		t.Fatalf("scan after the module changed = %v, want with.yaml", changed)
	}
	rep := f.r.reload(context.Background(), "watch", changed)
	if rep.Result != "ok" || !slices.Equal(rep.Restarted, []string{"with"}) {
		t.Fatalf("report = %+v, want with restarted", rep)
	}
	if got := f.restarts(t); got["with"] != 1 || got["without"] != 0 {
		t.Fatalf("restarts = %v", got)
	}
}

// startReloadFixtureWith is startReloadFixture with prepare run on the directory first.
func startReloadFixtureWith(t *testing.T, prepare func(dir string), files map[string]string) *reloadFixture {
	t.Helper()
	dir := t.TempDir()
	prepare(dir)
	for name, text := range files {
		writeText(t, filepath.Join(dir, name), text)
	}
	return startReloadFixtureIn(t, dir)
}
