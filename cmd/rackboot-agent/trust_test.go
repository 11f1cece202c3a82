package main

import (
	"crypto/tls"
	"encoding/pem"
	"errors"
	"log/slog"
	"net"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rackboot/rackboot/pki"
)

func TestLoadCA(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.pem")
	if err := os.WriteFile(junk, []byte("not a certificate"), 0o644); err != nil {
		t.Fatal(err)
	}
	https, _ := url.Parse("https://192.0.2.1:8443")
	plain, _ := url.Parse("http://192.0.2.1:8080")
	if pool, err := loadCA([]*url.URL{plain}, filepath.Join(dir, "none.pem")); pool != nil || err != nil {
		t.Errorf("http appliance: %v, %v; want no roots and no error", pool, err)
	}
	for _, tc := range []struct{ name, file, want string }{
		{"no CA in the initramfs", filepath.Join(dir, "none.pem"), "will not send its token to an appliance it cannot verify"},
		{"not PEM", junk, "junk.pem: no PEM certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := loadCA([]*url.URL{plain, https}, tc.file); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
}

// TestClientVerifiesAppliance: over HTTPS the agent talks only to the
// appliance of its CA; another server's certificate ends the request
// before anything is sent, and is not retried.
func TestClientVerifiesAppliance(t *testing.T) {
	rec := &recorder{}
	ts := httptest.NewTLSServer(rec)
	defer ts.Close()
	ts.Config.ErrorLog = nil
	u, _ := url.Parse(ts.URL)
	mac, _ := net.ParseMAC("52:54:00:00:01:01")
	dir := t.TempDir()
	good := filepath.Join(dir, "good.pem")
	if err := os.WriteFile(good, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	other := t.TempDir()
	if _, err := pki.Ensure(other, []string{"127.0.0.1"}, time.Now()); err != nil {
		t.Fatal(err)
	}

	roots, err := loadCA([]*url.URL{u}, good)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := newClient(config{Servers: []*url.URL{u}, MAC: mac, Token: testToken}, roots, slog.New(slog.DiscardHandler)).plan(t.Context()); err != nil {
		t.Fatalf("the appliance of the CA: %v", err)
	}
	roots, err = loadCA([]*url.URL{u}, filepath.Join(other, pki.CAFile))
	if err != nil {
		t.Fatal(err)
	}
	before := len(rec.got())
	_, err = newClient(config{Servers: []*url.URL{u}, MAC: mac, Token: testToken}, roots, slog.New(slog.DiscardHandler)).plan(t.Context())
	var cv *tls.CertificateVerificationError
	if !errors.As(err, &cv) {
		t.Fatalf("another CA's server: %v, want a certificate verification error", err)
	}
	if n := len(rec.got()) - before; n != 0 {
		t.Errorf("%d requests reached a server the CA does not vouch for", n)
	}
	if retryable(err) {
		t.Errorf("a certificate verification error is retried")
	}
}
