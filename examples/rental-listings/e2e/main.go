// Command e2e runs the rental listings platform end to end against the services named in the
// environment (PG_DSN, REDIS_ADDR, PULSAR_URL, PULSAR_ADMIN_URL; `make services` writes them to
// build/services.env) and prints the accounting of every record. It exits 1 when a record is not
// accounted for. `make e2e-rentals` builds and runs it.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/sluicehq/sluice/examples/rental-listings/platform"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e-rentals:", err)
		os.Exit(1)
	}
}

func run() error {
	sluice := flag.String("sluice", "bin/sluice", "the sluice binary")
	site := flag.String("site", "build/bin/listingsite", "the listingsite binary")
	manifests := flag.String("manifests", "examples/rental-listings", "the directory of the platform's manifests")
	dir := flag.String("dir", "build/e2e-rentals", "a directory for the run (emptied first): data dirs, catalog, warehouse, logs")
	siteArgs := flag.String("site-args", "", "extra flags of listingsite, space-separated (-pages 300 -feed-events 2000 ...)")
	deadline := flag.Duration("deadline", 5*time.Minute, "how long to wait for every record to land")
	kills := flag.Int("kills", 0, "kill `sluice run` with SIGKILL this many times during the crawl, starting it again each time")
	flag.Parse()
	env := map[string]string{}
	for _, k := range []string{"PG_DSN", "REDIS_ADDR", "PULSAR_URL", "PULSAR_ADMIN_URL"} {
		if env[k] = os.Getenv(k); env[k] == "" {
			return fmt.Errorf("%s is not set: run make services and source build/services.env (make e2e-rentals does)", k)
		}
	}
	abs, err := filepath.Abs(*dir)
	if err != nil {
		return err
	}
	if err := os.RemoveAll(abs); err != nil {
		return err
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	began := time.Now()
	r, err := platform.Run(ctx, platform.Options{
		Sluice: *sluice, Site: *site, Manifests: *manifests, Dir: abs,
		PGDSN: env["PG_DSN"], RedisAddr: env["REDIS_ADDR"], PulsarURL: env["PULSAR_URL"], PulsarAdminURL: env["PULSAR_ADMIN_URL"],
		SiteArgs: strings.Fields(*siteArgs), Deadline: *deadline, Log: os.Stdout, Kills: *kills,
	})
	if err != nil {
		return err
	}
	fmt.Println()
	r.Print(os.Stdout)
	fmt.Printf("\nRun took %.1f s; logs, catalog and warehouse under %s\n", time.Since(began).Seconds(), *dir)
	if !r.OK() {
		return fmt.Errorf("%d records not accounted for", len(r.Problems))
	}
	return nil
}
