// Command priceapi serves a local commodity price API for the commodity-prices example: corn,
// wheat, soybeans, gold, crude oil, silver, copper, coffee, natural gas and cotton, each a
// geometric random walk quoted once per tick, with a share of malformed records (a price that is
// a string, negative or null, a missing field, a timestamp that is no time) and of outliers (a
// spike of 80 to 120 standard deviations of one step). Everything it produces is drawn from -seed,
// so two runs with the same flags (and -start) serve the same records.
//
//	GET /v1/prices?since=SEQ&page_size=N  records with seq > SEQ, oldest first:
//	                                      {"data": [...], "next": "/v1/prices?since=...&page_size=N" or null}
//	GET /v1/stats[?seqs=1]                what was produced: valid, malformed, outliers, per commodity
//	GET /v1/commodities                   the commodities, units and opening prices
//
// next is null once the page holds the latest record produced so far; a poller then asks again
// later with since set to the largest seq it has (the http source's cursor).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "priceapi:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("priceapi", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:8787", "address to listen on (port 0 picks a free one; see -ready-file)")
	seed := fs.Uint64("seed", 1, "seed of every random draw: the same seed and flags serve the same prices")
	rate := fs.Float64("rate", 1, "new prices per second per commodity (ticks per second of event time)")
	malformed := fs.Float64("malformed", 0.02, "share of records that are malformed (0 to 1)")
	outlier := fs.Float64("outlier", 0.005, "share of records that are outliers (0 to 1)")
	total := fs.Int64("total", 0, "stop producing after this many records; 0 produces for ever")
	backfill := fs.Duration("backfill", 0, "history available at once: the first tick is this long before now")
	start := fs.String("start", "", "RFC 3339 event time of the first tick (default: now minus -backfill); fixes the timestamps too")
	speed := fs.Float64("speed", 1, "how much faster than the wall clock event time runs after the backfill (replays a day in minutes)")
	only := fs.String("commodities", "", "comma-separated subset of the commodities (default: all; see GET /v1/commodities)")
	readyFile := fs.String("ready-file", "", "once listening, write the API's base URL (http://host:port) to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case *rate <= 0:
		return fmt.Errorf("-rate must be greater than 0, got %g", *rate)
	case *malformed < 0 || *outlier < 0 || *malformed+*outlier > 1:
		return fmt.Errorf("-malformed and -outlier must be at least 0 and add up to at most 1, got %g and %g", *malformed, *outlier)
	case *total < 0:
		return fmt.Errorf("-total must be 0 (unbounded) or more, got %d", *total)
	case *speed <= 0:
		return fmt.Errorf("-speed must be greater than 0, got %g", *speed)
	case *backfill < 0:
		return fmt.Errorf("-backfill must not be negative, got %s", *backfill)
	}
	goods, err := pick(*only)
	if err != nil {
		return err
	}
	now := time.Now()
	cfg := marketConfig{seed: *seed, rate: *rate, malformed: *malformed, outlier: *outlier, total: *total, start: now.Add(-*backfill), goods: goods}
	if *start != "" {
		if cfg.start, err = time.Parse(time.RFC3339, *start); err != nil {
			return fmt.Errorf("-start: want an RFC 3339 time such as 2026-01-05T09:00:00Z: %w", err)
		}
	}
	m := newMarket(cfg)
	// The event clock: -backfill of history at once, then time as it passes, -speed times faster.
	clock := func() time.Time { return cfg.start.Add(*backfill + time.Duration(float64(time.Since(now))**speed)) }
	m.advance(clock())

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen: %w (choose another -addr)", err)
	}
	base := "http://" + ln.Addr().String()
	if *readyFile != "" {
		if err := os.WriteFile(*readyFile, []byte(base+"\n"), 0o644); err != nil {
			return fmt.Errorf("-ready-file: %w", err)
		}
	}
	log.Printf("priceapi: serving %d commodities on %s (seed %d, %g ticks/s, total %d)", len(goods), base, *seed, *rate, *total)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				m.advance(clock())
			}
		}
	}()
	srv := &http.Server{Handler: handler(m), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shut)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func pick(only string) ([]commodity, error) {
	if only == "" {
		return commodities, nil
	}
	var out []commodity
	for _, name := range strings.Split(only, ",") {
		found := false
		for _, c := range commodities {
			if c.Name == strings.TrimSpace(name) {
				out, found = append(out, c), true
			}
		}
		if !found {
			var names []string
			for _, c := range commodities {
				names = append(names, c.Name)
			}
			return nil, fmt.Errorf("-commodities: unknown commodity %q; known: %s", name, strings.Join(names, ","))
		}
	}
	return out, nil
}

const maxPageSize = 10000

func handler(m *market) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/prices", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		since, err := intParam(q.Get("since"), 0)
		if err != nil || since < 0 {
			fail(w, http.StatusBadRequest, "since: want the seq of the last record you have (0 or more), got %q", q.Get("since"))
			return
		}
		size, err := intParam(q.Get("page_size"), 100)
		if err != nil || size < 1 || size > maxPageSize {
			fail(w, http.StatusBadRequest, "page_size: want 1 to %d, got %q", maxPageSize, q.Get("page_size"))
			return
		}
		qs, first, _ := m.page(since, int(size))
		b := make([]byte, 0, 64+len(qs)*120)
		b = append(b, `{"data":[`...)
		for i, qt := range qs {
			if i > 0 {
				b = append(b, ',')
			}
			b = m.appendJSON(b, first+int64(i), qt)
		}
		b = append(b, `],"next":`...)
		last := since + int64(len(qs))
		if more, _, _ := m.page(last, 1); len(qs) > 0 && len(more) > 0 {
			b = append(b, fmt.Sprintf(`"/v1/prices?since=%d&page_size=%d"`, last, size)...)
		} else {
			b = append(b, "null"...)
		}
		b = append(b, "}\n"...)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b)
	})
	mux.HandleFunc("GET /v1/stats", func(w http.ResponseWriter, r *http.Request) {
		reply(w, m.stats(r.URL.Query().Get("seqs") == "1"))
	})
	mux.HandleFunc("GET /v1/commodities", func(w http.ResponseWriter, r *http.Request) {
		reply(w, map[string]any{"data": m.cfg.goods})
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fail(w, http.StatusNotFound, "no such endpoint %s %s; try GET /v1/prices, /v1/stats or /v1/commodities", r.Method, r.URL.Path)
	})
	return mux
}

func intParam(s string, def int64) (int64, error) {
	if s == "" {
		return def, nil
	}
	return strconv.ParseInt(s, 10, 64)
}

func reply(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func fail(w http.ResponseWriter, code int, format string, args ...any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": fmt.Sprintf(format, args...)})
}
