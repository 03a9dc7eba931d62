package main_test

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// exampleEnv sets the variables the example manifests read (${env:NAME}); validate resolves them.
var exampleEnv = []string{"KAFKA=127.0.0.1:9092", "REGISTRY=http://127.0.0.1:8081", "PG_DSN=postgres://u@127.0.0.1:5432/db",
	"REDIS_ADDR=127.0.0.1:6379", "PULSAR_URL=pulsar://127.0.0.1:6650", "LAKE_CATALOG_URI=sqlite:////tmp/lake/catalog.db",
	"LAKE_WAREHOUSE=file:///tmp/lake/warehouse", "LISTINGS_SITE=http://127.0.0.1:8790", "LISTINGS_HOST=127.0.0.1:8790",
	"EVENTS_WEBHOOK_ADDR=127.0.0.1:8791", "MASK_SALT=example-salt"}

// TestExampleManifestsValidate checks that the example pipelines stay valid as the manifest
// format and the components evolve (the plugin example needs its plugin built; its own test runs
// it).
func TestExampleManifestsValidate(t *testing.T) {
	bin := buildSluice(t)
	files, err := filepath.Glob("../../examples/*/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ran := 0
	for _, f := range files {
		if strings.Contains(f, "plugin-") {
			continue
		}
		ran++
		abs, err := filepath.Abs(f)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "validate", abs)
		cmd.Dir = t.TempDir() // its module cache (.sluice/) goes there
		cmd.Env = append(cmd.Environ(), exampleEnv...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("sluice validate %s: %v\n%s", f, err, out)
		}
	}
	if ran < 3 {
		t.Fatalf("only %d example manifests found", ran)
	}
}
