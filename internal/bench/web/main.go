// Command web benchmarks the web sources against plain programs doing the same work, each scenario
// in a fresh child process so CPU time and peak memory are its own. Run it with `make bench-web`
// or `go run ./internal/bench/web`.
//
//   - webhook: 64 concurrent clients post one JSON event per request; each scenario writes to the
//     file sink (fsync before a write returns). sluice-durable answers once the event is fsynced in
//     the webhook's write-ahead store, sluice-delivered once it is in the sink; direct is a plain
//     net/http handler calling the same sink's Write for each request. Latency is the client's,
//     from sending the request to reading the 2xx.
//   - polling: the http source reads pages of 10,000 records from a local API into the drop sink;
//     direct is a plain client loop fetching the same pages and splitting them with encoding/json.
//     Latency is from a page's request to its batch's delivery.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/connectors/all"
	"github.com/sluicehq/sluice/connectors/file"
	"github.com/sluicehq/sluice/internal/bench/child"
	"github.com/sluicehq/sluice/internal/bench/latency"
	"github.com/sluicehq/sluice/internal/bench/peak"
	"github.com/sluicehq/sluice/internal/checkpoint"
	"github.com/sluicehq/sluice/internal/engine"
	"github.com/sluicehq/sluice/internal/gctune"
	"github.com/sluicehq/sluice/runtime/pipeline"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

type result struct {
	Scenario string        `json:"scenario"`
	Impl     string        `json:"impl"`
	Records  int64         `json:"records"`
	Bytes    int64         `json:"bytes"`
	Elapsed  time.Duration `json:"elapsed"`
	P50, P99 time.Duration
	CPU      time.Duration `json:"cpu"`
	MaxRSS   int64         `json:"max_rss"`
}

var (
	clients  = flag.Int("clients", 64, "webhook: concurrent clients")
	requests = flag.Int("requests", 150, "webhook: requests per client")
	pages    = flag.Int("pages", 60, "polling: pages of 10,000 records")
)

func main() {
	childName := flag.String("child", "", "run one scenario/impl in this process (internal)")
	flag.Parse()
	if *childName != "" {
		if strings.Contains(*childName, "/sluice") {
			gctune.Apply() // as `sluice run` does; the plain programs keep Go's default
		}
		r, err := runChild(*childName)
		if err != nil {
			fatal(err)
		}
		r.MaxRSS = peak.RSS()
		json.NewEncoder(os.Stdout).Encode(r)
		return
	}
	fmt.Printf("web sources benchmark: %d cores; webhook: %d clients × %d requests of one ~250-byte event; polling: %d pages of 10,000 ~150-byte records\n\n",
		numCPU(), *clients, *requests, *pages)
	fmt.Printf("%-9s %-17s %9s %7s %10s %7s %9s %9s %7s %9s\n", "scenario", "impl", "records", "secs", "records/s", "MB/s", "p50", "p99", "cpu s", "peak MiB")
	for _, sc := range []string{"webhook/direct", "webhook/sluice-durable", "webhook/sluice-delivered", "polling/direct", "polling/sluice"} {
		args := []string{"-child", sc, "-clients", fmt.Sprint(*clients), "-requests", fmt.Sprint(*requests), "-pages", fmt.Sprint(*pages)}
		var r result
		cpu, err := child.Run(&r, args...)
		if err != nil {
			fatal(fmt.Errorf("%s: %w", sc, err))
		}
		r.CPU = cpu
		secs := r.Elapsed.Seconds()
		fmt.Printf("%-9s %-17s %9d %7.2f %10.0f %7.1f %9s %9s %7.2f %9.1f\n", r.Scenario, r.Impl, r.Records, secs,
			float64(r.Records)/secs, float64(r.Bytes)/secs/1e6, dur(r.P50), dur(r.P99), r.CPU.Seconds(), float64(r.MaxRSS)/(1<<20))
	}
	fmt.Println("\nwebhook: each process runs the clients and the server; the file sink fsyncs every write.")
	fmt.Println("  direct = net/http handler → file sink Write per request (one fsync each);")
	fmt.Println("  sluice-durable = 2xx once fsynced in the write-ahead store (group commit); sluice-delivered = 2xx once in the sink.")
	fmt.Println("polling: each process runs the API server too; direct = GET loop + encoding/json into []json.RawMessage.")
}

func dur(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	return d.Round(10 * time.Microsecond).String()
}

func numCPU() int {
	b, _ := os.ReadFile("/proc/cpuinfo")
	return strings.Count(string(b), "processor\t:")
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}

func runChild(name string) (result, error) {
	scenario, impl, _ := strings.Cut(name, "/")
	r := result{Scenario: scenario, Impl: impl}
	dir, err := os.MkdirTemp("", "sluice-bench-web-")
	if err != nil {
		return r, err
	}
	defer os.RemoveAll(dir)
	switch scenario {
	case "webhook":
		return r, r.webhook(dir, impl)
	case "polling":
		return r, r.polling(dir, impl)
	}
	return r, fmt.Errorf("unknown scenario %q", name)
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// event is a webhook payload of about 250 bytes.
func event(client, i int) []byte {
	return fmt.Appendf(nil, `{"id":"evt_%04d_%06d","type":"invoice.paid","created":%d,"data":{"object":{"id":"in_%06d","amount_paid":%d,"currency":"eur","customer":"cus_%04d","status":"paid"}}}`,
		client, i, 1700000000+i, i, 1000+i%9000, client)
}

// webhook runs the clients against one implementation and waits until every event is in the
// sink file.
func (r *result) webhook(dir, impl string) error {
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	out := filepath.Join(dir, "out.jsonl")
	done := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	switch impl {
	case "direct":
		sink, err := file.NewSink(connector.Config{"path": out, "fsync": true}, connector.Env{})
		if err != nil {
			return err
		}
		if err := sink.Open(ctx); err != nil {
			return err
		}
		defer sink.Close(context.Background())
		var mu sync.Mutex
		srv := &http.Server{Addr: addr, Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, 1<<20))
			if err != nil || !json.Valid(body) {
				http.Error(w, "bad body", http.StatusBadRequest)
				return
			}
			mu.Lock()
			err = sink.Write(req.Context(), []connector.Record{{Value: body, Time: time.Now()}})
			mu.Unlock()
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			w.WriteHeader(http.StatusOK)
		})}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return err
		}
		go srv.Serve(ln)
		defer srv.Close()
		close(done)
	default:
		ack := strings.TrimPrefix(impl, "sluice-")
		store, err := checkpoint.Open(filepath.Join(dir, "data"))
		if err != nil {
			return err
		}
		defer store.Close()
		p := &pipeline.Pipeline{
			Name:   "webhook",
			Source: pipeline.Component{Type: "webhook", Config: connector.Config{"address": addr, "path": "/events", "ack": ack}},
			Sinks:  []pipeline.Sink{{Name: "out", Component: pipeline.Component{Type: "file", Config: connector.Config{"path": out}}}},
			Batch:  pipeline.BatchPolicy{Linger: time.Millisecond},
		}
		e, err := engine.New(p, engine.Options{Catalog: all.Catalog(), Checkpoints: store, DataDir: filepath.Join(dir, "data")})
		if err != nil {
			return err
		}
		go func() { done <- e.Run(ctx) }()
	}
	lat, elapsed, bytes, err := postAll(ctx, "http://"+addr+"/events")
	if err != nil {
		return err
	}
	r.Elapsed, r.Bytes = elapsed, bytes
	r.Records = int64(len(lat))
	slices.Sort(lat)
	r.P50, r.P99 = lat[len(lat)/2], lat[len(lat)*99/100]
	// Every event answered 2xx must be in the file (at once for direct and delivered; durable
	// ones follow).
	for deadline := time.Now().Add(time.Minute); ; {
		if n := countLines(out); n >= len(lat) {
			break
		} else if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d events in the sink", n, len(lat))
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		return err
	}
	return nil
}

func countLines(path string) int {
	b, _ := os.ReadFile(path)
	return bytes.Count(b, []byte{'\n'})
}

// postAll runs the clients; each posts its events one per request, retrying 429 and 503 after the
// Retry-After the server asks for (or 10ms), and returns the latency of each event.
func postAll(ctx context.Context, url string) ([]time.Duration, time.Duration, int64, error) {
	tr := &http.Transport{MaxIdleConnsPerHost: *clients}
	hc := &http.Client{Transport: tr, Timeout: time.Minute}
	// Wait for the server.
	for i := 0; ; i++ {
		resp, err := hc.Get(url)
		if err == nil {
			resp.Body.Close()
			break
		}
		if i > 500 {
			return nil, 0, 0, err
		}
		time.Sleep(10 * time.Millisecond)
	}
	var mu sync.Mutex
	var lat []time.Duration
	var bytes atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, *clients)
	start := time.Now()
	for c := range *clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mine := make([]time.Duration, 0, *requests)
			for i := range *requests {
				body := event(c, i)
				t0 := time.Now()
				for {
					resp, err := hc.Post(url, "application/json", bytes2reader(body))
					if err != nil {
						errs <- err
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode == 429 || resp.StatusCode == 503 {
						wait := 10 * time.Millisecond
						if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
							wait = time.Duration(s) * time.Second
						}
						time.Sleep(wait)
						continue
					}
					if resp.StatusCode/100 != 2 {
						errs <- fmt.Errorf("status %d", resp.StatusCode)
						return
					}
					break
				}
				mine = append(mine, time.Since(t0))
				bytes.Add(int64(len(body)))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	for err := range errs {
		return nil, 0, 0, err
	}
	tr.CloseIdleConnections()
	return lat, elapsed, bytes.Load(), nil
}

func bytes2reader(b []byte) io.Reader { return bytes.NewReader(b) }

// pageServer serves pages of 10,000 records: /prices?page=N, with a next link while N < pages.
type pageServer struct {
	pages  int
	bodies [][]byte
}

func newPageServer(pages int) *pageServer {
	ps := &pageServer{pages: pages}
	// Ten distinct page bodies, served in turn (building 60 would only cost the benchmark memory).
	for p := range 10 {
		var b bytes.Buffer
		b.WriteString(`{"data":[`)
		for i := range 10000 {
			if i > 0 {
				b.WriteByte(',')
			}
			n := p*10000 + i
			fmt.Fprintf(&b, `{"id":%d,"commodity":"copper","venue":"LME","price":%d.%02d,"currency":"USD","updated_at":"2024-03-01T%02d:%02d:%02dZ"}`,
				n, 8000+n%900, n%100, n/3600%24, n/60%60, n%60)
		}
		b.WriteString(`],"next":`)
		ps.bodies = append(ps.bodies, b.Bytes())
	}
	return ps
}

func (ps *pageServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p, _ := strconv.Atoi(r.URL.Query().Get("page"))
	if p < 1 || p > ps.pages {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(ps.bodies[(p-1)%10])
	if p < ps.pages {
		fmt.Fprintf(w, `"/prices?page=%d"}`, p+1)
	} else {
		w.Write([]byte("null}"))
	}
}

func (r *result) polling(dir, impl string) error {
	ps := newPageServer(*pages)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: ps}
	go srv.Serve(ln)
	defer srv.Close()
	url := "http://" + ln.Addr().String() + "/prices?page=1"
	if impl == "direct" {
		return r.pollDirect(url)
	}
	lat := &latency.Sink{}
	cat := all.Catalog()
	if err := cat.Add(connector.SinkComponent(connector.Spec{Name: "bench-latency", Summary: "benchmark sink"},
		func(connector.Config, connector.Env) (connector.Sink, error) { return lat, nil })); err != nil {
		return err
	}
	store, err := checkpoint.Open(filepath.Join(dir, "data"))
	if err != nil {
		return err
	}
	defer store.Close()
	p := &pipeline.Pipeline{
		Name:   "polling",
		Source: pipeline.Component{Type: "http", Config: connector.Config{"url": url, "records": "$.data[*]", "pagination": map[string]any{"next": "$.next"}}},
		Sinks:  []pipeline.Sink{{Name: "out", Component: pipeline.Component{Type: "bench-latency", Config: connector.Config{}}}},
	}
	e, err := engine.New(p, engine.Options{Catalog: cat, Checkpoints: store})
	if err != nil {
		return err
	}
	start := time.Now()
	if err := e.Run(context.Background()); err != nil {
		return err
	}
	r.Elapsed = time.Since(start)
	r.Records, r.Bytes = lat.Counts()
	r.P50, r.P99 = lat.Percentiles()
	return nil
}

// pollDirect is the ceiling: fetch each page, split its records with encoding/json, follow next.
func (r *result) pollDirect(url string) error {
	base := strings.TrimSuffix(url, "/prices?page=1")
	start := time.Now()
	var lat []time.Duration
	for url != "" {
		t0 := time.Now()
		resp, err := http.Get(url)
		if err != nil {
			return err
		}
		var page struct {
			Data []json.RawMessage `json:"data"`
			Next *string           `json:"next"`
		}
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil {
			return err
		}
		for _, d := range page.Data {
			r.Bytes += int64(len(d))
		}
		r.Records += int64(len(page.Data))
		lat = append(lat, time.Since(t0))
		url = ""
		if page.Next != nil {
			url = base + *page.Next
		}
	}
	r.Elapsed = time.Since(start)
	if len(lat) == 0 {
		return errors.New("no pages")
	}
	slices.Sort(lat)
	r.P50, r.P99 = lat[len(lat)/2], lat[len(lat)*99/100]
	return nil
}
