package testenv

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"
	"testing"
)

// The certificates chain to the CA for their uses, and the keystore holds key, certificate, CA.
func TestCerts(t *testing.T) {
	c := Certs(t, t.TempDir())
	for _, tc := range []struct {
		cert, key string
		usage     x509.ExtKeyUsage
	}{{c.ServerCert, c.ServerKey, x509.ExtKeyUsageServerAuth}, {c.ClientCert, c.ClientKey, x509.ExtKeyUsageClientAuth}} {
		kp, err := tls.LoadX509KeyPair(tc.cert, tc.key)
		if err != nil {
			t.Fatal(err)
		}
		leaf, err := x509.ParseCertificate(kp.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		opts := x509.VerifyOptions{Roots: c.Pool, KeyUsages: []x509.ExtKeyUsage{tc.usage}}
		if tc.usage == x509.ExtKeyUsageServerAuth {
			opts.DNSName = "127.0.0.1"
		}
		if _, err := leaf.Verify(opts); err != nil {
			t.Fatalf("%s: %v", tc.cert, err)
		}
	}
	b, err := os.ReadFile(c.Keystore)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for blk, rest := pem.Decode(b); blk != nil; blk, rest = pem.Decode(rest) {
		types = append(types, blk.Type)
	}
	if len(types) != 3 || types[0] != "PRIVATE KEY" || types[1] != "CERTIFICATE" || types[2] != "CERTIFICATE" {
		t.Fatalf("keystore blocks %v, want key, certificate, CA", types)
	}
}
