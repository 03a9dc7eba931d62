package testenv

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// CertFiles are the PEM files Certs writes: a test CA, a server certificate for 127.0.0.1 and
// localhost, and a client certificate, both signed by the CA; keys are PKCS #8.
type CertFiles struct {
	CA                    string // the CA's certificate
	ServerCert, ServerKey string
	ClientCert, ClientKey string
	// Keystore holds the server's key, its certificate and the CA's, in that order: a PEM
	// keystore as Kafka reads one.
	Keystore string
	// Pool trusts the CA.
	Pool *x509.CertPool
}

// Certs makes a CA and the certificates of CertFiles, valid from an hour ago for a day, and
// writes them into dir.
func Certs(t testing.TB, dir string) CertFiles {
	t.Helper()
	now := time.Now()
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	caKey := newKey()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sluice test CA"}, NotBefore: now.Add(-time.Hour),
		NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, blocks ...*pem.Block) string {
		var b []byte
		for _, bl := range blocks {
			b = append(b, pem.EncodeToMemory(bl)...)
		}
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	caBlock := &pem.Block{Type: "CERTIFICATE", Bytes: caDER}
	leaf := func(name string, serial int64, usage x509.ExtKeyUsage) (certBlock, keyBlock *pem.Block) {
		key := newKey()
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name}, NotBefore: now.Add(-time.Hour),
			NotAfter: now.Add(24 * time.Hour), IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		return &pem.Block{Type: "CERTIFICATE", Bytes: der}, &pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}
	}
	srvCert, srvKey := leaf("127.0.0.1", 2, x509.ExtKeyUsageServerAuth)
	cliCert, cliKey := leaf("sluice-test-client", 3, x509.ExtKeyUsageClientAuth)
	c := CertFiles{
		CA:         write("ca.pem", caBlock),
		ServerCert: write("server.pem", srvCert), ServerKey: write("server-key.pem", srvKey),
		ClientCert: write("client.pem", cliCert), ClientKey: write("client-key.pem", cliKey),
		Keystore: write("keystore.pem", srvKey, srvCert, caBlock),
		Pool:     x509.NewCertPool(),
	}
	c.Pool.AddCert(ca)
	return c
}
