package webhook_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binDir holds the binary sluiceBinary built, if a test asked for it.
var binDir string

// sluiceBinary builds cmd/sluice once for the package's process tests.
var sluiceBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "sluice-webhook-test-")
	if err != nil {
		return "", err
	}
	binDir = dir
	bin := filepath.Join(dir, "sluice")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/sluicehq/sluice/cmd/sluice")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir) // built by a test that ran
	}
	os.Exit(code)
}

// TestKill9EveryAcceptedRecordReachesTheSinkIntegration: clients post events to `sluice run`
// (webhook with ack: durable → file) while the process is killed with SIGKILL at random moments
// and restarted on the same data directory. Every event that was answered 2xx must be in the
// file at the end; events whose request failed (connection refused or cut) are posted again by
// their client, so some may be there twice.
func TestKill9EveryAcceptedRecordReachesTheSinkIntegration(t *testing.T) {
	bin, err := sluiceBinary()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "events.jsonl")
	addr := freeAddr(t)
	manifest := filepath.Join(dir, "hooks.yaml")
	if err := os.WriteFile(manifest, []byte(fmt.Sprintf(`apiVersion: sluice.dev/v1
kind: Pipeline
metadata: {name: hooks}
spec:
  source:
    type: webhook
    config:
      address: %q
      path: /hooks/payments
      ack: durable
      auth: {bearer: "${env:HOOK_TOKEN}"}
  sinks:
    - {name: out, type: file, config: {path: %q}}
  batch: {max_records: 50, linger: 2ms}
`, addr, out)), 0o644); err != nil {
		t.Fatal(err)
	}
	start := func() (*exec.Cmd, chan error, *bytes.Buffer) {
		var stderr bytes.Buffer
		cmd := exec.Command(bin, "run", "--data-dir", filepath.Join(dir, "data"), "--admin-addr", "", "--log-level", "warn", manifest)
		cmd.Env = append(os.Environ(), "HOOK_TOKEN=whsec-test")
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		return cmd, done, &stderr
	}

	ctx, stopClients := context.WithCancel(context.Background())
	var mu sync.Mutex
	accepted := map[string]bool{}
	var wg sync.WaitGroup
	hc := &http.Client{Timeout: 5 * time.Second}
	for c := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				ids := make([]string, 5)
				var body strings.Builder
				body.WriteString("[")
				for k := range ids {
					ids[k] = fmt.Sprintf("evt_%d_%d_%d", c, i, k)
					if k > 0 {
						body.WriteString(",")
					}
					fmt.Fprintf(&body, `{"id":%q,"type":"payment.succeeded","amount":%d}`, ids[k], 100+i)
				}
				body.WriteString("]")
				for ctx.Err() == nil {
					req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/hooks/payments", strings.NewReader(body.String()))
					req.Header.Set("Authorization", "Bearer whsec-test")
					req.Header.Set("Content-Type", "application/json")
					resp, err := hc.Do(req)
					if err == nil {
						resp.Body.Close()
						if resp.StatusCode == http.StatusOK {
							mu.Lock()
							for _, id := range ids {
								accepted[id] = true
							}
							mu.Unlock()
							break
						}
						if resp.StatusCode != 429 && resp.StatusCode != 503 {
							t.Errorf("status %d", resp.StatusCode)
							return
						}
					}
					time.Sleep(20 * time.Millisecond) // refused, cut or busy: post the same events again
				}
			}
		}()
	}

	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewSource(seed))
	t.Logf("seed %d", seed)
	for range 4 {
		cmd, done, _ := start()
		time.Sleep(time.Duration(400+rng.Intn(600)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		<-done
	}
	cmd, done, stderr := start()
	time.Sleep(500 * time.Millisecond)
	stopClients()
	wg.Wait()
	mu.Lock()
	want := len(accepted)
	mu.Unlock()
	if want == 0 {
		t.Fatal("no event was accepted")
	}
	var got map[string]int
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		got = fileIDs(t, out)
		missing := 0
		for id := range accepted {
			if got[id] == 0 {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d events answered 2xx never reached the sink\n%s", missing, want, stderr.String())
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := <-done; err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatal(err)
		}
		t.Fatalf("final run: %v\n%s", err, stderr.String())
	}
	dups := 0
	for _, n := range got {
		dups += n - 1
	}
	t.Logf("%d events answered 2xx across 4 kills, all in the sink; %d lines repeated", want, dups)
}
