package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rackboot/rackboot/registry/etcdstore/etcdtest"
)

// TestOpenStoreTLS: --store-ca, --store-cert and --store-key reach etcd:
// an etcd that requires client certificates takes this appliance with
// them, and refuses it without the certificate.
func TestOpenStoreTLS(t *testing.T) {
	dir := t.TempDir()
	ca, caKey := testCert(t, dir, "ca", nil, nil, 0)
	testCert(t, dir, "server", ca, caKey, x509.ExtKeyUsageServerAuth)
	testCert(t, dir, "client", ca, caKey, x509.ExtKeyUsageClientAuth)
	eps := etcdtest.StartTLS(t, filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem"), filepath.Join(dir, "ca.pem"))
	hosts := make([]string, len(eps))
	for i, e := range eps {
		hosts[i] = strings.TrimPrefix(e, "https://")
	}
	cfg := defaultServeConfig()
	cfg.Store = "etcd://" + strings.Join(hosts, ",") + etcdtest.Prefix()
	cfg.StoreCA, cfg.StoreCert, cfg.StoreKey = filepath.Join(dir, "ca.pem"), filepath.Join(dir, "client.pem"), filepath.Join(dir, "client-key.pem")
	cfg.ApplianceID = "tls-test"
	log := slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store, shared, err := openStore(ctx, cfg, nil, log)
	if err != nil {
		t.Fatalf("with a client certificate: %v", err)
	}
	if shared == nil || shared.ID() != "tls-test" {
		t.Errorf("shared store %v, want one named tls-test", shared)
	}
	if _, err := store.Hosts(ctx); err != nil {
		t.Errorf("Hosts over TLS: %v", err)
	}
	store.Close()

	cfg.StoreCert, cfg.StoreKey = "", ""
	if s, _, err := openStore(ctx, cfg, nil, log); err == nil {
		s.Close()
		t.Error("opened without a client certificate")
	}
	cfg.StoreCA = filepath.Join(dir, "missing.pem")
	if _, _, err := openStore(ctx, cfg, nil, log); err == nil || !strings.Contains(err.Error(), "missing.pem") {
		t.Errorf("a missing --store-ca: %v, want an error naming it", err)
	}
}

// testCert writes NAME.pem and NAME-key.pem in dir: a CA when parent is
// nil, else a certificate for 127.0.0.1 signed by parent.
func testCert(t *testing.T, dir, name string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, usage x509.ExtKeyUsage) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	signer := key
	if parent == nil {
		tmpl.IsCA, tmpl.BasicConstraintsValid, tmpl.KeyUsage = true, true, x509.KeyUsageCertSign
		parent = tmpl
	} else {
		tmpl.ExtKeyUsage, tmpl.KeyUsage = []x509.ExtKeyUsage{usage}, x509.KeyUsageDigitalSignature
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
		signer = parentKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+"-key.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return c, key
}
