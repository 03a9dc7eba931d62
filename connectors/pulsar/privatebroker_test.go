package pulsar

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/testenv"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// privateBroker is a Pulsar standalone of this test alone, started from the distribution that
// `make services` installed, with token authentication and authorization on: the shared broker
// runs without them, and they are broker-wide settings.
type privateBroker struct {
	url, admin string
	secret     []byte
}

// token signs a JWT (HS256) for role with the broker's secret key.
func (p *privateBroker) token(role string) string {
	enc := base64.RawURLEncoding
	unsigned := enc.EncodeToString([]byte(`{"alg":"HS256"}`)) + "." + enc.EncodeToString([]byte(fmt.Sprintf(`{"sub":%q}`, role)))
	mac := hmac.New(sha256.New, p.secret)
	mac.Write([]byte(unsigned))
	return unsigned + "." + enc.EncodeToString(mac.Sum(nil))
}

// startPrivateBroker starts the broker and waits (up to 4 minutes) until its admin API answers.
// It is stopped when the test ends.
func startPrivateBroker(t *testing.T) *privateBroker {
	t.Helper()
	dist := filepath.Join(testenv.Require(t, "SLUICE_SERVICES_DIR"), "pulsar", "dist")
	base, err := os.ReadFile(filepath.Join(dist, "conf", "standalone.conf"))
	if err != nil {
		t.Fatalf("the Pulsar distribution of `make services` is missing: %v", err)
	}
	dir := t.TempDir()
	p := &privateBroker{secret: make([]byte, 32)}
	_, _ = rand.Read(p.secret)
	port, web := freePort(t), freePort(t)
	p.url, p.admin = fmt.Sprintf("pulsar://127.0.0.1:%d", port), fmt.Sprintf("http://127.0.0.1:%d", web)
	conf := string(base) + fmt.Sprintf(`
bindAddress=127.0.0.1
advertisedAddress=127.0.0.1
brokerServicePort=%d
webServicePort=%d
functionsWorkerEnabled=false
brokerDeleteInactiveTopicsEnabled=false
brokerShutdownTimeoutMs=3000
loadBalancerEnabled=false
managedLedgerCacheSizeMB=32
listeningInterface=lo
journalSyncData=false
dbStorage_writeCacheMaxSizeMb=16
dbStorage_readAheadCacheMaxSizeMb=16
authenticationEnabled=true
authenticationProviders=org.apache.pulsar.broker.authentication.AuthenticationProviderToken
tokenSecretKey=data:;base64,%s
authorizationEnabled=true
superUserRoles=admin
brokerClientAuthenticationPlugin=org.apache.pulsar.client.impl.auth.AuthenticationToken
brokerClientAuthenticationParameters=token:%s
`, port, web, base64.StdEncoding.EncodeToString(p.secret), p.token("admin"))
	confPath := filepath.Join(dir, "standalone.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "pulsar.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command("bash", filepath.Join(dist, "bin", "pulsar"), "standalone", "--no-functions-worker", "--no-stream-storage",
		"--metadata-dir", filepath.Join(dir, "data", "metadata"), "--bookkeeper-dir", filepath.Join(dir, "data", "bookkeeper"))
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PULSAR_MEM=-Xms128m -Xmx512m -XX:MaxDirectMemorySize=256m", "PULSAR_EXTRA_OPTS=-XX:TieredStopAtLevel=1",
		"PULSAR_LOG_DIR="+filepath.Join(dir, "logs"), "PULSAR_STANDALONE_CONF="+confPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start the private broker: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	})
	started := time.Now()
	waitFor(t, 4*time.Minute, "the private broker's admin API", func() bool {
		select {
		case <-exited:
			b, _ := os.ReadFile(logPath)
			t.Fatalf("the private broker exited:\n%s", tailText(string(b), 40))
		default:
		}
		body, code := p.get("namespaces/public", p.token("admin"))
		return code == http.StatusOK && strings.Contains(body, "public/default")
	})
	t.Logf("private broker with token auth ready in %v", time.Since(started).Round(time.Second))
	return p
}

func (p *privateBroker) get(path, token string) (string, int) {
	req, _ := http.NewRequest(http.MethodGet, p.admin+"/admin/v2/"+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	cl := http.Client{Timeout: 5 * time.Second}
	resp, err := cl.Do(req)
	if err != nil {
		return err.Error(), 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b), resp.StatusCode
}

func tailText(s string, n int) string {
	ls := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, "\n")
}

// TestAuthPrivateBrokerIntegration: with a broker that authenticates and authorizes, the right token (given
// inline or in a file) reads and writes, and the backlog comes through the admin API with it; a
// wrong or missing token, or a role without permission, fails Open with a permanent error that
// says so.
func TestAuthPrivateBrokerIntegration(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a private Pulsar broker")
	}
	p := startPrivateBroker(t)
	topic := uniqueTopic(t, "auth")
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(p.token("admin")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A refused connection ends Open at once, not after operation_timeout.
	quick := map[string]any{"url": p.url, "operation_timeout": 5 * time.Minute, "connection_timeout": 5 * time.Second}
	with := func(extra map[string]any) map[string]any {
		v := map[string]any{}
		for k, x := range quick {
			v[k] = x
		}
		for k, x := range extra {
			v[k] = x
		}
		return v
	}
	ctx := context.Background()

	t.Run("token works", func(t *testing.T) {
		// Unbatched: the backlog counts entries, and a batch is one.
		snk, err := NewSink(mustConfig(t, &sinkSpec, with(map[string]any{"topic": topic, "token": p.token("admin"), "batching": false})), connector.Env{})
		if err != nil {
			t.Fatal(err)
		}
		defer snk.Close(ctx)
		if err := snk.Open(ctx); err != nil {
			t.Fatalf("sink Open with the right token: %v", err)
		}
		recs := make([]connector.Record, 10)
		for i := range recs {
			recs[i] = connector.Record{Value: []byte(fmt.Sprint(i))}
		}
		if err := snk.Write(ctx, recs); err != nil {
			t.Fatalf("Write: %v", err)
		}
		src, err := NewSource(mustConfig(t, &sourceSpec, with(map[string]any{"topics": []any{topic}, "subscription": "s",
			"token_file": tokenFile, "admin_url": p.admin})), connector.Env{})
		if err != nil {
			t.Fatal(err)
		}
		defer src.Close(ctx)
		if err := src.Open(ctx, nil); err != nil {
			t.Fatalf("source Open with the token file: %v", err)
		}
		got := readN(t, src, 10)
		if len(got) != 10 {
			t.Fatalf("read %d records, want 10", len(got))
		}
		bl, err := src.Backlog(ctx, nil)
		if err != nil || len(bl) != 1 || bl[0].Records != 10 {
			t.Fatalf("Backlog = %v, %v; want the 10 unacknowledged messages, through the admin API with the token", bl, err)
		}
	})

	for _, tc := range []struct {
		name  string
		extra map[string]any
		says  string
	}{
		{"wrong token", map[string]any{"token": "e30.e30.c2lnbmF0dXJl"}, "refused the connection"},
		{"no token", map[string]any{}, "refused the connection"},
		{"unauthorized role", map[string]any{"token": p.token("nobody")}, "not authorized"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, err := NewSource(mustConfig(t, &sourceSpec, with(merge(tc.extra, map[string]any{"topics": []any{topic}, "subscription": "s2"}))), connector.Env{})
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close(ctx)
			err = src.Open(ctx, nil)
			t.Logf("source: %v", err)
			if !errors.Is(err, connector.ErrPermanent) || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("source Open: %v; want a permanent error saying %q", err, tc.says)
			}
			snk, err := NewSink(mustConfig(t, &sinkSpec, with(merge(tc.extra, map[string]any{"topic": topic}))), connector.Env{})
			if err != nil {
				t.Fatal(err)
			}
			defer snk.Close(ctx)
			err = snk.Open(ctx)
			t.Logf("sink: %v", err)
			if !errors.Is(err, connector.ErrPermanent) || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("sink Open: %v; want a permanent error saying %q", err, tc.says)
			}
		})
	}
}

func merge(a, b map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

func mustConfig(t *testing.T, spec *connector.Spec, v map[string]any) connector.Config {
	t.Helper()
	cfg, err := spec.Config(v)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}
