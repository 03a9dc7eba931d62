package admin_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/sluicehq/sluice/internal/admin"
	"github.com/sluicehq/sluice/runtime/pipeline"
	"github.com/sluicehq/sluice/runtime/supervisor"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Defect 8: /readyz and /pipelines say why a pipeline is not ready.
func TestReadinessCarriesTheReason(t *testing.T) {
	var mu sync.Mutex
	ps := []supervisor.Status{{Name: "a", Status: pipeline.Status{State: pipeline.StateRunning, Ready: true}}, {Name: "b", Status: pipeline.Status{State: pipeline.StateRunning, Ready: true}}}
	srv, err := admin.Start("127.0.0.1:0", http.NotFoundHandler(), func() []supervisor.Status {
		mu.Lock()
		defer mu.Unlock()
		return append([]supervisor.Status(nil), ps...)
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close(context.Background())
	base := "http://" + srv.Addr()
	if code, body := get(t, base+"/readyz"); code != 200 {
		t.Fatalf("/readyz = %d %q while every pipeline is ready", code, body)
	}
	mu.Lock()
	ps[1] = supervisor.Status{Name: "b", Status: pipeline.Status{State: pipeline.StateRunning, Reason: `stuck longer than 2m0s: "out" has been failing for 3m0s`}}
	mu.Unlock()
	code, body := get(t, base+"/readyz")
	if code != 503 || !strings.Contains(body, `b: stuck longer than 2m0s: "out" has been failing`) || strings.Contains(body, "a:") {
		t.Fatalf("/readyz = %d %q; want 503 naming b and why", code, body)
	}
	_, body = get(t, base+"/pipelines")
	var list []supervisor.Status
	if err := json.Unmarshal([]byte(body), &list); err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[1].Ready || !strings.Contains(list[1].Reason, `"out" has been failing`) || list[0].State != "running" {
		t.Fatalf("/pipelines = %s", body)
	}
}
