package websocket_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/sluicehq/sluice/connectors/file"
	sluicews "github.com/sluicehq/sluice/connectors/websocket"
	"github.com/sluicehq/sluice/runtime/catalog"
	"github.com/sluicehq/sluice/runtime/pipeline"
	"github.com/sluicehq/sluice/runtime/supervisor"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestPipelineDeliversEveryClientMessage runs websocket (server mode) → file through the
// supervisor: every message of 100 concurrent clients lands in the file once.
func TestPipelineDeliversEveryClientMessage(t *testing.T) {
	cat, err := catalog.New(append(file.Components(), sluicews.Component())...)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "out.jsonl")
	addr := freeAddr(t)
	sup, err := supervisor.New(supervisor.Options{Catalog: cat, DataDir: filepath.Join(dir, "data")})
	if err != nil {
		t.Fatal(err)
	}
	defer sup.Close(context.Background())
	p := &pipeline.Pipeline{
		Name:   "events",
		Source: pipeline.Component{Type: "websocket", Config: connector.Config{"mode": "server", "address": addr, "path": "/events"}},
		Sinks:  []pipeline.Sink{{Name: "out", Component: pipeline.Component{Type: "file", Config: connector.Config{"path": out}}}},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if problems := sup.Add(ctx, p); len(problems) > 0 {
		t.Fatal(problems)
	}
	runCtx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- sup.Run(runCtx, supervisor.RunOptions{}) }()

	const clients, each = 100, 100
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var conn *websocket.Conn
			for conn == nil { // the pipeline may still be opening its source
				cn, _, err := websocket.Dial(ctx, "ws://"+addr+"/events", nil)
				if err == nil {
					conn = cn
				} else if ctx.Err() != nil {
					t.Errorf("client %d: %v", c, err)
					return
				} else {
					time.Sleep(20 * time.Millisecond)
				}
			}
			defer conn.Close(websocket.StatusNormalClosure, "")
			for i := range each {
				if err := conn.Write(ctx, websocket.MessageText, fmt.Appendf(nil, `{"c":%d,"i":%d}`, c, i)); err != nil {
					t.Errorf("client %d: %v", c, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	var lines [][]byte
	for {
		data, _ := os.ReadFile(out)
		lines = bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n"))
		if len(data) > 0 && len(lines) >= clients*each {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%d of %d messages in the file", len(lines), clients*each)
		case <-time.After(20 * time.Millisecond):
		}
	}
	stop()
	if err := <-ran; err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, l := range lines {
		if seen[string(l)] {
			t.Fatalf("%s twice", l)
		}
		seen[string(l)] = true
	}
	if len(seen) != clients*each {
		t.Fatalf("%d distinct messages, want %d", len(seen), clients*each)
	}
}
