package commodityprices_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/examples/commodity-prices/e2e"
	"github.com/sluicehq/sluice/internal/testenv"
)

// TestE2EKill9FaultsReduced is `make e2e-commodity` made small: the analytics manifest as three
// `sluice run` processes against a Kafka broker, PostgreSQL and Redis of the test's own, 30,000
// price records fed at 450 records/s (so that more than a minute of event time passes and minute
// windows close), with the three faults shortened: kill -9 of one process (restarted after 2 s),
// a 5-second PostgreSQL outage and a broker restart. Every valid record must be in Iceberg, every
// malformed one in the dead letters of both pipelines with a reason, the Postgres minute windows
// equal to those of the records produced, the latest price of each commodity in Redis and one
// distinct alert per outlier; duplicates are reported (the manifest delivers at least once).
func TestE2EKill9FaultsReduced(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker, PostgreSQL, Redis and three sluice processes")
	}
	services := testenv.Require(t, "SLUICE_SERVICES_DIR") // the Kafka jars
	sluice := build(t, "github.com/sluicehq/sluice/cmd/sluice")
	manifest, err := filepath.Abs("platform/analytics.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := e2e.Defaults()
	cfg.Records, cfg.Rate = 30_000, 450
	cfg.Sluice, cfg.Manifest, cfg.ServicesDir, cfg.WorkDir = sluice, manifest, services, t.TempDir()
	cfg.KillAt, cfg.KillDown = 0.25, 2*time.Second
	cfg.PGAt, cfg.PGFor = 0.45, 5*time.Second
	cfg.BrokerAt = 0.7
	cfg.Deadline = 5 * time.Minute
	var log strings.Builder
	cfg.Log = &log
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	rep, err := e2e.Run(ctx, cfg)
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	var out strings.Builder
	rep.Print(&out)
	t.Logf("%s%s", log.String(), out.String())
	for _, p := range rep.Problems {
		t.Errorf("not accounted for: %s", p)
	}
	if len(rep.Faults) != 3 {
		t.Errorf("%d faults happened, want kill -9, Postgres outage and broker restart: %+v", len(rep.Faults), rep.Faults)
	}
	// The checks must have had something to check.
	if rep.LakeRows < rep.Valid || rep.Malformed == 0 || rep.Outliers == 0 {
		t.Errorf("%d rows for %d valid records, %d malformed, %d outliers", rep.LakeRows, rep.Valid, rep.Malformed, rep.Outliers)
	}
	if rep.WindowsMustClose == 0 || rep.WindowsChecked < rep.WindowsMustClose || rep.RedisChecked != 10 {
		t.Errorf("%d Postgres windows checked of %d that must have closed, %d Redis prices checked", rep.WindowsChecked, rep.WindowsMustClose, rep.RedisChecked)
	}
	// The latency histograms live in the processes: what the process killed with kill -9
	// observed after its last scrape dies with it, so fewer observations than records is
	// expected; most records must have been observed all the same.
	for _, sink := range []string{"commodity-analytics/lake", "commodity-analytics/latest"} {
		if n := rep.Latency[sink].N; n < rep.Valid*9/10 {
			t.Errorf("sink %s: %d end-to-end latency observations for %d valid records", sink, n, rep.Valid)
		}
	}
}
