package main

import (
	"bytes"
	"compress/gzip"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cavaliergopher/cpio"

	"github.com/rackboot/rackboot/api"
	"github.com/rackboot/rackboot/metrics"
	"github.com/rackboot/rackboot/pki"
	"github.com/rackboot/rackboot/profiles"
	"github.com/rackboot/rackboot/registry"
)

// TestPlainAPIRefused: on the plain port every /api/ path answers 403 with
// the HTTPS URL, whatever it carries, and the admin token opens nothing
// there; the same request over HTTPS is served. /ca.pem is served on both.
func TestPlainAPIRefused(t *testing.T) {
	fl := fleet{&profiles.Watcher{Dir: "../../examples"}}
	if err := fl.Reload(); err != nil {
		t.Fatal(err)
	}
	m := metrics.New(metrics.Options{})
	reg := &registry.Registry{Store: registry.NewMemory(), Log: slog.New(slog.DiscardHandler)}
	cfg := defaultServeConfig()
	cfg.Advertise, cfg.Artifacts, cfg.HTTPSPort = "127.0.0.1", t.TempDir(), 9443
	ca := []byte("-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n")
	rt := httpRoutes(cfg, t.TempDir(), fl, reg, &api.Events{}, testAdminToken, profiles.Planner{}, ca, trustLoopback(), m, &readiness{}, nil, slog.New(slog.DiscardHandler))
	plain := httptest.NewServer(rt.plain)
	defer plain.Close()
	secure := httptest.NewTLSServer(rt.secure)
	defer secure.Close()

	for _, tc := range []struct{ method, path string }{
		{http.MethodGet, "/api/hosts"},
		{http.MethodPost, "/api/reinstall"},
		{http.MethodGet, "/api/events"},
		{http.MethodGet, "/api/agent/plan"},
		{http.MethodPost, "/api/agent/done"},
		{http.MethodGet, "/api/nothing"},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, plain.URL+tc.path, strings.NewReader(`{"selector":{}}`))
			req.Header.Set("Authorization", "Bearer "+testAdminToken)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(b), "HTTPS only: use https://127.0.0.1:9443") {
				t.Errorf("plain: %d %s; want 403 naming the HTTPS URL", resp.StatusCode, b)
			}
		})
	}
	req, _ := http.NewRequest(http.MethodGet, secure.URL+"/api/hosts", nil)
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	resp, err := secure.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("https /api/hosts: %d, want 200", resp.StatusCode)
	}
	for _, c := range []struct {
		url string
		hc  *http.Client
	}{{plain.URL, http.DefaultClient}, {secure.URL, secure.Client()}} {
		resp, err := c.hc.Get(c.url + "/ca.pem")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !bytes.Equal(b, ca) {
			t.Errorf("%s/ca.pem: %d %q", c.url, resp.StatusCode, b)
		}
	}
	// What iPXE fetches stays on the plain port.
	resp, err = http.Get(plain.URL + "/boot.ipxe")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("plain /boot.ipxe: %d", resp.StatusCode)
	}
}

// TestApplianceTLS: the generated identity covers the boot interfaces,
// the advertised address and loopback; ca.pem and the agent's archive
// carry its CA; an operator's pair replaces it, and its anchor is what
// ca.pem and the archive then carry.
func TestApplianceTLS(t *testing.T) {
	data, nbp := t.TempDir(), t.TempDir()
	cfg := defaultServeConfig()
	cfg.Data, cfg.Advertise = data, "192.0.2.1"
	ifaces := []bootInterface{{Name: "eth1", Advertise: net.IPv4(198, 51, 100, 1).To4()}}
	log := slog.New(slog.DiscardHandler)
	id, err := applianceTLS(cfg, ifaces, nbp, log)
	if err != nil {
		t.Fatal(err)
	}
	if miss := pki.Missing(id.Cert.Leaf, []string{"192.0.2.1", "198.51.100.1", "127.0.0.1", "localhost"}); len(miss) > 0 {
		t.Errorf("certificate misses %v", miss)
	}
	check := func(want []byte) {
		t.Helper()
		if b, err := os.ReadFile(filepath.Join(data, "tls", "ca.pem")); err != nil || !bytes.Equal(b, want) {
			t.Errorf("DATA/tls/ca.pem: %v, not the anchor", err)
		}
		f, err := os.Open(filepath.Join(nbp, caArchive))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		zr, err := gzip.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		r := cpio.NewReader(zr)
		for {
			h, err := r.Next()
			if err != nil {
				t.Fatalf("no %s in the archive: %v", agentCAPath, err)
			}
			if h.Name == agentCAPath {
				if b, _ := io.ReadAll(r); !bytes.Equal(b, want) {
					t.Errorf("archive's %s is not the anchor", agentCAPath)
				}
				return
			}
		}
	}
	check(id.CA)

	// An operator's pair: here another appliance's generated one.
	other := t.TempDir()
	if _, err := pki.Ensure(other, []string{"192.0.2.1"}, id.Cert.Leaf.NotBefore); err != nil {
		t.Fatal(err)
	}
	chain := filepath.Join(t.TempDir(), "chain.pem")
	a, _ := os.ReadFile(filepath.Join(other, pki.ServerCertFile))
	b, _ := os.ReadFile(filepath.Join(other, pki.ApplianceCAFile))
	if err := os.WriteFile(chain, append(a, b...), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg.TLSCert, cfg.TLSKey = chain, filepath.Join(other, pki.ServerKeyFile)
	op, err := applianceTLS(cfg, ifaces, nbp, log)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(op.CA, b) {
		t.Error("the operator's anchor is not the last certificate of --tls-cert")
	}
	check(b)

	cfg.TLSKey = filepath.Join(t.TempDir(), "missing.key")
	if _, err := applianceTLS(cfg, ifaces, nbp, log); err == nil || !strings.Contains(err.Error(), "missing.key") {
		t.Errorf("missing key: %v, want an error naming the file", err)
	}
}

// TestHTTPSConnLimit: connections served over TLS free their slot when
// they close (the server reports the *tls.Conn, the limiter counted the
// TCP connection).
func TestHTTPSConnLimit(t *testing.T) {
	id, err := pki.Ensure(t.TempDir(), []string{"127.0.0.1"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs, hl := newHTTPServer(ln, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }), 4, 0, slog.New(slog.DiscardHandler))
	hs.TLSConfig = tlsConfig(id)
	go hs.ServeTLS(hl, "", "")
	defer hs.Close()
	pool, _ := pki.Pool("ca", id.CA)
	for range 12 {
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, DisableKeepAlives: true}}
		resp, err := hc.Get("https://" + ln.Addr().String() + "/")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if hl.Shed() != 0 {
		t.Errorf("%d connections shed: closed TLS connections kept their slots", hl.Shed())
	}
}
