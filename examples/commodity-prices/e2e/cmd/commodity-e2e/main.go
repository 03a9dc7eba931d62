// Command commodity-e2e is the load and fault run of the commodity-prices platform (`make
// e2e-commodity`): it starts a Kafka broker, PostgreSQL and Redis of its own, runs the analytics
// manifest as several `sluice run` processes, feeds price records at a set rate while it injects
// the faults, accounts for every record, prints the report and draws it to a PNG. It exits 1 when
// a record is not accounted for, 2 when the run could not be carried out.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/sluicehq/sluice/examples/commodity-prices/e2e"
)

func main() {
	cfg := e2e.Defaults()
	flag.IntVar(&cfg.Records, "records", cfg.Records, "records to feed into commodity-prices")
	flag.Float64Var(&cfg.Rate, "rate", cfg.Rate, "records per second; 0 feeds as fast as the broker takes them")
	flag.IntVar(&cfg.Processes, "processes", cfg.Processes, "`sluice run` processes of the manifest")
	flag.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "seed of the prices, malformed records and outliers")
	flag.Float64Var(&cfg.Malformed, "malformed", cfg.Malformed, "share of malformed records")
	flag.Float64Var(&cfg.Outlier, "outlier", cfg.Outlier, "share of outliers")
	flag.StringVar(&cfg.Sluice, "sluice", "bin/sluice", "the sluice binary (make build)")
	flag.StringVar(&cfg.Manifest, "manifest", "examples/commodity-prices/platform/analytics.yaml", "the analytics manifest")
	flag.StringVar(&cfg.ServicesDir, "services-dir", os.Getenv("SLUICE_SERVICES_DIR"), "where `make services` installed Kafka (SLUICE_SERVICES_DIR; default build/services)")
	flag.StringVar(&cfg.WorkDir, "dir", "build/e2e/commodity", "work directory (servers' data, process data dirs and logs, the lake); emptied first")
	flag.BoolVar(&cfg.Kill9, "kill9", cfg.Kill9, "kill -9 one sluice run process, restarting it after -kill-down")
	flag.Float64Var(&cfg.KillAt, "kill-at", cfg.KillAt, "share of the records fed when the kill happens")
	flag.DurationVar(&cfg.KillDown, "kill-down", cfg.KillDown, "how long the killed process stays down")
	flag.BoolVar(&cfg.PGOutage, "pg-outage", cfg.PGOutage, "stop PostgreSQL for -pg-for")
	flag.Float64Var(&cfg.PGAt, "pg-at", cfg.PGAt, "share of the records fed when PostgreSQL stops")
	flag.DurationVar(&cfg.PGFor, "pg-for", cfg.PGFor, "length of the PostgreSQL outage")
	flag.BoolVar(&cfg.BrokerRestart, "broker-restart", cfg.BrokerRestart, "restart the Kafka broker")
	flag.Float64Var(&cfg.BrokerAt, "broker-at", cfg.BrokerAt, "share of the records fed when the broker restarts")
	flag.Float64Var(&cfg.QuietFrom, "quiet-from", cfg.QuietFrom, "share of the records fed where the window without faults starts (it ends at the first fault)")
	flag.DurationVar(&cfg.Deadline, "deadline", cfg.Deadline, "how long to wait, after the feed, for everything to be consumed")
	png := flag.String("png", "build/e2e/commodity.png", "where to draw the run; empty draws nothing")
	flag.Parse()
	if cfg.ServicesDir == "" {
		cfg.ServicesDir = "build/services"
	}
	for _, p := range []*string{&cfg.Sluice, &cfg.Manifest, &cfg.ServicesDir} {
		if abs, err := filepath.Abs(*p); err == nil {
			*p = abs
		}
	}
	if err := os.RemoveAll(cfg.WorkDir); err != nil {
		fmt.Fprintln(os.Stderr, "commodity-e2e:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := e2e.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "commodity-e2e:", err)
		os.Exit(2)
	}
	rep.Print(os.Stdout)
	if *png != "" {
		if err := os.MkdirAll(filepath.Dir(*png), 0o755); err == nil {
			err = rep.WritePNG(*png)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "commodity-e2e: draw:", err)
		} else {
			fmt.Printf("drawn to %s\n", *png)
		}
	}
	if len(rep.Problems) > 0 {
		os.Exit(1)
	}
}
