package testmail

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
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

// Certs is a self-signed certificate for localhost and 127.0.0.1 that the harness's TLS
// servers present and that tests trust through Pool.
type Certs struct {
	CertPEM  []byte         // PEM certificate
	KeyPEM   []byte         // PEM private key
	CertFile string         // CertPEM written to disk (mode 0644)
	KeyFile  string         // KeyPEM written to disk (mode 0600)
	Pool     *x509.CertPool // a pool holding only this certificate
	Pair     tls.Certificate
}

// NewCerts makes a fresh self-signed ECDSA certificate with SANs localhost and 127.0.0.1
// and writes it into dir.
func NewCerts(t testing.TB, dir string) *Certs {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("testmail: generate key: %v", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatalf("testmail: serial: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "localhost", Organization: []string{"Mailwright test harness"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1"), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("testmail: create certificate: %v", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatalf("testmail: marshal key: %v", err)
	}
	c := &Certs{
		CertPEM:  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:   pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
		CertFile: filepath.Join(dir, "cert.pem"),
		KeyFile:  filepath.Join(dir, "key.pem"),
		Pool:     x509.NewCertPool(),
	}
	if err := os.WriteFile(c.CertFile, c.CertPEM, 0o644); err != nil {
		t.Fatalf("testmail: write certificate: %v", err)
	}
	if err := os.WriteFile(c.KeyFile, c.KeyPEM, 0o600); err != nil {
		t.Fatalf("testmail: write key: %v", err)
	}
	c.Pool.AppendCertsFromPEM(c.CertPEM)
	c.Pair, err = tls.X509KeyPair(c.CertPEM, c.KeyPEM)
	if err != nil {
		t.Fatalf("testmail: key pair: %v", err)
	}
	return c
}

// ClientTLS returns a client TLS config that trusts only this certificate.
func (c *Certs) ClientTLS(serverName string) *tls.Config {
	return &tls.Config{RootCAs: c.Pool, ServerName: serverName, MinVersion: tls.VersionTLS12}
}

// ServerTLS returns a server TLS config presenting this certificate.
func (c *Certs) ServerTLS() *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{c.Pair}, MinVersion: tls.VersionTLS12}
}
