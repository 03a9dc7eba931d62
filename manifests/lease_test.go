package manifests_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/manifests"
)

// leaseManifest writes a pipeline whose spec ends with lease (indented under spec:) and
// returns its path.
func leaseManifest(t *testing.T, lease string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "p.yaml")
	doc := `apiVersion: sluice.dev/v1
kind: Pipeline
metadata: {name: poller}
spec:
  source: {type: testsource, config: {path: /in}}
  sinks: [{name: out, type: testsink, config: {url: "http://x"}}]
` + lease
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLeaseDecodes(t *testing.T) {
	path := leaseManifest(t, `  lease:
    postgres: {dsn: "postgres://sluice:${env:DB_PASSWORD}@db:5432/ops"}
    name: orders-poller
    retry: 250ms
`)
	ps, diags := manifests.Load([]string{path}, testOptions())
	if len(diags) > 0 {
		t.Fatal(diags)
	}
	l := ps[0].Config().Lease
	if l == nil || l.Postgres != "postgres://sluice:hunter2-db-password@db:5432/ops" || l.Name != "orders-poller" || l.Retry != 250*time.Millisecond {
		t.Fatalf("lease = %+v", l)
	}
	if !slices.Contains(l.Secrets, l.Postgres) || !slices.Contains(l.Secrets, "hunter2-db-password") {
		t.Fatalf("the dsn is not listed as a secret: %q", l.Secrets)
	}

	// Defaults; no lease at all.
	ps, diags = manifests.Load([]string{leaseManifest(t, "  lease: {postgres: {dsn: \"host=db dbname=ops\"}}\n")}, testOptions())
	if len(diags) > 0 {
		t.Fatal(diags)
	}
	if l := ps[0].Config().Lease; l == nil || l.Name != "" || l.Retry != time.Second {
		t.Fatalf("lease = %+v", l)
	}
	ps, diags = manifests.Load([]string{leaseManifest(t, "  lease: {kubernetes: {namespace: ops}}\n")}, testOptions())
	if len(diags) > 0 {
		t.Fatal(diags)
	}
	if l := ps[0].Config().Lease; l == nil || l.Postgres != "" || l.Kubernetes == nil || l.Kubernetes.Namespace != "ops" || l.Kubernetes.Duration != 15*time.Second {
		t.Fatalf("kubernetes lease = %+v", l)
	}
	ps, _ = manifests.Load([]string{leaseManifest(t, "")}, testOptions())
	if ps[0].Config().Lease != nil {
		t.Fatal("a pipeline without lease: has a lease")
	}
}

func TestLeaseErrors(t *testing.T) {
	for _, tc := range []struct {
		name, lease string
		line, col   int
		want        string
	}{
		{"neither", "  lease: {name: x}\n", 7, 3, "spec.lease: set postgres or kubernetes"},
		{"both", "  lease: {postgres: {dsn: \"host=db\"}, kubernetes: {}}\n", 7, 3, "spec.lease: set postgres or kubernetes, not both"},
		{"k8s duration", "  lease:\n    kubernetes: {duration: 1500ms}\n", 8, 18, "spec.lease.kubernetes.duration: must be whole seconds"},
		{"k8s duration and retry", "  lease:\n    kubernetes: {duration: 2s}\n    retry: 1s\n", 8, 18, "at least three times retry (1s), got 2s"},
		{"k8s server", "  lease:\n    kubernetes: {server: \"http://10.0.0.1:6443\"}\n", 8, 18, "spec.lease.kubernetes.server: must be an https:// URL"},
		{"k8s namespace", "  lease:\n    kubernetes: {namespace: Ops_1}\n", 8, 18, `spec.lease.kubernetes.namespace: "Ops_1" is not a valid namespace`},
		{"k8s name", "  lease:\n    kubernetes: {}\n    name: Orders_Poller\n", 9, 5, `spec.lease: "Orders_Poller" cannot name a Kubernetes Lease object`},
		{"missing dsn", "  lease:\n    postgres: {}\n", 8, 15, `missing required key "dsn"`},
		{"typo", "  lease:\n    postgres: {dsn: \"host=db\"}\n    retyr: 1s\n", 9, 5, `unknown key "retyr" in spec.lease; did you mean "retry"?`},
		{"other scheme", "  lease:\n    postgres:\n      dsn: mysql://u:hunter2-literal-token@db/x\n", 9, 7, "spec.lease.postgres.dsn: is a URL of another scheme; use postgres://"},
		{"not a dsn", "  lease:\n    postgres:\n      dsn: hunter2-literal-token\n", 9, 7, "spec.lease.postgres.dsn: is neither a postgres:// URL nor key=value pairs"},
		{"bad url", "  lease:\n    postgres:\n      dsn: \"postgres://u:hunter2-literal-token@[::1\"\n", 9, 7, "spec.lease.postgres.dsn: is not a valid postgres:// URL"},
		{"short retry", "  lease:\n    postgres: {dsn: \"host=db\"}\n    retry: 10ms\n", 9, 5, "spec.lease.retry: must be at least 100ms, got 10ms"},
		{"bad retry", "  lease:\n    postgres: {dsn: \"host=db\"}\n    retry: soon\n", 9, 12, "spec.lease.retry"},
		{"empty name", "  lease:\n    postgres: {dsn: \"host=db\"}\n    name: \"\"\n", 9, 5, "spec.lease.name: must not be empty"},
		{"not a mapping", "  lease: yes\n", 7, 10, "expected a mapping"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, diags := manifests.Load([]string{leaseManifest(t, tc.lease)}, testOptions())
			if len(diags) != 1 {
				t.Fatalf("want one diagnostic, got %v", diags)
			}
			d := diags[0]
			if d.Pos.Line != tc.line || d.Pos.Col != tc.col || !strings.Contains(d.Message, tc.want) {
				t.Fatalf("got %d:%d %q (hint %q), want %d:%d %q", d.Pos.Line, d.Pos.Col, d.Message, d.Hint, tc.line, tc.col, tc.want)
			}
			for _, s := range secretValues {
				if strings.Contains(d.String(), s) {
					t.Fatalf("diagnostic shows the secret: %s", d)
				}
			}
		})
	}
}

// The loader refuses a leased pipeline with an aggregate stage, and the JSON Schema knows the
// key.
func TestLeaseRefusesAggregatesAndIsInTheSchema(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "p.yaml")
	doc := `apiVersion: sluice.dev/v1
kind: Pipeline
metadata: {name: poller}
spec:
  source: {type: testsource, config: {path: /in}}
  transforms:
    - name: stats
      aggregate: {wasm: agg.wasm, window: {tumbling: 1m}}
  sinks: [{name: out, type: testsink, config: {url: "http://x"}}]
  lease: {postgres: {dsn: "host=db"}}
`
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	_, diags := manifests.Load([]string{path}, testOptions())
	if len(diags) != 1 || diags[0].Pos.Line != 10 || !strings.Contains(diags[0].Message, `transform "stats" is an aggregate stage`) {
		t.Fatalf("diagnostics: %v", diags)
	}
	sch := compileSchema(t)
	good := leaseManifest(t, "  lease: {postgres: {dsn: \"host=db\"}, name: x, retry: 2s}\n")
	if err := sch.Validate(yamlDocuments(t, good)[0]); err != nil {
		t.Fatalf("the schema refuses a good lease: %v", err)
	}
	bad := leaseManifest(t, "  lease: {postgres: {dsn: \"host=db\"}, retyr: 2s}\n")
	if err := sch.Validate(yamlDocuments(t, bad)[0]); err == nil {
		t.Fatal("the schema accepts an unknown lease key")
	}
	if !strings.Contains(manifests.RenderPipelineDocs(), "`spec.lease.postgres.dsn`") {
		t.Fatal("the reference does not document spec.lease.postgres.dsn")
	}
}
