package scraper_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/connectors/all"
	"github.com/sluicehq/sluice/manifests"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// TestValidateShowsTheFieldLine: a bad CSS selector, cron expression or start URL is reported at
// the line and column of the setting, as `sluice validate` prints it.
func TestValidateShowsTheFieldLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "crawl.yaml")
	manifest := `apiVersion: sluice.dev/v1
kind: Pipeline
metadata: {name: crawl}
spec:
  source:
    type: scraper
    config:
      start_urls: ["rentals.example.com/"]
      follow: ["a.next"]
      item:
        selector: "div.listing >"
        fields: {id: {attr: data-id}}
  sinks: [{name: out, type: drop}]
---
apiVersion: sluice.dev/v1
kind: Pipeline
metadata: {name: crawl2}
spec:
  source:
    type: scraper
    config:
      start_urls: ["https://rentals.example.com/"]
      follow: ["a[href"]
      item:
        selector: div.listing
        fields: {id: {attr: data-id}}
  sinks: [{name: out, type: drop}]
---
apiVersion: sluice.dev/v1
kind: Pipeline
metadata: {name: crawl3}
spec:
  source:
    type: scraper
    config:
      start_urls: ["https://rentals.example.com/"]
      schedule: "0 99 * * *"
      item:
        selector: div.listing
        fields: {id: {attr: data-id}}
  sinks: [{name: out, type: drop}]
`
	if err := os.WriteFile(path, []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	cat := all.Catalog()
	// The constructor's check, as `sluice validate` plugs it in (without I/O).
	check := func(kind connector.Kind, c *manifests.Component) error {
		comp, ok := cat.Lookup(kind, c.Type)
		if !ok || kind != connector.KindSource {
			return nil
		}
		_, err := comp.NewSource(c.Config, connector.Env{})
		return err
	}
	_, diags := manifests.Load([]string{path}, manifests.LoadOptions{Catalog: cat, CheckComponent: check})
	var got []string
	for _, d := range diags {
		got = append(got, d.String())
	}
	text := strings.Join(got, "\n")
	for _, want := range []string{
		"crawl.yaml:8:7: source: config.start_urls: \"rentals.example.com/\" is not an absolute http:// or https:// URL",
		"crawl.yaml:23:7: source: config.follow: CSS selector \"a[href\"",
		"crawl.yaml:37:7: source: config.schedule: cron expression \"0 99 * * *\"",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("missing diagnostic %q in:\n%s", want, text)
		}
	}
	if len(diags) != 3 {
		t.Errorf("%d diagnostics (a constructor stops at its first problem, one per pipeline):\n%s", len(diags), text)
	}
}
