package rentallistings_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/examples/rental-listings/platform"
	"github.com/sluicehq/sluice/internal/testenv"
)

var (
	binDir   string
	binMu    sync.Mutex
	binBuilt = map[string]string{}
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "rental-listings-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// build compiles a main package of this module, once per run of the tests.
func build(t *testing.T, pkg string) string {
	t.Helper()
	binMu.Lock()
	defer binMu.Unlock()
	if out, ok := binBuilt[pkg]; ok {
		return out
	}
	out := filepath.Join(binDir, filepath.Base(pkg))
	if b, err := exec.Command("go", "build", "-o", out, pkg).CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	binBuilt[pkg] = out
	return out
}

// TestManifestsValidate checks the platform's manifests with `sluice validate`.
func TestManifestsValidate(t *testing.T) {
	if testing.Short() {
		t.Skip("builds sluice")
	}
	dir := t.TempDir()
	sluice := build(t, "github.com/sluicehq/sluice/cmd/sluice")
	cmd := exec.Command(sluice, "validate", "--data-dir", filepath.Join(dir, "data"), ".")
	cmd.Env = append(os.Environ(), "LISTINGS_SITE=http://127.0.0.1:8790", "LISTINGS_HOST=127.0.0.1:8790", "MASK_SALT=s",
		"PG_DSN=postgres://u@127.0.0.1:5432/db", "REDIS_ADDR=127.0.0.1:6379", "PULSAR_URL=pulsar://127.0.0.1:6650",
		"EVENTS_WEBHOOK_ADDR=127.0.0.1:8791", "LAKE_CATALOG_URI=sqlite:////tmp/lake/catalog.db", "LAKE_WAREHOUSE=file:///tmp/lake/warehouse")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "4 pipelines") {
		t.Fatalf("sluice validate: %v\n%s", err, out)
	}
}

// TestPlatformAgainstServices runs the whole platform (the listing site, one `sluice run` of
// listings.yaml, events.yaml and activity.yaml) against the real Postgres, Redis and Pulsar, with
// the history table on a SQLite catalog, and accounts for every record against the site's truth:
// each distinct valid listing exactly once, as served, in Postgres, Redis and Iceberg; each broken
// or low-quality item and each failing page once in the dead letters with its reason; the
// duplicates dropped by dedupe; every event sent once in Pulsar and counted once in its Redis
// window; no landlord's name, email or phone anywhere. It drops these manifests' tables, keys and
// topic first, so the services must not be shared with another run of it (or of make e2e-rentals).
func TestPlatformAgainstServices(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the services")
	}
	r := runPlatform(t, 0, "-seed", "5", "-pages", "60", "-webhook-events", "500", "-feed-events", "500")

	// The site served every case the run is meant to show.
	tr := r.Truth
	kinds := map[string]int{}
	for _, x := range tr.Rejected {
		kinds[x.Kind]++
	}
	for _, k := range []string{"no_id", "no_price", "price_on_request", "price_too_low", "low_quality"} {
		if kinds[k] == 0 {
			t.Errorf("the site served no item of kind %s (%v)", k, kinds)
		}
	}
	degraded := 0
	for _, l := range tr.Listings {
		if l.Quality < 1 {
			degraded++
		}
	}
	if tr.Duplicates == 0 || len(tr.ErrorPages) == 0 || tr.FlakyPages == 0 || degraded == 0 || tr.WebhookSent != 500 || tr.FeedSent != 500 {
		t.Errorf("the site served %d duplicates, %d error pages, %d flaky pages, %d listings without an area, %d webhook and %d feed events",
			tr.Duplicates, len(tr.ErrorPages), tr.FlakyPages, degraded, tr.WebhookSent, tr.FeedSent)
	}
	if r.Postgres != len(tr.Listings) || r.Redis != len(tr.Listings) || r.Iceberg != len(tr.Listings) ||
		r.DedupeDropped != tr.Duplicates || r.ActivityCounted != len(tr.Events) || r.PersonalChecked == 0 || r.FilesChecked == 0 {
		t.Errorf("report %+v", *r)
	}
}

// TestPlatformSurvivesKill9 runs the platform as TestPlatformAgainstServices does, with events
// flowing for about 5 s, and kills `sluice run` with SIGKILL twice during the crawl (at a third
// and two thirds of the listings in Postgres), starting it again each time on its data directory.
// Every record is still accounted for: the listings once in Postgres and Redis and at least once
// in the Iceberg history, the dead letters at least once, every event in Pulsar at least once and
// counted exactly once in its window, except feed events the site wrote in the 2 s before a kill
// (the WebSocket feed cannot be replayed; events.yaml says so).
func TestPlatformSurvivesKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the services")
	}
	r := runPlatform(t, 2, "-seed", "7", "-pages", "150", "-webhook-events", "500", "-feed-events", "500", "-event-rate", "100")
	if r.Kills != 2 || r.Postgres != len(r.Truth.Listings) || r.ActivityCounted != r.PulsarEvents || r.PulsarEvents+r.FeedLostInFlight != len(r.Truth.Events) {
		t.Errorf("report %+v", *r)
	}
}

// runPlatform runs the platform against the services with the site's flags, killing `sluice run`
// kills times, and fails the test unless every record is accounted for.
func runPlatform(t *testing.T, kills int, siteArgs ...string) *platform.Report {
	t.Helper()
	pgDSN := testenv.Require(t, "PG_DSN")
	redisAddr := testenv.Require(t, "REDIS_ADDR")
	pulsarURL := testenv.Require(t, "PULSAR_URL")
	pulsarAdmin := testenv.Require(t, "PULSAR_ADMIN_URL")
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()

	dir := t.TempDir()
	sluice := build(t, "github.com/sluicehq/sluice/cmd/sluice")
	site := build(t, "github.com/sluicehq/sluice/examples/rental-listings/listingsite")
	r, err := platform.Run(ctx, platform.Options{
		Sluice: sluice, Site: site, Manifests: ".", Dir: dir,
		PGDSN: pgDSN, RedisAddr: redisAddr, PulsarURL: pulsarURL, PulsarAdminURL: pulsarAdmin,
		SiteArgs: siteArgs, Deadline: 4 * time.Minute, Kills: kills,
	})
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	r.Print(&out)
	t.Log("\n" + out.String())
	if !r.OK() {
		logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
		for _, f := range logs {
			b, _ := os.ReadFile(f)
			if len(b) > 8000 {
				b = b[len(b)-8000:]
			}
			t.Logf("%s:\n%s", filepath.Base(f), b)
		}
		t.Fatalf("%d records not accounted for", len(r.Problems))
	}
	return r
}
