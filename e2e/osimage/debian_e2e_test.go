//go:build e2e

package osimage

import (
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/rackboot/rackboot/agentapi"
	"github.com/rackboot/rackboot/e2e/lab"
	"github.com/rackboot/rackboot/imaging"
)

// debianDiskSize is the lab machines' disk: bigger than the image, so the
// installer grows the root partition and cloud-init the file system.
const debianDiskSize = 4 << 30

// TestDebian builds the Debian 12 image (or takes it from the cache),
// installs it with rackboot's installer (imaging) onto a 4 GiB disk with
// a NoCloud config drive, powers lab machines on from that disk under
// SeaBIOS and OVMF, with the site's DHCP server on the segment, and logs
// in over SSH from the lab's client namespace as the config drive's user
// with its key: the hostname, cloud-init's verdict, passwordless sudo and
// the image version must be the ones installed.
//
// The suite proves the same boots through rackboot (e2e.TestDebian: the
// agent installs this image, SSH checks the day-1 configuration), so this
// image-only check runs on request, with RACKBOOT_E2E_DEBIAN_IMAGE=1:
// beside the suite it only doubled the Debian machines two cores run at
// once (a UEFI machine then took 8 minutes to its DHCP lease).
func TestDebian(t *testing.T) {
	if os.Getenv("RACKBOOT_E2E") != "1" || os.Getenv("RACKBOOT_E2E_DEBIAN_IMAGE") != "1" {
		t.Skip("set RACKBOOT_E2E=1 and RACKBOOT_E2E_DEBIAN_IMAGE=1 to boot the Debian image alone; e2e.TestDebian boots it through rackboot")
	}
	if err := errors.Join(lab.CheckHost(), CheckDebianHost()); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	log := slog.New(slog.NewTextHandler(testWriter{t}, nil))
	cfg := DebianConfig{Version: "debian-12.1", Log: log}
	start := time.Now()
	im, err := BuildDebian(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %s, kernel %s, %d packages; %d bytes raw, %d as .img.zst (%.1f%%), sha256 %s (%.1fs)", im.Version, im.Path,
		im.Kernel, len(im.Packages), im.UncompressedSize, im.Size, 100*float64(im.Size)/float64(im.UncompressedSize), im.SHA256,
		time.Since(start).Seconds())
	start = time.Now()
	again, err := BuildDebian(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if again.SHA256 != im.SHA256 || again.Key != im.Key {
		t.Errorf("the second build is not the cached image: %s, first %s", again.SHA256, im.SHA256)
	}
	t.Logf("cached: %.1fs", time.Since(start).Seconds())
	if im.UncompressedSize < 1<<30 {
		t.Errorf("the image is %d bytes, want at least 1 GiB", im.UncompressedSize)
	}

	dir := t.TempDir()
	logs := os.Getenv("RACKBOOT_E2E_LOGS")
	if logs == "" {
		logs = dir
	}
	n, err := lab.NewNet(ctx, lab.NetConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Error(err)
		}
	})
	site, err := n.StartSiteDHCP(logs)
	if err != nil {
		t.Fatal(err)
	}
	key, err := lab.NewSSHKey("ops@rackboot-e2e")
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		fw   lab.Firmware
		mac  string
		// static is the config drive's address; empty means DHCP,
		// from the site's server.
		static string
	}{
		{"bios", lab.BIOS, "52:54:00:77:0d:01", "192.168.77.21/24"},
		{"uefi", lab.UEFI, "52:54:00:77:0d:02", ""},
	}
	hostKeys := map[string]string{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mac, err := net.ParseMAC(tt.mac)
			if err != nil {
				t.Fatal(err)
			}
			host := "deb-" + tt.name
			disk := filepath.Join(dir, tt.name+".img")
			installDebian(t, disk, im, agentapi.NoCloud{
				InstanceID: "i-" + tt.name, Hostname: host,
				Users:   []agentapi.User{{Name: "ops", SSHKeys: []string{key.Authorized}, Sudo: true}},
				Network: &agentapi.Network{MAC: tt.mac, Address: tt.static},
			})

			// The disk boots first (bootindex 0): the machine is
			// installed, and neither SeaBIOS nor OVMF tries the network.
			// The NIC has no option ROM.
			v, err := n.StartVM(ctx, lab.VMConfig{Name: "debian-" + tt.name, Dir: logs, Firmware: tt.fw, MAC: mac, ROM: lab.ROMNone,
				Extra: []string{"-drive", "file=" + disk + ",if=none,id=disk0,format=raw", "-device", "virtio-blk-pci,drive=disk0,bootindex=0"}})
			if err != nil {
				t.Fatal(err)
			}
			defer v.Close()

			var ip string
			if tt.static != "" {
				ip, _, _ = strings.Cut(tt.static, "/")
			} else {
				a, err := site.Lease(mac, 10*time.Minute)
				if err != nil {
					t.Fatalf("%v; console:\n%s", err, v.Tail(40))
				}
				ip = a.String()
				t.Logf("DHCP lease %s after %.1fs", ip, time.Since(v.Started()).Seconds())
			}
			c, err := n.SSH(ctx, n.Cli, net.JoinHostPort(ip, "22"), "ops", key, 15*time.Minute)
			if err != nil {
				t.Fatalf("%v; console:\n%s", err, v.Tail(60))
			}
			defer c.Close()
			login := time.Since(v.Started())
			got := sshRun(t, c, "hostname")
			t.Logf("power-on to SSH login and `hostname` (%s): %.1fs (%s firmware)", got, login.Seconds(), tt.fw)
			if got != host {
				t.Errorf("hostname %q, want %q", got, host)
			}
			hostKeys[tt.name] = sshRun(t, c, "ssh-keygen -l -f /etc/ssh/ssh_host_ed25519_key.pub")

			status := sshRun(t, c, "cloud-init status --wait --long")
			t.Logf("power-on to cloud-init done: %.1fs\n%s", time.Since(v.Started()).Seconds(), status)
			if !strings.Contains(status, "status: done") {
				t.Errorf("cloud-init status --long:\n%s", status)
			}
			if out := sshRun(t, c, "sudo -n true && echo sudo-ok"); out != "sudo-ok" {
				t.Errorf("sudo -n true: %q", out)
			}
			if out := sshRun(t, c, ". /etc/os-release && echo $IMAGE_VERSION"); out != im.Version {
				t.Errorf("IMAGE_VERSION %q, want %q", out, im.Version)
			}
			if out := sshRun(t, c, "systemctl is-system-running --wait || systemctl --failed --no-legend"); out != "running" {
				// systemd-networkd-wait-online gives up after 2 minutes when
				// the machine's CPU is starved; nothing else depends on it.
				t.Logf("systemctl is-system-running: %s", out)
			}
			if out := sshRun(t, c, "ip -4 -o addr show scope global"); !strings.Contains(out, " "+ip+"/24 ") {
				t.Errorf("the address %s is not on an interface: %s", ip, out)
			}
			// What the installed system made of the machine: kept for the
			// logs, asserted only where the test says so above.
			for _, cmd := range []string{
				"uname -r; cat /proc/cmdline",
				"systemd-analyze || true",
				"ip -o link show; ip -4 -o addr show; ip route",
				"sudo cat /etc/netplan/50-cloud-init.yaml; ls /run/systemd/network /etc/systemd/network 2>/dev/null || true",
				"lsblk -o NAME,SIZE,TYPE,FSTYPE,PARTLABEL,LABEL,MOUNTPOINTS; df -h /",
				"sudo grep -E 'WARNING|ERROR|Traceback' /var/log/cloud-init.log || true",
				"sudo journalctl -b --no-pager -o short-monotonic -u systemd-networkd -u systemd-networkd-wait-online | tail -n 40",
			} {
				t.Logf("$ %s\n%s", cmd, sshRun(t, c, cmd))
			}
		})
	}
	if a, b := hostKeys["bios"], hostKeys["uefi"]; a == "" || a == b {
		t.Errorf("host keys %q and %q: each machine must make its own", a, b)
	}
}

// TestDebianReproducible builds the image a second time, from scratch
// into another directory, and compares it with the cached one: the same
// package versions must give the same bytes. It takes as long as a cold
// build and runs only with RACKBOOT_E2E_REPRO=1.
func TestDebianReproducible(t *testing.T) {
	if os.Getenv("RACKBOOT_E2E") != "1" || os.Getenv("RACKBOOT_E2E_REPRO") != "1" {
		t.Skip("set RACKBOOT_E2E=1 and RACKBOOT_E2E_REPRO=1 to build the Debian image twice")
	}
	if err := CheckDebianHost(); err != nil {
		t.Fatal(err)
	}
	cfg := DebianConfig{Version: "debian-12.1", Log: slog.New(slog.NewTextHandler(testWriter{t}, nil))}
	first, err := BuildDebian(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Dir = t.TempDir()
	second, err := BuildDebian(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if first.Key != second.Key {
		t.Skipf("the mirror changed since the cached build: keys %s and %s", first.Key, second.Key)
	}
	if first.UncompressedSHA256 != second.UncompressedSHA256 || first.SHA256 != second.SHA256 {
		t.Errorf("two builds of the same inputs differ: %s and %s", first.UncompressedSHA256, second.UncompressedSHA256)
	}
}

// installDebian writes im to the disk image file as rackboot's agent
// does: the image over HTTP from a server on loopback, then a config
// drive appended with nc's files. The layout has no partition taking the
// rest of the disk, so the config drive goes to the end of the disk and
// the image's root partition grows into the space between.
func installDebian(t *testing.T, disk string, im *Image, nc agentapi.NoCloud) {
	t.Helper()
	if err := createSparse(disk, debianDiskSize); err != nil {
		t.Fatal(err)
	}
	files, err := nc.Render()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		t.Logf("config drive %s:\n%s", f.Name, f.Content)
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(filepath.Dir(im.Path))))
	defer srv.Close()
	plan := &agentapi.Plan{
		Image: &agentapi.Image{URL: srv.URL + "/" + filepath.Base(im.Path), SHA256: im.SHA256, Format: agentapi.FormatZstd,
			Size: im.Size, RawSize: im.UncompressedSize},
		Partitions:  []agentapi.Partition{{Name: "cidata", Type: "linux", Size: 8 << 20, Content: agentapi.ContentConfigDrive}},
		ConfigDrive: files,
	}
	in := &imaging.Installer{
		// Image files in a temporary directory may be on tmpfs, which
		// has no O_DIRECT.
		Buffered: true,
		Logger:   slog.New(slog.NewTextHandler(testWriter{t}, nil)),
	}
	start := time.Now()
	res, err := in.Install(t.Context(), plan, imaging.Target{Path: disk})
	if err != nil {
		t.Fatalf("install %s: %v", im.Version, err)
	}
	for _, p := range res.Partitions {
		t.Logf("partition %d %s: %d MiB from %d MiB", p.Index, p.Name, p.Size>>20, p.Start>>20)
	}
	t.Logf("installed %s in %.1fs", im.Version, time.Since(start).Seconds())
}

func createSparse(name string, size int64) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// sshRun runs cmd on the machine and returns its output, trimmed; the
// test fails when the command does.
func sshRun(t *testing.T, c *ssh.Client, cmd string) string {
	t.Helper()
	out, err := lab.Run(c, cmd)
	if err != nil {
		t.Errorf("%v:\n%s", err, out)
	}
	return strings.TrimSpace(out)
}
