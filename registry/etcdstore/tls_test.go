package etcdstore

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

	"github.com/rackboot/rackboot/registry"
	"github.com/rackboot/rackboot/registry/etcdstore/etcdtest"
	"github.com/rackboot/rackboot/registry/registrytest"
)

// TestTLS: against an etcd that requires client certificates (what the
// package documentation asks of operators), the store works with one and
// Open fails without.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	caCert, caKey := newCert(t, nil, nil, "test CA", nil)
	srvCert, srvKey := newCert(t, caCert, caKey, "etcd", []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth})
	cliCert, cliKey := newCert(t, caCert, caKey, "appliance", []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth})
	writePEM(t, filepath.Join(dir, "ca.pem"), caCert.Raw, nil)
	writePEM(t, filepath.Join(dir, "server.pem"), srvCert.Raw, srvKey)
	eps := etcdtest.StartTLS(t, filepath.Join(dir, "server.pem"), filepath.Join(dir, "server.pem"), filepath.Join(dir, "ca.pem"))

	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	client := tls.Certificate{Certificate: [][]byte{cliCert.Raw}, PrivateKey: cliKey}
	tests := []struct {
		name string
		tls  *tls.Config
		ok   bool
	}{
		{"ClientCertificate", &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{client}}, true},
		{"NoClientCertificate", &tls.Config{RootCAs: pool}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Open(ctx, Config{Endpoints: eps, ID: "a", TLS: tt.tls, DialTimeout: time.Second, CallTimeout: time.Second})
			if !tt.ok {
				if err == nil {
					s.Close()
					t.Fatal("Open succeeded")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if _, err := s.Update(ctx, macA, func(h *registry.HostRecord, _ bool) (*registry.Attempt, error) {
				h.State = registry.StatePending
				return nil, nil
			}); err != nil {
				t.Fatal(err)
			}
			if h, err := s.Host(ctx, macA); err != nil || h.State != registry.StatePending {
				t.Errorf("Host = %+v, %v; want the pending record", h, err)
			}
		})
	}
	t.Run("Conformance", func(t *testing.T) {
		cfg := &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{client}}
		registrytest.Run(t, func(t *testing.T) registry.Store {
			s, err := Open(ctx, Config{Endpoints: eps, Prefix: etcdtest.Prefix(), ID: "a", TLS: cfg})
			if err != nil {
				t.Fatal(err)
			}
			return s
		})
	})
}

// newCert makes a P-256 certificate for 127.0.0.1 signed by ca (self-signed
// CA when ca is nil).
func newCert(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, name string, usage []x509.ExtKeyUsage) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: usage,
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	parent, signer := tmpl, key
	if ca == nil {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	} else {
		parent, signer = ca, caKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c, key
}

// writePEM writes a certificate, and its key when given, to path.
func writePEM(t *testing.T, path string, cert []byte, key *ecdsa.PrivateKey) {
	t.Helper()
	b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert})
	if key != nil {
		der, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})...)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
