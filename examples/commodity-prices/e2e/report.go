package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/examples/commodity-prices/ledger"
	"github.com/sluicehq/sluice/examples/commodity-prices/pricerecord"
)

// Report is what a run measured and found.
type Report struct {
	Config Config

	Produced, Valid, Malformed, Outliers int64

	// Accounting.
	LakeRows, LakeMissing, LakeDuplicates, LakeUnexpected int64
	DuplicateSeqs                                         []int64          // the first few
	DeadLetters                                           map[string]int64 // per pipeline, distinct malformed records found
	DeadLetterDuplicates                                  int64
	DeadLetterValid                                       map[string]int64 // valid records dead-lettered, per pipeline and kind
	Windows, WindowsChecked, WindowsMustClose             int
	RedisChecked                                          int
	Alerts, AlertDuplicates                               int64
	ExactlyOnce                                           bool // the manifest asks for delivery: exactly_once

	// Measurements.
	FeedSeconds        float64                // first record produced to last acknowledged
	DrainSeconds       float64                // first record produced to both groups having committed everything
	FeedRate           float64                // records/s produced
	SustainedRate      float64                // records/s, Produced over DrainSeconds
	Latency            map[string]Percentiles // per pipeline/sink, the whole run
	QuietLatency       map[string]Percentiles // per pipeline/sink, the window without faults
	QuietWindow        [2]float64             // seconds since the feed started
	MaxLagRecords      map[string]int64
	MaxLagSeconds      map[string]float64
	QuietMaxLagSeconds map[string]float64
	Faults             []FaultEvent

	Problems []string
	samples  []sample
	start    time.Time
}

// Percentiles of one sink's end-to-end latency, in seconds.
type Percentiles struct {
	N                  int64
	P50, P95, P99, Max float64
}

func percentiles(h hist) Percentiles {
	return Percentiles{N: int64(h.total()), P50: h.quantile(0.5), P95: h.quantile(0.95), P99: h.quantile(0.99), Max: h.max()}
}

func (r *Report) problem(format string, args ...any) {
	r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
}

// report accounts for every record and sums up the measurements.
func (d *driver) report(ctx context.Context) (*Report, error) {
	r := &Report{Config: d.cfg, Produced: int64(len(d.recs)), DeadLetters: map[string]int64{}, DeadLetterValid: map[string]int64{},
		Latency: map[string]Percentiles{}, QuietLatency: map[string]Percentiles{}, MaxLagRecords: map[string]int64{},
		MaxLagSeconds: map[string]float64{}, QuietMaxLagSeconds: map[string]float64{}, start: d.start, ExactlyOnce: d.exactlyOnce}
	for _, p := range d.recs {
		switch {
		case p.kind.Malformed():
			r.Malformed++
		case p.kind == pricerecord.Outlier:
			r.Outliers++
			r.Valid++
		default:
			r.Valid++
		}
	}
	d.logf("accounting: %d produced = %d valid (%d outliers) + %d malformed", r.Produced, r.Valid, r.Outliers, r.Malformed)
	if err := d.accountLake(ctx, r); err != nil {
		return nil, err
	}
	if err := d.accountDeadLetters(ctx, r); err != nil {
		return nil, err
	}
	if err := d.accountPostgres(ctx, r); err != nil {
		return nil, err
	}
	if err := d.accountRedis(ctx, r); err != nil {
		return nil, err
	}
	d.measure(r)
	return r, nil
}

func (d *driver) accountLake(ctx context.Context, r *Report) error {
	lake, err := ledger.OpenSQLiteCatalog(ctx, "commodities", d.lakeDB, d.lakeWH)
	if err != nil {
		return err
	}
	defer lake.Close()
	rows, err := lake.Prices(ctx)
	if err != nil {
		return err
	}
	r.LakeRows = int64(len(rows))
	seen := make([]uint8, len(d.recs)+1)
	for _, row := range rows {
		if row.Seq < 1 || row.Seq > int64(len(d.recs)) || d.recs[row.Seq-1].kind.Malformed() {
			r.LakeUnexpected++
			continue
		}
		p := d.recs[row.Seq-1]
		if row.Commodity != goods[p.commodity].name || row.Price != p.price || row.TS.UnixMilli() != p.tsMS {
			r.LakeUnexpected++
			if r.LakeUnexpected <= 5 {
				r.problem("market.prices seq %d: %s %v at %s; produced %s %v at %s", row.Seq, row.Commodity, row.Price, row.TS.Format(time.RFC3339Nano),
					goods[p.commodity].name, p.price, time.UnixMilli(p.tsMS).UTC().Format(time.RFC3339Nano))
			}
		}
		if seen[row.Seq]++; seen[row.Seq] == 2 {
			if len(r.DuplicateSeqs) < 10 {
				r.DuplicateSeqs = append(r.DuplicateSeqs, row.Seq)
			}
		}
		if seen[row.Seq] > 1 {
			r.LakeDuplicates++
		}
	}
	for i, p := range d.recs {
		if !p.kind.Malformed() && seen[i+1] == 0 {
			r.LakeMissing++
		}
	}
	if r.LakeMissing > 0 {
		r.problem("market.prices: %d valid records missing", r.LakeMissing)
	}
	if r.LakeDuplicates > 0 && d.exactlyOnce {
		r.problem("market.prices: %d rows duplicate a seq (first seqs %v)", r.LakeDuplicates, r.DuplicateSeqs)
	}
	if r.LakeUnexpected > 0 {
		r.problem("market.prices: %d rows are not a valid record as produced", r.LakeUnexpected)
	}
	return nil
}

func (d *driver) accountDeadLetters(ctx context.Context, r *Report) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(d.broker.addr()), kgo.ConsumeTopics(deadTopic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return err
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, deadTopic)
	if err != nil {
		return err
	}
	var end int64
	ends.Each(func(o kadm.ListedOffset) { end = o.Offset })
	type key struct {
		pipeline string
		seq      int64
	}
	seen := map[key]int{}
	var read int64
	c, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for read < end {
		fs := cl.PollFetches(c)
		if c.Err() != nil {
			return fmt.Errorf("read %s: %d of %d records: %w", deadTopic, read, end, c.Err())
		}
		fs.EachRecord(func(rec *kgo.Record) {
			read = max(read, rec.Offset+1)
			var e struct {
				Pipeline string `json:"pipeline"`
				Kind     string `json:"kind"`
				Reason   string `json:"reason"`
				Value    string `json:"value"`
			}
			if err := json.Unmarshal(rec.Value, &e); err != nil {
				r.problem("%s offset %d: not a dead-letter envelope: %v", deadTopic, rec.Offset, err)
				return
			}
			seq := ledger.DeadLetter{Value: e.Value}.Seq()
			if seq < 1 || seq > int64(len(d.recs)) {
				r.problem("%s offset %d: a record of no seq produced: %s", deadTopic, rec.Offset, e.Value)
				return
			}
			if e.Reason == "" {
				r.problem("%s offset %d: dead letter without a reason", deadTopic, rec.Offset)
			}
			k := key{e.Pipeline, seq}
			if seen[k]++; seen[k] > 1 {
				r.DeadLetterDuplicates++
				return
			}
			if d.recs[seq-1].kind.Malformed() {
				r.DeadLetters[e.Pipeline]++
			} else {
				r.DeadLetterValid[e.Pipeline+" "+e.Kind]++
			}
		})
	}
	for _, pl := range []string{groupMain, groupStats} { // the pipelines are named as their groups
		if n := r.DeadLetters[pl]; n != r.Malformed {
			r.problem("dead letters of %s: %d of the %d malformed records", pl, n, r.Malformed)
		}
	}
	for k, n := range r.DeadLetterValid {
		r.problem("dead letters: %d valid records (%s)", n, k)
	}
	return nil
}

type slot struct {
	commodity string
	start     int64 // Unix ms
}

type window struct {
	n        int64
	min, max float64
}

func (d *driver) accountPostgres(ctx context.Context, r *Report) error {
	expect := map[slot]*window{}
	last := map[uint8]int64{}
	for _, p := range d.recs {
		if p.kind.Malformed() {
			continue
		}
		k := slot{goods[p.commodity].name, p.tsMS / 60000 * 60000}
		w := expect[k]
		if w == nil {
			w = &window{min: p.price, max: p.price}
			expect[k] = w
		}
		w.n++
		w.min, w.max = min(w.min, p.price), max(w.max, p.price)
		last[p.commodity] = max(last[p.commodity], p.tsMS)
	}
	// A window closes once its partition's watermark (its latest event time less the 5 s of
	// allowed lateness) passes its end: those ending 5 s (and a second of margin) before the
	// earliest commodity's last record must be there.
	closedBy := int64(math.MaxInt64)
	for _, t := range last {
		closedBy = min(closedBy, t-6000)
	}
	for k := range expect {
		if k.start+60000 <= closedBy {
			r.WindowsMustClose++
		}
	}
	conn, err := pgx.Connect(ctx, d.pg.dsn())
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT commodity, window_start, window_end, count, min, max FROM commodity_stats_1m`)
	if err != nil {
		return fmt.Errorf("read commodity_stats_1m: %w", err)
	}
	defer rows.Close()
	found := map[slot]bool{}
	var bad int
	for rows.Next() {
		var c string
		var start, end time.Time
		var n int64
		var lo, hi float64
		if err := rows.Scan(&c, &start, &end, &n, &lo, &hi); err != nil {
			return err
		}
		r.Windows++
		k := slot{c, start.UnixMilli()}
		found[k] = true
		e := expect[k]
		if e == nil || end.Sub(start) != time.Minute || e.n != n || e.min != lo || e.max != hi {
			if bad++; bad <= 5 {
				r.problem("commodity_stats_1m %s %s: count %d min %v max %v; the records produced give %+v", c, start.UTC().Format(time.RFC3339), n, lo, hi, e)
			}
			continue
		}
		r.WindowsChecked++
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if bad > 5 {
		r.problem("commodity_stats_1m: %d windows differ from the records produced", bad)
	}
	var missing int
	for k := range expect {
		if k.start+60000 <= closedBy && !found[k] {
			missing++
		}
	}
	if missing > 0 {
		r.problem("commodity_stats_1m: %d of the %d windows that must have closed are missing", missing, r.WindowsMustClose)
	}
	return nil
}

func (d *driver) accountRedis(ctx context.Context, r *Report) error {
	rdb := redis.NewClient(&redis.Options{Addr: d.redis.addr()})
	defer rdb.Close()
	lastSeq := map[uint8]int64{}
	for i, p := range d.recs {
		if !p.kind.Malformed() {
			lastSeq[p.commodity] = int64(i + 1)
		}
	}
	for c, seq := range lastSeq {
		want := d.recs[seq-1]
		name := goods[c].name
		got, err := rdb.HGetAll(ctx, "price:"+name).Result()
		if err != nil {
			return fmt.Errorf("redis price:%s: %w", name, err)
		}
		price, _ := strconv.ParseFloat(got["price"], 64)
		gotSeq, _ := strconv.ParseInt(got["seq"], 10, 64)
		if price != want.price || gotSeq != seq {
			r.problem("Redis price:%s = price %q seq %q; the last valid record produced is seq %d at %v", name, got["price"], got["seq"], seq, want.price)
			continue
		}
		r.RedisChecked++
	}
	entries, err := rdb.XRange(ctx, "commodity-alerts", "-", "+").Result()
	if err != nil {
		return fmt.Errorf("redis commodity-alerts: %w", err)
	}
	// An alert written twice (at least once delivery) has the same commodity, time and price.
	distinct := map[string]bool{}
	for _, e := range entries {
		k := fmt.Sprint(e.Values["key"], "|", e.Values["ts"], "|", e.Values["value"])
		if distinct[k] {
			r.AlertDuplicates++
		}
		distinct[k] = true
	}
	r.Alerts = int64(len(distinct))
	if r.Alerts != r.Outliers {
		r.problem("commodity-alerts: %d distinct alerts for %d outliers", r.Alerts, r.Outliers)
	}
	if r.AlertDuplicates > 0 && d.exactlyOnce {
		r.problem("commodity-alerts: %d alerts written twice with delivery exactly_once", r.AlertDuplicates)
	}
	return nil
}

// measure sums the samples up.
func (d *driver) measure(r *Report) {
	d.sampleMu.Lock()
	r.samples = append([]sample(nil), d.samples...)
	d.sampleMu.Unlock()
	d.faultMu.Lock()
	r.Faults = append([]FaultEvent(nil), d.faults...)
	d.faultMu.Unlock()
	r.FeedSeconds = d.feedEnd.Sub(d.start).Seconds()
	r.FeedRate = float64(r.Produced) / r.FeedSeconds
	// The drain ends at the first sample with both groups at lag 0 after the feed.
	for _, s := range r.samples {
		if s.at.Before(d.feedEnd) || s.lag == nil {
			continue
		}
		if s.lag[groupMain] == 0 && s.lag[groupStats] == 0 {
			r.DrainSeconds = s.at.Sub(d.start).Seconds()
			break
		}
	}
	if r.DrainSeconds > 0 {
		r.SustainedRate = float64(r.Produced) / r.DrainSeconds
	}
	if !d.quiet[0].IsZero() {
		r.QuietWindow[0] = d.quiet[0].Sub(d.start).Seconds()
	}
	if !d.quiet[1].IsZero() {
		r.QuietWindow[1] = d.quiet[1].Sub(d.start).Seconds()
	}
	all, quiet := map[string]*hist{}, map[string]*hist{}
	for _, s := range r.samples {
		inQuiet := !d.quiet[0].IsZero() && !d.quiet[1].IsZero() && s.at.After(d.quiet[0]) && !s.at.After(d.quiet[1])
		for sink, h := range s.latency {
			if all[sink] == nil {
				all[sink], quiet[sink] = &hist{}, &hist{}
			}
			all[sink].add(h)
			if inQuiet {
				quiet[sink].add(h)
			}
		}
		for g, n := range s.lag {
			r.MaxLagRecords[g] = max(r.MaxLagRecords[g], n)
		}
		for g, v := range s.lagSec {
			r.MaxLagSeconds[g] = max(r.MaxLagSeconds[g], v)
			if inQuiet {
				r.QuietMaxLagSeconds[g] = max(r.QuietMaxLagSeconds[g], v)
			}
		}
	}
	for sink, h := range all {
		r.Latency[sink] = percentiles(*h)
		r.QuietLatency[sink] = percentiles(*quiet[sink])
	}
}

// Print writes the report.
func (r *Report) Print(w io.Writer) {
	c := r.Config
	fmt.Fprintf(w, "\n== commodity-prices end to end: %d records at %s, %d sluice run processes\n", r.Produced, rateText(c.Rate), c.Processes)
	fmt.Fprintf(w, "faults:")
	if len(r.Faults) == 0 {
		fmt.Fprintf(w, " none")
	}
	for _, f := range r.Faults {
		fmt.Fprintf(w, " %s %.1f-%.1fs;", f.Name, f.Start, f.End)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "\naccounting\n")
	fmt.Fprintf(w, "  produced %d = %d valid (%d outliers) + %d malformed\n", r.Produced, r.Valid, r.Outliers, r.Malformed)
	fmt.Fprintf(w, "  Iceberg market.prices: %d rows; %d valid missing, %d duplicated, %d unexpected\n", r.LakeRows, r.LakeMissing, r.LakeDuplicates, r.LakeUnexpected)
	if r.LakeDuplicates > 0 && !r.ExactlyOnce {
		fmt.Fprintf(w, "    (delivery at_least_once: rows written again after the kill -9 and rebalances; first seqs %v)\n", r.DuplicateSeqs)
	}
	for _, pl := range []string{groupMain, groupStats} {
		fmt.Fprintf(w, "  dead letters of %s: %d of %d malformed\n", pl, r.DeadLetters[pl], r.Malformed)
	}
	fmt.Fprintf(w, "  dead letters written twice (at least once delivery): %d\n", r.DeadLetterDuplicates)
	fmt.Fprintf(w, "  Postgres commodity_stats_1m: %d windows, %d equal to the records produced, %d must have closed\n", r.Windows, r.WindowsChecked, r.WindowsMustClose)
	if r.WindowsMustClose == 0 {
		fmt.Fprintf(w, "    (no minute window had to close: the records span too little event time for the statistics to be checked)\n")
	}
	fmt.Fprintf(w, "  Redis: latest price of %d commodities = the last valid produced; %d distinct alerts for %d outliers (%d written twice)\n", r.RedisChecked, r.Alerts, r.Outliers, r.AlertDuplicates)
	fmt.Fprintf(w, "\nthroughput\n")
	fmt.Fprintf(w, "  fed %.0f records/s over %.1fs; all consumed and committed by both groups %.1fs after the first record: %.0f records/s sustained\n",
		r.FeedRate, r.FeedSeconds, r.DrainSeconds, r.SustainedRate)
	fmt.Fprintf(w, "\nend-to-end latency (record's Kafka timestamp to its sink's durable write), per sink\n")
	fmt.Fprintf(w, "  %-44s %9s %9s %9s %9s %9s\n", "whole run", "records", "p50", "p95", "p99", "max")
	printLat(w, r.Latency)
	if r.QuietWindow[1]-r.QuietWindow[0] < 2 {
		fmt.Fprintf(w, "  no quiet window: the first fault came %.1fs after the feed started\n", r.QuietWindow[1])
	} else {
		fmt.Fprintf(w, "  %-44s %9s %9s %9s %9s %9s\n", fmt.Sprintf("quiet window %.0f-%.0fs (no fault)", r.QuietWindow[0], r.QuietWindow[1]), "records", "p50", "p95", "p99", "max")
		printLat(w, r.QuietLatency)
	}
	fmt.Fprintf(w, "\nconsumer lag (committed offsets; seconds: age of the oldest record not committed)\n")
	for _, g := range groups {
		fmt.Fprintf(w, "  %-28s max %8d records, max %s; in the quiet window max %s\n", g, r.MaxLagRecords[g], fmtSeconds(r.MaxLagSeconds[g]), fmtSeconds(r.QuietMaxLagSeconds[g]))
	}
	fmt.Fprintln(w)
	if len(r.Problems) == 0 {
		fmt.Fprintf(w, "OK: every record accounted for\n")
		return
	}
	fmt.Fprintf(w, "PROBLEMS (%d):\n", len(r.Problems))
	for _, p := range r.Problems {
		fmt.Fprintf(w, "  - %s\n", p)
	}
}

func printLat(w io.Writer, m map[string]Percentiles) {
	sinks := make([]string, 0, len(m))
	for s := range m {
		sinks = append(sinks, s)
	}
	sort.Strings(sinks)
	for _, s := range sinks {
		p := m[s]
		fmt.Fprintf(w, "  %-44s %9d %9s %9s %9s %9s\n", strings.TrimSpace(s), p.N, fmtSeconds(p.P50), fmtSeconds(p.P95), fmtSeconds(p.P99), fmtSeconds(p.Max))
	}
}
