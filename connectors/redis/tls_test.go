package redis

import (
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/testenv"
	"github.com/sluicehq/sluice/sdk/go/connector"
)

// TestTLSIntegration connects to a private Redis that speaks only TLS and requires client
// certificates.
func TestTLSIntegration(t *testing.T) {
	sharedRedis(t)
	dir := t.TempDir()
	c := testenv.Certs(t, dir)
	ca, srvCert, srvKey, cliCert, cliKey := c.CA, c.ServerCert, c.ServerKey, c.ClientCert, c.ClientKey
	port := freePort(t)
	srv := startPrivateRedisOn(t, port, "--port", "0", "--tls-port", strconv.Itoa(port),
		"--tls-cert-file", srvCert, "--tls-key-file", srvKey, "--tls-ca-cert-file", ca, "--tls-auth-clients", "yes")
	ctx := testCtx(t, time.Minute)
	base := func(tls map[string]any) map[string]any {
		return map[string]any{"addr": srv.Addr(), "mode": "string", "key": "tls:{{k}}", "tls": tls, "dial_timeout": 2 * time.Second}
	}

	s := openSink(t, base(map[string]any{"enabled": true, "ca_file": ca, "cert_file": cliCert, "key_file": cliKey}), connector.Env{})
	if err := s.Write(ctx, []connector.Record{rec(`{"k":"a"}`)}); err != nil {
		t.Fatal(err)
	}
	s = openSink(t, base(map[string]any{"enabled": true, "insecure_skip_verify": true, "cert_file": cliCert, "key_file": cliKey}), connector.Env{})
	if err := s.Write(ctx, []connector.Record{rec(`{"k":"b"}`)}); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name      string
		values    map[string]any
		permanent bool
		want      string
	}{
		{"CA not trusted", base(map[string]any{"enabled": true, "cert_file": cliCert, "key_file": cliKey}), true, "not trusted"},
		{"wrong server name", base(map[string]any{"enabled": true, "ca_file": ca, "server_name": "redis.example", "cert_file": cliCert, "key_file": cliKey}), true, "not trusted"},
		{"missing CA file", base(map[string]any{"enabled": true, "ca_file": filepath.Join(dir, "none.pem")}), true, "tls.ca_file"},
		{"no client certificate", base(map[string]any{"enabled": true, "ca_file": ca}), true, "certificate required"},
		{"plain TCP to a TLS port", base(map[string]any{}), false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSink(t, tc.values, connector.Env{})
			err := s.Open(ctx)
			s.Close(ctx)
			t.Log(err)
			if err == nil {
				t.Fatal("Open succeeded")
			}
			if tc.permanent && !errors.Is(err, connector.ErrPermanent) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open: %v; want a permanent error saying %q", err, tc.want)
			}
		})
	}
	t.Run("TLS to a plain server", func(t *testing.T) {
		// A Redis without TLS reads the TLS greeting as a command and never answers it: the
		// handshake ends with the dial timeout, like any unreachable server.
		plain := startPrivateRedis(t)
		s := newSink(t, map[string]any{"addr": plain.Addr(), "mode": "stream", "stream": "x", "dial_timeout": 500 * time.Millisecond,
			"tls": map[string]any{"enabled": true, "insecure_skip_verify": true}}, connector.Env{})
		err := s.Open(ctx)
		s.Close(ctx)
		if err == nil || !strings.Contains(err.Error(), "connect to "+plain.Addr()) {
			t.Fatalf("Open: %v; want a connection error", err)
		}
	})
}
