// Command summary prints where the commodity-prices demo put its data and a summary read back
// from its Iceberg tables (rows, price range and latest price per commodity, minute windows,
// alerts), then accounts for every record the price API produced: table rows plus dead letters.
// It exits 1 when a record is missing or counted twice.
//
//	go run ./examples/commodity-prices/summary -dir build/demo -api http://127.0.0.1:8787
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/sluicehq/sluice/examples/commodity-prices/ledger"
)

func main() {
	dir := flag.String("dir", "build/demo", "the demo's directory (DEMO_DIR of the manifests)")
	api := flag.String("api", "http://127.0.0.1:8787", "the price API's base URL, to compare what it produced")
	flag.Parse()
	if err := run(*dir, *api); err != nil {
		fmt.Fprintln(os.Stderr, "summary:", err)
		os.Exit(1)
	}
}

func run(dir, api string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	at := func(name string) string { return filepath.Join(dir, name) }
	lake, err := ledger.OpenLake(ctx, at("catalog.db"), at("warehouse"))
	if err != nil {
		return err
	}
	defer lake.Close()
	rows, err := lake.Prices(ctx)
	if err != nil {
		return err
	}
	windows, err := lake.Windows(ctx)
	if err != nil {
		return err
	}
	alerts, err := ledger.ReadJSONLines[ledger.Alert](at("alerts.jsonl"))
	if err != nil {
		return err
	}
	priceLetters, err := ledger.ReadJSONLines[ledger.DeadLetter](at("rejected.jsonl"))
	if err != nil {
		return err
	}
	statsLetters, err := ledger.ReadJSONLines[ledger.DeadLetter](at("stats-rejected.jsonl"))
	if err != nil {
		return err
	}
	produced, err := ledger.APIStats(ctx, api)
	if err != nil {
		return err
	}

	fmt.Printf("Where the data landed (%s):\n", dir)
	fmt.Printf("  Iceberg, SQLite catalog %q   %s, files under %s\n", ledger.CatalogName, at("catalog.db"), at("warehouse"))
	fmt.Printf("    market.prices             %d rows (partitioned by day and commodity)\n", len(rows))
	fmt.Printf("    market.price_stats_1m     %d windows of one minute\n", len(windows))
	fmt.Printf("  minute statistics           %s\n", at("stats.jsonl"))
	fmt.Printf("  outlier alerts              %s (%d)\n", at("alerts.jsonl"), len(alerts))
	fmt.Printf("  dead letters                %s (%d), %s (%d)\n\n", at("rejected.jsonl"), len(priceLetters), at("stats-rejected.jsonl"), len(statsLetters))

	fmt.Println("Read back from the Iceberg tables:")
	tw := tabwriter.NewWriter(os.Stdout, 2, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "commodity\trows\tmin\tmax\tlatest\tminutes\tin windows\talerts\t")
	for _, c := range ledger.Summarize(rows, windows, alerts) {
		fmt.Fprintf(tw, "%s\t%d\t%.4f\t%.4f\t%.4f\t%d\t%d\t%d\t\n", c.Name, c.Rows, c.Min, c.Max, c.Latest, c.Windows, c.WindowRecords, c.Alerts)
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	reasons := map[string]int{}
	for _, d := range priceLetters {
		reasons[d.Reason]++
	}
	keys := make([]string, 0, len(reasons))
	for r := range reasons {
		keys = append(keys, r)
	}
	sort.Strings(keys)
	fmt.Printf("\nEvery record accounted for (the price API's GET /v1/stats against what landed):\n")
	fmt.Printf("  produced %d = %d valid + %d malformed\n", produced.Produced, produced.Valid, produced.Malformed)
	fmt.Printf("  commodity-prices: %d table rows + %d dead letters = %d\n", len(rows), len(priceLetters), len(rows)+len(priceLetters))
	var counted int64
	for _, w := range windows {
		counted += w.Count
	}
	fmt.Printf("  commodity-stats:  %d records in windows + %d dead letters = %d\n", counted, len(statsLetters), counted+int64(len(statsLetters)))
	fmt.Printf("  outliers: %d produced, %d alerts\n", produced.Outliers, len(alerts))
	fmt.Printf("  dead letters by reason:")
	for _, r := range keys {
		fmt.Printf(" %q %d;", r, reasons[r])
	}
	fmt.Println()
	if problems := ledger.Account(produced, rows, windows, priceLetters, statsLetters); len(problems) > 0 {
		for _, p := range problems {
			fmt.Println("  MISMATCH:", p)
		}
		return fmt.Errorf("%d records not accounted for as expected", len(problems))
	}
	fmt.Println("  OK: nothing lost, nothing counted twice")
	return nil
}
