//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rackboot/rackboot/e2e/demo/rack"
	"github.com/rackboot/rackboot/e2e/lab"
	"github.com/rackboot/rackboot/registry"
)

// TestPeers is issue 15's end-to-end acceptance: "four machines reinstall
// at once with the appliance's link limited; all succeed and history shows
// chunks taken from peers".
//
// Four BIOS machines (the quickest to PXE-boot under TCG) with blank disks
// are powered on at once and install demo-1.0 imported as chunks
// (`rackboot image add`), from `rackboot serve --peers all`. They install
// blank disks rather than reinstall installed ones: a reinstall of the
// same version finds every chunk in place on the disk and fetches nothing,
// from the appliance or from peers; a blank disk is the case where every
// chunk must cross the network, which is what a wave of reinstalls onto
// other versions (or wiped disks) looks like to the appliance's link.
//
// The appliance's link (what rackboot sends into the lab's bridge, not
// what the machines send each other through it) is limited to peerRate
// once the four machines have their installer's kernel and initramfs:
// before, iPXE's downloads of the installer (about as big as the image
// here) would take most of the limited link's time and of the test's, and
// measure iPXE, not the distribution of the image. So the limit is on for
// the whole image phase of every machine, and the test checks it was on
// before the first chunk left the appliance.
//
// Then: all four end installed, one successful attempt each; the sum of
// the bytes taken from peers, in the history, is above zero; the
// appliance sent less than four images' worth of chunks
// (rackboot_http_sent_bytes_total{handler="chunks"}, and its link's
// transmit counter, logged); each machine boots its disk and the demo OS
// reports its version and hostname.
//
// RACKBOOT_E2E_PEERS=off runs the same installs with peer distribution
// off, for the baseline (the appliance sends every machine the whole
// image; the peer assertions are skipped).
func TestPeers(t *testing.T) {
	ctx := testContext(t)
	mode := "all"
	if os.Getenv("RACKBOOT_E2E_PEERS") == "off" {
		mode = "off"
	}
	var image importedImage
	r := startRackWith(t, ctx, rackConfig{
		extra: func(t *testing.T, b *rack.Built) map[string]string {
			image = importChunked(t, ctx, b, peerSource, peerVersion)
			return map[string]string{"peers.yaml": peerFleetYAML(image.SHA256)}
		},
		serve: peerServeArgs(mode),
	})
	t.Logf("peer distribution %s; the appliance's link limited to %.1f Mbit/s for the image phase", mode, peerRate/1e6)

	vms := map[string]*lab.VM{}
	for _, m := range peerMachines {
		if err := m.NewDisk(r.dir); err != nil {
			t.Fatal(err)
		}
	}
	// Powered on together, as a rack's power comes on.
	for _, m := range peerMachines {
		vms[m.Name] = r.powerOn(t, ctx, m, m.Name+"-install")
	}
	start := time.Now()
	limitedAt, sentBefore := limitAfterInstallers(t, ctx, r)
	t.Cleanup(func() {
		// The lab goes with its namespaces; a later step (boot from
		// disk) would only be slower.
		r.net.LimitServerRate(context.Background(), 0)
	})

	var mu sync.Mutex
	ended := map[string]time.Time{}
	ok := t.Run("install", func(t *testing.T) {
		for _, m := range peerMachines {
			t.Run(m.Name, func(t *testing.T) {
				t.Parallel()
				if !r.waitInstall(t, ctx, m, vms[m.Name]) {
					t.Fatalf("the install of %s failed:\n%s", m.Name, vms[m.Name].Tail(20))
				}
				mu.Lock()
				ended[m.Name] = time.Now()
				mu.Unlock()
			})
		}
	})
	sentAfter, err := r.net.ServerSent(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.net.LimitServerRate(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if !ok {
		t.FailNow()
	}
	var last time.Time
	for _, e := range ended {
		if e.After(last) {
			last = e
		}
	}
	checkPeerInstalls(t, r, image, mode, peerWave{
		limitedAt: limitedAt, start: start, last: last, sent: sentAfter - sentBefore,
	})

	t.Run("boot-from-disk", func(t *testing.T) {
		for _, m := range peerMachines {
			t.Run(m.Name, func(t *testing.T) {
				t.Parallel()
				h := r.host(t, m)
				got := r.bootOS(t, ctx, m, m.Name+"-boot")
				if got.Version != peerSource || got.Hostname != h.Hostname || !got.Done {
					t.Errorf("%s's installed OS reported version %q, hostname %q, done %v; want %s, %s, done",
						m.Name, got.Version, got.Hostname, got.Done, peerSource, h.Hostname)
				}
			})
		}
	})
	t.Logf("installs, seconds from power-on (rackboot's log and the serial consoles):\n%s", lab.FormatTimelines(r.installs))
	t.Logf("boots from disk, seconds from power-on:\n%s", lab.FormatTimelines(r.boots))
}

// peerSource is the demo image TestPeers imports as chunks, under the
// version name peerVersion. Its chunked index reproduces the image byte
// for byte, so the installed OS reports peerSource as its version.
const (
	peerSource  = "demo-1.0"
	peerVersion = "demo-1.0-chunks"
)

// peerRate is the appliance's link rate while the images download:
// demo-1.0's chunks (11.4 MiB: the image is 82 MiB, 58.5 of it zeros,
// which are not fetched) take 12 s through it, four times that without
// peers; the machines' own links (their taps) are not limited.
const peerRate = 8_000_000

// peerMachines are TestPeers' machines: BIOS with QEMU's iPXE ROM, hosts
// of rack 1 by their MAC prefix (layout compact), with blank disks.
var peerMachines = func() []rack.Machine {
	var ms []rack.Machine
	for i := byte(1); i <= 4; i++ {
		ms = append(ms, rack.Machine{Name: fmt.Sprintf("peer%d", i), MAC: net.HardwareAddr{0x52, 0x54, 0x00, 0x77, 0x05, i},
			Firmware: lab.BIOS, NIC: "virtio-net-pci", DiskSize: 8 << 30})
	}
	return ms
}()

// peerServeArgs are rackboot serve's flags for mode ("all" or "off").
func peerServeArgs(mode string) []string {
	if mode == "off" {
		return nil // TODO: "--peers off" once the flag is on main
	}
	return []string{"--peers", mode}
}

// peerFleetYAML adds TestPeers' version, the chunked demo image whose
// index has the digest sha, and its four hosts to the example fleet.
func peerFleetYAML(sha string) string {
	var hosts strings.Builder
	for i, m := range peerMachines {
		fmt.Fprintf(&hosts, "  - { mac: %q, hostname: r1-peer%02d, version: %s, network: { address: 10.0.1.%d/24 } }\n",
			m.MAC.String(), i+1, peerVersion, 41+i)
	}
	return `# TestPeers' version and hosts, beside the example fleet (e2e/peers_test.go).
versions:
  # demo-1.0 imported with rackboot image add: the agents fetch its
  # chunks, from the appliance or, with --peers, from each other.
  - name: ` + peerVersion + `
    number: 1
    channel: e2e-peers
    image: { url: images/` + peerVersion + `.rbidx, sha256: ` + sha + `, format: chunked, kind: whole-disk }
    installer: { kernel: ` + rack.KernelFile + `, initrd: ` + rack.InitrdFile + `, cmdline: "console=ttyS0,115200 quiet loglevel=3 panic=-1" }
hosts:
` + hosts.String()
}

// importedImage is an image imported as chunks.
type importedImage struct {
	SHA256 string // the index's, the catalog's sha256
	Chunks int64  // bytes of the chunk files: the compressed image as chunks
	Raw    int64  // the image's size
}

// importChunked imports the image of version source into b's artifacts
// directory as version name with `rackboot image add`, as an admin does.
func importChunked(t *testing.T, ctx context.Context, b *rack.Built, source, name string) importedImage {
	t.Helper()
	im := b.Images[source]
	if im == nil {
		t.Fatalf("no image %s was built", source)
	}
	out, err := exec.CommandContext(ctx, b.Rackboot, "image", "add", im.Path, "--artifacts", b.Artifacts,
		"--name", name, "--number", "1").CombinedOutput()
	if err != nil {
		t.Fatalf("rackboot image add %s: %v\n%s", name, err, out)
	}
	m := regexp.MustCompile(`sha256: ([0-9a-f]{64})`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("rackboot image add %s printed no catalog entry:\n%s", name, out)
	}
	got := importedImage{SHA256: string(m[1]), Raw: im.UncompressedSize}
	var files int
	err = filepath.Walk(filepath.Join(b.Artifacts, "chunks"), func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			got.Chunks += fi.Size()
			files++
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("rackboot image add %s: %d chunks, %d bytes (the zstd image: %d); printed:\n%s", name, files, got.Chunks, im.Size, out)
	return got
}

// limitAfterInstallers waits until rackboot has sent every machine of
// TestPeers its installer's initramfs (iPXE fetches the kernel first),
// then limits the appliance's link to peerRate. It returns when the limit
// was set and the link's transmit counter then.
func limitAfterInstallers(t *testing.T, ctx context.Context, r *rackLab) (time.Time, int64) {
	t.Helper()
	for _, m := range peerMachines {
		r.waitLogged(t, ctx, time.Time{}, rack.ArtifactServed(m.MAC, rack.InitrdFile), rackPowerOn)
	}
	if err := r.net.LimitServerRate(ctx, peerRate); err != nil {
		t.Fatal(err)
	}
	at := time.Now()
	sent, err := r.net.ServerSent(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return at, sent
}

// peerWave is what TestPeers measured of the four installs.
type peerWave struct {
	limitedAt time.Time // the appliance's link limited
	start     time.Time // the machines powered on
	last      time.Time // the last install done
	sent      int64     // bytes the appliance's link sent while limited
}

// checkPeerInstalls checks what the appliance recorded of the wave and
// logs the numbers.
func checkPeerInstalls(t *testing.T, r *rackLab, image importedImage, mode string, w peerWave) {
	t.Helper()
	entries, err := lab.ReadLog(r.rb.Config().Log)
	if err != nil {
		t.Fatal(err)
	}
	var early int
	for _, e := range entries {
		p := e.Str("path") // a chunk, or "chunks" for a batch
		if e.Msg == "artifact request" && (p == "chunks" || strings.HasPrefix(p, "chunks/")) && e.Time.Before(w.limitedAt) {
			early++
		}
	}
	if early > 0 {
		// The limit came late for some chunks: the test still passes if
		// the rest holds, but the wave was not wholly limited.
		t.Logf("warning: %d chunk requests ended before the appliance's link was limited", early)
	}

	var fetched, fromPeers int64
	var lines []string
	for _, m := range peerMachines {
		mac := m.MAC.String()
		h := r.host(t, m)
		hv := r.hostView(t, mac)
		if hv.State != registry.StateInstalled || hv.Version.Name != peerVersion {
			t.Errorf("%s: %s with %+v (%s), want installed with %s", h.Hostname, hv.State, hv.Version, hv.Reason, peerVersion)
		}
		hist := r.history(t, mac)
		if len(hist) != 1 {
			t.Errorf("history of %s: %d attempts, want 1: %+v", h.Hostname, len(hist), hist)
			continue
		}
		a := hist[0]
		if a.Result != registry.ResultSuccess || a.ImageSHA256 != image.SHA256 || a.BytesFetched <= 0 {
			t.Errorf("attempt of %s: %s, sha256 %s, %d bytes fetched; want success, %s, some fetched (error %q)",
				h.Hostname, a.Result, a.ImageSHA256, a.BytesFetched, image.SHA256, a.Error)
		}
		peers := attemptPeerBytes(a)
		fetched += a.BytesFetched
		fromPeers += peers
		text := r.cli(t, "history", mac)
		lines = append(lines, fmt.Sprintf("%s: fetched %.1f MiB, %.1f MiB from peers, wrote %.1f MiB, reused %.1f MiB, attempt %d ms; rackboot history: %s",
			h.Hostname, inMiB(a.BytesFetched), inMiB(peers), inMiB(a.BytesWritten), inMiB(a.BytesReused), a.DurationMS, strings.TrimSpace(lastLine(text))))
	}
	metrics := scrape(t, r.admin)
	fromAppliance := int64(metrics[`rackboot_http_sent_bytes_total{handler="chunks"}`])
	t.Logf("the wave: four installs done %.0f s after power-on, %.0f s after the link was limited; "+
		"the appliance's link sent %.1f MiB while limited (%.2f× the chunked image's %.1f MiB), of which chunks %.1f MiB (%.2f×); "+
		"the agents fetched %.1f MiB in all, %.1f MiB (%.0f %%) from peers:\n  %s",
		w.last.Sub(w.start).Seconds(), w.last.Sub(w.limitedAt).Seconds(),
		inMiB(w.sent), float64(w.sent)/float64(image.Chunks), inMiB(image.Chunks), inMiB(fromAppliance), float64(fromAppliance)/float64(image.Chunks),
		inMiB(fetched), inMiB(fromPeers), 100*float64(fromPeers)/float64(max(fetched, 1)), strings.Join(lines, "\n  "))
	if mode == "off" {
		return
	}
	if fromPeers <= 0 {
		t.Errorf("no machine took a byte from a peer")
	}
	if fromAppliance >= 4*image.Chunks {
		t.Errorf("the appliance sent %d bytes of chunks, want less than four images (%d)", fromAppliance, 4*image.Chunks)
	}
}

// attemptPeerBytes is the bytes the attempt's agent took from peers.
func attemptPeerBytes(a registry.Attempt) int64 {
	return 0 // TODO: the attempt's field once peer distribution lands on main
}

func inMiB(n int64) float64 { return float64(n) / mib }

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
