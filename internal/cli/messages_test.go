package cli

import (
	"net"
	"strings"
	"testing"
)

// Defect 10: `sluice docs` without an argument said "accepts 1 arg(s), received 0".
func TestDocsWithoutNameListsTheComponents(t *testing.T) {
	out, err := runCLI(t, "docs")
	if err != nil {
		t.Fatalf("docs: %v\n%s", err, out)
	}
	for _, want := range []string{"KIND", "source", "generate", "sink", "drop", "sluice docs NAME"} {
		if !strings.Contains(out, want) {
			t.Fatalf("docs without a name lacks %q:\n%s", want, out)
		}
	}
}

// Defect 10: an admin port clash said only "bind: address already in use".
func TestAdminPortClashNamesTheFlag(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	manifest := writeManifest(t, `apiVersion: sluice.dev/v1
kind: Pipeline
metadata: {name: clash}
spec:
  source: {type: generate, config: {count: 1}}
  sinks: [{name: out, type: drop}]
`)
	out, err := runCLI(t, "--admin-addr", ln.Addr().String(), "run", manifest)
	if err == nil || !strings.Contains(err.Error(), "address already in use") || !strings.Contains(err.Error(), "--admin-addr") {
		t.Fatalf("err = %v; want the clash and the --admin-addr way out\n%s", err, out)
	}
}

// Defect 11: the --admin-addr help omitted /pipelines.
func TestAdminAddrHelpListsEveryEndpoint(t *testing.T) {
	f := NewRoot().PersistentFlags().Lookup("admin-addr")
	for _, want := range []string{"/healthz", "/readyz", "/metrics", "/pipelines"} {
		if !strings.Contains(f.Usage, want) {
			t.Errorf("--admin-addr help %q lacks %s", f.Usage, want)
		}
	}
}
