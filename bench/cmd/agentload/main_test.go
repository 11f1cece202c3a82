package main

import (
	"context"
	"crypto/x509"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rackboot/rackboot/api"
	"github.com/rackboot/rackboot/artifacts"
	"github.com/rackboot/rackboot/bench/internal/appliance"
	"github.com/rackboot/rackboot/ipxe"
	"github.com/rackboot/rackboot/profiles"
	"github.com/rackboot/rackboot/registry"
)

// TestAgents runs the agents against rackboot's own script and agent API
// handlers over loopback, with the profiles writeFleet writes: the fleet
// must load, every agent must get a token and a plan, and every report
// must be answered.
func TestAgents(t *testing.T) {
	agents, err := macs("52:54:02", 20)
	if err != nil {
		t.Fatal(err)
	}
	dir, art := t.TempDir(), t.TempDir()
	sum, err := writeImage(art)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(dir, "fleet.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := writeFleet(f, agents, sum); err != nil {
		t.Fatal(err)
	}
	f.Close()
	set, err := profiles.Load(dir)
	if err != nil {
		t.Fatalf("the written fleet does not load: %v", err)
	}
	reg := &registry.Registry{Store: registry.NewMemory()}
	// As the daemon: the agent API over HTTPS, the scripts plain.
	sts := httptest.NewTLSServer(&api.Server{Registry: reg, Fleet: set, Planner: profiles.Planner{ImageSizes: (&artifacts.Sizes{Dir: art}).Image}})
	defer sts.Close()
	roots := x509.NewCertPool()
	roots.AddCert(sts.Certificate())
	mux := http.NewServeMux()
	mux.Handle("/ipxe", &ipxe.Handler{Hosts: set, Lifecycle: appliance.Lifecycle{Reg: reg}, APIPort: sts.Listener.Addr().(*net.TCPAddr).Port})
	ts := httptest.NewServer(mux)
	defer ts.Close()

	s := run(context.Background(), config{base: ts.URL, roots: roots, agents: agents, interval: 50 * time.Millisecond,
		duration: 200 * time.Millisecond, setupConc: 5, timeout: 5 * time.Second})
	if s.setupOK != 20 || s.expected != 80 || s.ok != 80 || s.lost() != 0 {
		t.Errorf("%d agents set up, %d of %d reports answered, %d lost (errors %v); want 20, 80 of 80, 0",
			s.setupOK, s.ok, s.expected, s.lost(), s.errs)
	}

	t.Run("unknown agents lose every report", func(t *testing.T) {
		strangers, _ := macs("52:54:03", 3)
		s := run(context.Background(), config{base: ts.URL, roots: roots, agents: strangers, interval: 50 * time.Millisecond,
			duration: 100 * time.Millisecond, setupConc: 3, timeout: 5 * time.Second})
		if s.setupOK != 0 || s.lost() != 6 || len(s.errs) != 3 {
			t.Errorf("strangers: %d set up, %d lost, errors %v; want 0, 6, three setup errors", s.setupOK, s.lost(), s.errs)
		}
	})
}

// TestServerRe: an agent takes the first appliance of rackboot.server=,
// the one that served its script, whether the script names one or
// several.
func TestServerRe(t *testing.T) {
	for _, tt := range []struct{ line, want string }{
		{"kernel k rackboot.server=https://192.0.2.1:8443 rackboot.mac=x", "https://192.0.2.1:8443"},
		{"kernel k rackboot.server=https://192.0.2.1:8443,https://192.0.2.2:8443 rackboot.mac=x", "https://192.0.2.1:8443"},
		{"kernel k rackboot.server=http://[2001:db8::1]:8080,https://192.0.2.2:8443", "http://[2001:db8::1]:8080"},
	} {
		m := serverRe.FindStringSubmatch(tt.line)
		if m == nil || m[1] != tt.want {
			t.Errorf("serverRe in %q: %q, want %q", tt.line, m, tt.want)
		}
	}
}
