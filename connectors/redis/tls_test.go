package redis

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/sdk/go/connector"
)

// certs writes a CA, a server certificate for 127.0.0.1 and a client certificate, all signed by
// the CA, as PEM files in dir.
func certs(t *testing.T, dir string) (ca, serverCert, serverKey, clientCert, clientKey string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sluice test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	leaf := func(name string, serial int64, usage x509.ExtKeyUsage) (string, string) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			KeyUsage: x509.KeyUsageDigitalSignature}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, _ := x509.MarshalECPrivateKey(key)
		return writePEM(t, dir, name+".crt", "CERTIFICATE", der), writePEM(t, dir, name+".key", "EC PRIVATE KEY", keyDER)
	}
	ca = writePEM(t, dir, "ca.crt", "CERTIFICATE", caDER)
	serverCert, serverKey = leaf("server", 2, x509.ExtKeyUsageServerAuth)
	clientCert, clientKey = leaf("client", 3, x509.ExtKeyUsageClientAuth)
	return
}

func writePEM(t *testing.T, dir, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestTLSIntegration connects to a private Redis that speaks only TLS and requires client
// certificates.
func TestTLSIntegration(t *testing.T) {
	sharedRedis(t)
	dir := t.TempDir()
	ca, srvCert, srvKey, cliCert, cliKey := certs(t, dir)
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
