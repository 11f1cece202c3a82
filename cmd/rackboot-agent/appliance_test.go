package main

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rackboot/rackboot/api"
	"github.com/rackboot/rackboot/artifacts"
	"github.com/rackboot/rackboot/profiles"
	"github.com/rackboot/rackboot/registry"
)

const adminToken = "admin-0123456789abcdef0123456789abcdef"

// appliance is the real agent API (api.Server on a registry in memory)
// and artifact server, over loopback, with a two-host fleet installing
// the test image.
type appliance struct {
	t   *testing.T
	url string
	ts  *httptest.Server
	reg *registry.Registry
	art string // the artifacts directory
}

func newAppliance(t *testing.T, img testImage) *appliance {
	t.Helper()
	return newAppliances(t, img, 1, nil)[0]
}

// newAppliances is n appliances of one fleet: one registry store and
// token key, as appliances sharing etcd. wrap, if set, wraps the handler
// of appliance i.
func newAppliances(t *testing.T, img testImage, n int, wrap func(i int, h http.Handler) http.Handler) []*appliance {
	t.Helper()
	profDir, artDir := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(artDir, "os.img.zst"), img.zst, 0o644); err != nil {
		t.Fatal(err)
	}
	fleet := `versions:
  - name: os-1
    number: 1
    image: { url: os.img.zst, sha256: ` + img.sha256 + `, format: zstd, kind: whole-disk }
    installer: { kernel: vmlinuz, initrd: agent.cpio.gz }
layouts:
  - name: small
    disk: { select: smallest, min_size: 32MiB }
    partitions:
      - { name: cidata, size: 16MiB, type: linux, content: config }
defaults: { version: os-1, layout: small }
hosts:
  - { mac: "52:54:00:00:01:01", hostname: n01, network: { dhcp: true } }
  - { mac: "52:54:00:00:01:02", hostname: n02 }
`
	if err := os.WriteFile(filepath.Join(profDir, "fleet.yaml"), []byte(fleet), 0o644); err != nil {
		t.Fatal(err)
	}
	set, err := profiles.Load(profDir)
	if err != nil {
		t.Fatal(err)
	}
	store, key := registry.NewMemory(), []byte("the fleet's token key")
	var aps []*appliance
	for i := range n {
		reg := &registry.Registry{Store: store, Key: key}
		mux := http.NewServeMux()
		mux.Handle("/api/", &api.Server{Registry: reg, Fleet: set, AdminToken: adminToken,
			Planner: profiles.Planner{ImageSizes: (&artifacts.Sizes{Dir: artDir}).Image}})
		mux.Handle("/artifacts/", &artifacts.Handler{Dir: artDir, Prefix: "/artifacts/"})
		var h http.Handler = mux
		if wrap != nil {
			h = wrap(i, mux)
		}
		ts := httptest.NewServer(h)
		t.Cleanup(ts.Close)
		aps = append(aps, &appliance{t: t, url: ts.URL, ts: ts, reg: reg, art: artDir})
	}
	return aps
}

// boot is the machine's PXE boot: the appliance mints the install token
// its iPXE script would put on the kernel command line.
func (ap *appliance) boot(mac, hostname string) string {
	ap.t.Helper()
	hw, _ := net.ParseMAC(mac)
	d, err := ap.reg.Boot(context.Background(), hw, hostname, true, false)
	if err != nil || d.Token == "" {
		ap.t.Fatalf("boot %s: %+v, %v", mac, d, err)
	}
	return d.Token
}

func (ap *appliance) admin(path string, out any) {
	ap.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, ap.url+path, nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		ap.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		ap.t.Fatalf("GET %s: %s", path, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		ap.t.Fatal(err)
	}
}

func (ap *appliance) history(mac string) []registry.Attempt {
	var h []registry.Attempt
	ap.admin("/api/hosts/"+mac+"/history?log=1", &h)
	return h
}

// TestAgainstAppliance runs the agent's whole flow against the real API:
// plan, image download with the token, progress, log, done; then the
// token checks: missing, wrong, another MAC's, and replayed after done.
func TestAgainstAppliance(t *testing.T) {
	img := newTestImage(t)
	ap := newAppliance(t, img)
	const n01, n02 = "52:54:00:00:01:01", "52:54:00:00:01:02"
	tok01, tok02 := ap.boot(n01, "n01"), ap.boot(n02, "n02")

	refused := func(t *testing.T, mac, token string) {
		t.Helper()
		_, disks := newTarget(t, targetSize)
		a, _ := testAgent(t, ap.url, mac, token, disks)
		_, err := a.attempt(context.Background())
		if !unauthorized(err) {
			t.Errorf("attempt with a bad token: %v, want the appliance's 401", err)
		}
	}
	t.Run("missing token", func(t *testing.T) { refused(t, n01, "") })
	t.Run("wrong token", func(t *testing.T) { refused(t, n01, strings.Repeat("ab", 32)) })
	t.Run("another machine's token", func(t *testing.T) { refused(t, n01, tok02) })
	if h := ap.history(n01); len(h) != 0 {
		t.Fatalf("refused agents started attempts: %+v", h)
	}

	t.Run("install", func(t *testing.T) {
		disk, disks := newTarget(t, targetSize)
		a, screen := testAgent(t, ap.url, n01, tok01, disks)
		out, err := a.attempt(context.Background())
		if err != nil || !out.Done || out.State != "installed" {
			t.Fatalf("attempt: %+v, %v\nconsole:\n%s", out, err, screen)
		}
		checkInstalled(t, disk, img)
		h := ap.history(n01)
		if len(h) != 1 || h[0].Result != registry.ResultSuccess || h[0].ImageSHA256 != img.sha256 || h[0].BytesWritten != int64(len(img.raw)) {
			t.Fatalf("history %+v", h)
		}
		log := strings.Join(h[0].Log, "\n")
		for _, want := range []string{`msg="plan received" attempt=1`, `msg="image written"`, `msg="install done, reporting"`} {
			if !strings.Contains(log, want) {
				t.Errorf("the attempt's log lacks %s:\n%s", want, log)
			}
		}
		var host api.HostView
		ap.admin("/api/hosts/"+n01, &host)
		if host.State != registry.StateInstalled {
			t.Errorf("host state %s", host.State)
		}
	})
	t.Run("token replayed after done", func(t *testing.T) { refused(t, n01, tok01) })
}
