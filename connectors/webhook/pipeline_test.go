package webhook_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/connectors/file"
	"github.com/sluicehq/sluice/connectors/webhook"
	"github.com/sluicehq/sluice/runtime/catalog"
	"github.com/sluicehq/sluice/runtime/pipeline"
	"github.com/sluicehq/sluice/runtime/supervisor"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// slowSink keeps the ids of what it is given, taking delay per write.
type slowSink struct {
	delay time.Duration
	mu    sync.Mutex
	ids   map[string]int
}

func (s *slowSink) Open(context.Context) error  { return nil }
func (s *slowSink) Close(context.Context) error { return nil }
func (s *slowSink) Write(ctx context.Context, recs []connector.Record) error {
	select {
	case <-time.After(s.delay):
	case <-ctx.Done():
		return ctx.Err()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range recs {
		// {"id":"...", ...}: the id without decoding the padding after it.
		id, _, _ := strings.Cut(strings.TrimPrefix(string(r.Value[:min(len(r.Value), 64)]), `{"id":"`), `"`)
		s.ids[id]++
	}
	return nil
}

func (s *slowSink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.ids)
}

// runPipeline runs webhook → sink through the supervisor until the test ends.
func runPipeline(t *testing.T, src connector.Config, sink connector.Component, sinkCfg connector.Config) {
	t.Helper()
	cat, err := catalog.New(append(webhook.Components(), sink)...)
	if err != nil {
		t.Fatal(err)
	}
	sup, err := supervisor.New(supervisor.Options{Catalog: cat, DataDir: filepath.Join(t.TempDir(), "data")})
	if err != nil {
		t.Fatal(err)
	}
	p := &pipeline.Pipeline{
		Name:   "hooks",
		Source: pipeline.Component{Type: "webhook", Config: src},
		Sinks:  []pipeline.Sink{{Name: "out", Component: pipeline.Component{Type: sink.Spec.Name, Config: sinkCfg}}},
		Buffer: pipeline.BufferPolicy{MaxRecords: 2000},
	}
	ctx, cancel := context.WithCancel(context.Background())
	if problems := sup.Add(ctx, p); len(problems) > 0 {
		t.Fatal(problems)
	}
	ran := make(chan error, 1)
	go func() { ran <- sup.Run(ctx, supervisor.RunOptions{}) }()
	t.Cleanup(func() {
		cancel()
		if err := <-ran; err != nil {
			t.Error(err)
		}
		sup.Close(context.Background())
	})
}

// client posts with retries: on 429/503 it waits (a little, not the whole Retry-After: the test
// wants pressure) and tries again; on a connection error too. It returns once a 2xx came.
type client struct {
	url      string
	busy     atomic.Int64
	hc       *http.Client
	maxTries int
}

func (c *client) post(ctx context.Context, body []byte, contentType string) (int, error) {
	for try := 0; ; try++ {
		if try > c.maxTries {
			return 0, fmt.Errorf("no 2xx after %d tries", try)
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
		req.Header.Set("Content-Type", contentType)
		resp, err := c.hc.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			switch {
			case resp.StatusCode/100 == 2:
				return resp.StatusCode, nil
			case resp.StatusCode == 429 || resp.StatusCode == 503:
				if resp.Header.Get("Retry-After") == "" {
					return resp.StatusCode, fmt.Errorf("%d without Retry-After", resp.StatusCode)
				}
				c.busy.Add(1)
			default:
				return resp.StatusCode, fmt.Errorf("status %d", resp.StatusCode)
			}
		} else if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		select {
		case <-time.After(5 * time.Millisecond):
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// TestConcurrentPostsAgainstASlowSinkGet429AndBoundedMemory: 64 clients post 24 MiB of 8 KiB
// records to a webhook whose sink takes 5 ms per write. The webhook answers 429 instead of
// buffering: the live heap grows by a fraction of what is posted (the pending records, bounded by
// max_pending_bytes = 1 MiB, plus the requests being read and the clients' own buffers), and
// every record answered 2xx reaches the sink.
func TestConcurrentPostsAgainstASlowSinkGet429AndBoundedMemory(t *testing.T) {
	for _, ack := range []string{"durable", "delivered"} {
		t.Run(ack, func(t *testing.T) {
			addr := freeAddr(t)
			sink := &slowSink{delay: 5 * time.Millisecond, ids: map[string]int{}}
			sinkComp := connector.SinkComponent(connector.Spec{Name: "slow", Summary: "test sink"}, func(connector.Config, connector.Env) (connector.Sink, error) { return sink, nil })
			runPipeline(t, connector.Config{"address": addr, "path": "/events", "ack": ack, "max_pending": int64(1000), "max_pending_bytes": int64(1 << 20), "max_body": int64(256 << 10)},
				sinkComp, connector.Config{})
			// The live heap as of each garbage collection: what the process holds, not the garbage
			// it has yet to collect.
			live := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
			runtime.GC()
			metrics.Read(live)
			base := live[0].Value.Uint64()
			var peak atomic.Uint64
			stopSampling := make(chan struct{})
			sampled := make(chan struct{})
			go func() {
				defer close(sampled)
				s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
				for {
					metrics.Read(s)
					if v := s[0].Value.Uint64(); v > peak.Load() {
						peak.Store(v)
					}
					select {
					case <-stopSampling:
						return
					case <-time.After(2 * time.Millisecond):
					}
				}
			}()
			const clients, requests, perRequest = 64, 12, 4
			pad := strings.Repeat("x", 8<<10)
			c := &client{url: "http://" + addr + "/events", hc: &http.Client{Timeout: time.Minute}, maxTries: 100000}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			var wg sync.WaitGroup
			var accepted atomic.Int64
			errs := make(chan error, clients)
			for cl := range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for r := range requests {
						var b bytes.Buffer
						for i := range perRequest {
							fmt.Fprintf(&b, `{"id":"%d-%d-%d","pad":%q}`+"\n", cl, r, i, pad)
						}
						if _, err := c.post(ctx, b.Bytes(), "application/x-ndjson"); err != nil {
							errs <- err
							return
						}
						accepted.Add(perRequest)
					}
				}()
			}
			wg.Wait()
			close(stopSampling)
			<-sampled
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			total := clients * requests * perRequest
			for sink.count() < total {
				select {
				case <-ctx.Done():
					t.Fatalf("%d of %d records answered 2xx reached the sink", sink.count(), total)
				case <-time.After(10 * time.Millisecond):
				}
			}
			growth := int64(peak.Load()) - int64(base)
			t.Logf("%d records (%d MiB) posted; %d answers 429; peak live heap growth %.1f MiB", total, total*(8<<10)>>20, c.busy.Load(), float64(growth)/(1<<20))
			if c.busy.Load() == 0 {
				t.Fatal("no request was answered 429: the sink was not slow enough to show backpressure")
			}
			if growth > 16<<20 {
				t.Fatalf("the live heap grew by %d MiB for 1 MiB of pending records", growth>>20)
			}
		})
	}
}

// TestDeliveredMeansInTheSink: with ack: delivered, a record is in the file sink (fsynced) by
// the time its request is answered 2xx.
func TestDeliveredMeansInTheSink(t *testing.T) {
	addr := freeAddr(t)
	out := filepath.Join(t.TempDir(), "out.jsonl")
	fileSink := file.Components()[1]
	runPipeline(t, connector.Config{"address": addr, "path": "/events", "ack": "delivered"}, fileSink, connector.Config{"path": out})
	c := &client{url: "http://" + addr + "/events", hc: http.DefaultClient, maxTries: 1000}
	var wg sync.WaitGroup
	for cl := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 25 {
				id := fmt.Sprintf("%d-%d", cl, i)
				if _, err := c.post(context.Background(), []byte(`{"id":"`+id+`"}`), "application/json"); err != nil {
					t.Error(err)
					return
				}
				data, _ := os.ReadFile(out)
				if !bytes.Contains(data, []byte(`"`+id+`"`)) {
					t.Errorf("record %s answered 2xx but not in the sink", id)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func fileIDs(t *testing.T, path string) map[string]int {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return map[string]int{}
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ids := map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var v struct{ ID string }
		if json.Unmarshal(sc.Bytes(), &v) == nil {
			ids[v.ID]++
		}
	}
	return ids
}
