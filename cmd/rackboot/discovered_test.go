package main

import (
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rackboot/rackboot/api"
	"github.com/rackboot/rackboot/metrics"
	"github.com/rackboot/rackboot/profiles"
	"github.com/rackboot/rackboot/registry"
)

// TestDiscoveryFlood is defect 5 of issue 13: with discovery on, 20,000
// script requests for random MACs made 20,000 permanent discovered records
// (a 32 KB store grew to 16 MB) and one 6.6 MB /api/hosts answer. Through
// the daemon's own routes (ipxe.Handler, the lifecycle adapter, the
// registry on bbolt in a temporary directory) over loopback, the records
// now stay at the cap, the file stops growing once the cap is reached,
// /api/hosts answers in pages the CLI follows, and --forget empties them.
func TestDiscoveryFlood(t *testing.T) {
	requests := 20000
	if testing.Short() {
		requests = 3000
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "registry.db")
	store, err := registry.OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	before := fileSize(t, path)

	fl := fleet{&profiles.Watcher{Dir: "../../examples"}}
	if err := fl.Reload(); err != nil {
		t.Fatal(err)
	}
	m := metrics.New(metrics.Options{Census: fleetCensus(store, fl, nil)})
	reg := &registry.Registry{Store: store, OnForget: m.DiscoveredForgotten, Log: slog.New(slog.DiscardHandler)}
	cfg := defaultServeConfig()
	cfg.Discovery, cfg.Advertise, cfg.Artifacts = true, "127.0.0.1", dir
	rt := httpRoutes(cfg, dir, fl, reg, &api.Events{}, testAdminToken, profiles.Planner{}, []byte("CA"), trustLoopback(), m, &readiness{}, nil, slog.New(slog.DiscardHandler))
	ts := httptest.NewServer(rt.plain)
	defer ts.Close()
	sts := httptest.NewTLSServer(rt.secure)
	defer sts.Close()

	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(requests) {
				mac := make(net.HardwareAddr, 6)
				rand.Read(mac)
				mac[0] = mac[0]&^1 | 2 // unicast, locally administered
				resp, err := http.Get(ts.URL + "/ipxe?arch=x86_64&platform=efi&mac=" + strings.ReplaceAll(mac.String(), ":", "-"))
				if err != nil {
					errs <- err
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "discovery is on") {
					errs <- fmt.Errorf("script of %s: %d %.200s", mac, resp.StatusCode, body)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	took := time.Since(start)

	hs, err := store.Hosts(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, h := range hs {
		if h.State == registry.StateDiscovered {
			n++
		}
	}
	after := fileSize(t, path)
	t.Logf("%d random-MAC requests in %s: %d discovered records, store %d → %d bytes", requests, took.Round(time.Millisecond), n, before, after)
	if n != registry.DefaultMaxDiscovered {
		t.Errorf("%d discovered records, want the cap, %d", n, registry.DefaultMaxDiscovered)
	}
	// 1,024 records of ~250 bytes; bbolt keeps freed pages for reuse.
	if after > 4<<20 {
		t.Errorf("store grew to %d bytes", after)
	}
	if got := metricValue(t, ts.URL, `rackboot_discovered_forgotten_total{reason="cap"}`); got != fmt.Sprint(requests-registry.DefaultMaxDiscovered) {
		t.Errorf("evictions counted: %s, want %d", got, requests-registry.DefaultMaxDiscovered)
	}

	// /api/hosts: pages of at most 500, which the CLI follows to the end.
	req, _ := http.NewRequest(http.MethodGet, sts.URL+"/api/hosts", nil)
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	resp, err := sts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if link := resp.Header.Get("Link"); !regexp.MustCompile(`^</api/hosts\?after=[0-9a-f%A]+&limit=500>; rel="next"$`).MatchString(link) {
		t.Errorf("first page's Link = %q", link)
	}
	t.Logf("first page of /api/hosts: %d bytes", len(b))
	env := map[string]string{"RACKBOOT_SERVER": sts.URL, "RACKBOOT_TOKEN": testAdminToken}
	c, stdout, stderr := testCLI(env)
	if code := runCmd(c, (*cli).hosts, "--state", "discovered"); code != 0 {
		t.Fatalf("hosts: exit %d: %s", code, stderr)
	}
	if lines := strings.Count(stdout.String(), "\n"); lines != registry.DefaultMaxDiscovered+1 {
		t.Errorf("rackboot hosts --state discovered: %d lines, want a header and %d hosts", lines, registry.DefaultMaxDiscovered)
	}

	c, stdout, stderr = testCLI(env)
	if code := runCmd(c, (*cli).hosts, "--state", "discovered", "--forget"); code != 0 {
		t.Fatalf("forget: exit %d: %s", code, stderr)
	}
	if want := fmt.Sprintf("forgot %d discovered records\n", registry.DefaultMaxDiscovered); stdout.String() != want {
		t.Errorf("forget printed %q, want %q", stdout, want)
	}
	c, _, stderr = testCLI(env)
	if code := runCmd(c, (*cli).hosts, "--state", "discovered"); code != 0 || stderr.String() != "no host matches\n" {
		t.Errorf("after forget: exit %d, %q", code, stderr)
	}
}

func TestHostsForgetUsage(t *testing.T) {
	for _, args := range [][]string{
		{"--forget"},
		{"--state", "installed", "--forget"},
		{"--state", "discovered", "--label", "rack=r1", "--forget"},
	} {
		c, _, stderr := testCLI(map[string]string{"RACKBOOT_TOKEN": "unused"})
		if code := runCmd(c, (*cli).hosts, args...); code != 2 || !strings.Contains(stderr.String(), "--forget goes with --state discovered") {
			t.Errorf("%q: exit %d, want 2 (%s)", args, code, stderr)
		}
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// metricValue is the value of the series named (with its labels) in
// /metrics.
func metricValue(t *testing.T, base, series string) string {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for l := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), series+" "); ok {
			return v
		}
	}
	return ""
}
