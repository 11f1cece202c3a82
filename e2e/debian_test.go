//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/rackboot/rackboot/e2e/lab"
	"github.com/rackboot/rackboot/e2e/osimage"
	"github.com/rackboot/rackboot/registry"
)

// The machines of TestDebian, their static addresses on the lab segment,
// and the two Debian versions they run.
const (
	debianBIOSMAC = "52:54:00:77:03:01"
	debianUEFIMAC = "52:54:00:77:03:02"
	debianOSMAC   = "52:54:00:77:03:03" // the OpenStack config drive
	debianV1      = "debian-12.1"
	debianV2      = "debian-12.2"
	// debianV1Chunks is debian-12.1's image as chunks: the UEFI machine
	// installs it, so that its reinstall to debian-12.2 (chunked too)
	// has a seed.
	debianV1Chunks = "debian-12.1-chunks"
	// debianOS is debian-12.1 given an OpenStack config-2 drive.
	debianOS = "debian-12.1-openstack"
	// debianDisk is each machine's disk: more than the image, so that
	// the root file system has room to grow.
	debianDisk = 4 << 30
	// debianBoot bounds a power-on to an SSH login: PXE, the local-boot
	// script, GRUB, the kernel, systemd and cloud-init under TCG.
	debianBoot = 10 * time.Minute
)

var (
	debianAddr = map[string]string{debianBIOSMAC: "192.168.77.61", debianUEFIMAC: "192.168.77.62", debianOSMAC: "192.168.77.63"}
	debianHost = map[string]string{debianBIOSMAC: "deb-bios-01", debianUEFIMAC: "deb-uefi-01", debianOSMAC: "deb-os-01"}
)

// debianFleet is TestDebian's profiles: two Debian versions (and the
// first again with an OpenStack config drive, its installer powering off
// when done), a layout with a preserved ext4 partition mounted at
// /srv/data, a swap partition, a preserved xfs partition mounted at
// /srv/scratch and the config drive at the end, one user
// with the run's SSH key, a file with a mode, raw cloud-config (a bootcmd
// beside rackboot's own, a runcmd), and a static address, DNS server and
// search domain per machine.
func debianFleet(sha map[string]string, key string) string {
	chunked := func(name string, number int) string {
		return `  - name: ` + name + `
    number: ` + strconv.Itoa(number) + `
    image: { url: images/` + name + `.rbidx, sha256: ` + sha[name] + `, format: chunked, kind: whole-disk }
    installer: { kernel: ` + lab.KernelName + `, initrd: agent.cpio.gz, cmdline: "console=ttyS0,115200 loglevel=4 panic=-1" }
`
	}
	host := func(mac, more string) string {
		return `  - { mac: "` + mac + `", hostname: ` + debianHost[mac] + more + `, network: { address: ` + debianAddr[mac] + `/24, gateway: ` + lab.ServerIP +
			`, dns: [` + lab.ServerIP + `], search: [lab.example] } }` + "\n"
	}
	version := func(name, image string, number int, drive, cmdline string) string {
		return `  - name: ` + name + `
    number: ` + strconv.Itoa(number) + `
    config_drive: ` + drive + `
    image: { url: ` + image + `.img.zst, sha256: ` + sha[image] + `, format: zstd, kind: whole-disk }
    installer: { kernel: ` + lab.KernelName + `, initrd: agent.cpio.gz, cmdline: "console=ttyS0,115200 loglevel=4 panic=-1` + cmdline + `" }
`
	}
	return "versions:\n" + version(debianV1, debianV1, 121, "nocloud", "") + chunked(debianV1Chunks, 119) + chunked(debianV2, 122) +
		version(debianOS, debianV1, 120, "openstack", " rackboot.after=poweroff") + `layouts:
  - name: debian
    disk: { select: smallest, min_size: 3GiB }
    partitions:
      - { name: srv, size: 256MiB, type: linux, filesystem: ext4, preserve: true, mount: /srv/data }
      - { name: swap, size: 64MiB, type: swap, mount: swap }
      - { name: scratch, size: 300MiB, type: linux, filesystem: xfs, preserve: true, mount: /srv/scratch }
      - { name: cidata, size: 16MiB, type: linux, content: config }
defaults:
  version: ` + debianV1 + `
  layout: debian
  users:
    - { name: ops, ssh_keys: ["` + key + `"], sudo: true, shell: /bin/bash }
  files:
    - { path: /etc/rackboot-e2e.conf, content: "written by cloud-init\n", mode: "0640" }
  cloud_config:
    bootcmd: [[sh, -c, "echo bootcmd ran >> /run/rackboot-e2e-bootcmd"]]
    runcmd: [[sh, -c, "echo runcmd ran > /var/lib/rackboot-e2e-runcmd"]]
hosts:
` + host(debianBIOSMAC, "") + host(debianUEFIMAC, ", version: "+debianV1Chunks) + host(debianOSMAC, ", version: "+debianOS)
}

// TestDebian installs Debian 12 with its real cloud-init through
// rackboot, on a BIOS and a UEFI machine, and proves the day-1
// configuration by logging in over SSH with the profile's key: hostname,
// static address, DNS, sudo, a file and its mode, cloud-init's verdict,
// the root file system grown to the disk, the ext4 partition mounted.
// Then it writes into the preserved partition, reinstalls the machine
// with the next Debian version, and finds the data and the new version.
func TestDebian(t *testing.T) {
	requireLab(t)
	ctx := testContext(t)
	log := slog.New(slog.NewTextHandler(t.Output(), nil))
	if err := osimage.CheckDebianHost(); err != nil {
		t.Fatalf("RACKBOOT_E2E=1 but this host cannot build the Debian image: %v", err)
	}
	imgs := map[string]*osimage.Image{}
	for _, v := range []osimage.DebianConfig{
		{Version: debianV1, Log: log},
		// The next version: one package more and its own marker.
		{Version: debianV2, Packages: []string{"jq"}, Log: log},
	} {
		start := time.Now()
		img, err := osimage.BuildDebian(ctx, v)
		if err != nil {
			t.Fatal(err)
		}
		imgs[v.Version] = img
		t.Logf("%s: %d bytes compressed, %d raw, sha256 %s (%.1f s)", v.Version, img.Size, img.UncompressedSize, img.SHA256, time.Since(start).Seconds())
	}
	key, err := lab.NewSSHKey("rackboot-e2e@lab")
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	initrd := buildAgentInitrd(t, ctx, work)
	bin := buildRackboot(t, ctx)
	// The chunked versions, imported as an admin does: debian-12.1's
	// image as debian-12.1-chunks, then debian-12.2's, which stores only
	// what the package changed.
	chunks := t.TempDir()
	sha := map[string]string{debianV1: imgs[debianV1].SHA256}
	for _, v := range []struct {
		name, image string
		number      int
	}{{debianV1Chunks, debianV1, 119}, {debianV2, debianV2, 122}} {
		start := time.Now()
		out, err := exec.CommandContext(ctx, bin, "image", "add", imgs[v.image].Path, "--artifacts", chunks,
			"--name", v.name, "--number", strconv.Itoa(v.number)).CombinedOutput()
		if err != nil {
			t.Fatalf("rackboot image add %s: %v\n%s", v.name, err, out)
		}
		m := regexp.MustCompile(`sha256: ([0-9a-f]{64})`).FindSubmatch(out)
		if m == nil {
			t.Fatalf("rackboot image add %s printed no catalog entry:\n%s", v.name, out)
		}
		sha[v.name] = string(m[1])
		t.Logf("rackboot image add %s (%.1f s):\n%s", v.name, time.Since(start).Seconds(), out)
	}
	tb := startTestbed(t, ctx, testbedConfig{
		fleet: debianFleet(sha, key.Authorized),
		files: map[string]string{
			debianV1 + ".img.zst": imgs[debianV1].Path,
			"agent.cpio.gz":       initrd,
			"images":              filepath.Join(chunks, "images"),
			"chunks":              filepath.Join(chunks, "chunks"),
		},
	})
	cli := rackbootCLI{tb: tb, bin: bin}
	admin := tb.adminAPI(t)

	var mu sync.Mutex
	var timings []string
	for _, c := range []struct {
		name string
		fw   lab.Firmware
		mac  string
	}{{"bios", lab.BIOS, debianBIOSMAC}, {"uefi", lab.UEFI, debianUEFIMAC}} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			m := newMachine(tb, "deb-"+c.name, c.fw, c.mac)
			m.size = debianDisk
			addr := debianAddr[c.mac]

			vm := m.powerOn(t, ctx)
			m.install(t, ctx, vm)
			if _, ok, _ := vm.Find(`reboot: Restarting system`); !ok {
				t.Errorf("the installer did not restart the machine (the default); last lines:\n%s", vm.Tail(10))
			}
			vm = m.powerOn(t, ctx)
			client, took := m.login(t, ctx, vm, addr, key)
			checkDebian(t, client, m, addr, debianV1, imgs[debianV1])
			agent, format := agentImageRate(t, admin, c.mac)
			url := "http://" + lab.ServerIP + ":" + httpPort + "/artifacts/" + debianV1 + ".img.zst"
			plain := downloadRate(t, client, url, false)
			hashed := downloadRate(t, client, url, true)
			mu.Lock()
			timings = append(timings, fmt.Sprintf("%s: power-on to SSH login %.0f s; image (%s) received by the agent at %.1f MB/s, plain download in the same VM %.1f MB/s: ratio %.2f (P10); "+
				"download and SHA-256 only (OpenSSL) %.1f MB/s: %.2f of the plain download, %.2f of it the agent reaches",
				c.name, took.Seconds(), format, agent/1e6, plain/1e6, agent/plain, hashed/1e6, hashed/plain, agent/hashed))
			mu.Unlock()

			// Data the machine's users wrote, in the preserved partition.
			mark := "written over SSH before the reinstall by " + c.name
			run(t, client, "echo '"+mark+"' | sudo tee /srv/data/keep.txt /srv/scratch/keep.txt >/dev/null && sync")
			cli.run(t, "reinstall", c.mac, "--version", debianV2, "--reason", "e2e upgrade")
			// sshd may be stopped before it sends the command's exit
			// status; the machine going off (waitOff) is the proof.
			if out, err := lab.Run(client, "sudo -n systemctl poweroff"); err != nil {
				t.Logf("%s: poweroff over SSH: %v %s(waiting for the machine to go off)", m.name, err, out)
			}
			client.Close()
			m.waitOff(t, vm)

			m.install(t, ctx, m.powerOn(t, ctx))
			vm = m.powerOn(t, ctx)
			client, _ = m.login(t, ctx, vm, addr, key)
			defer client.Close()
			checkDebian(t, client, m, addr, debianV2, imgs[debianV2])
			for _, f := range []string{"/srv/data/keep.txt", "/srv/scratch/keep.txt"} {
				if got := strings.TrimSpace(run(t, client, "cat "+f)); got != mark {
					t.Errorf("the preserved partition's %s holds %q after the reinstall, want %q", f, got, mark)
				}
			}
			hist := cli.history(t, c.mac)
			if len(hist) != 2 || hist[0].Result != registry.ResultSuccess || hist[1].Result != registry.ResultSuccess ||
				hist[1].Version.Name != debianV2 {
				t.Fatalf("history: %+v; want two successes, the second %s", hist, debianV2)
			}
			// debian-12.2 came as chunks: most of it was on the disk
			// already (with debian-12.1-chunks as the seed on UEFI, in
			// place only on BIOS, whose debian-12.1 was streamed).
			up, raw := hist[1], imgs[debianV2].UncompressedSize
			if up.BytesFetched <= 0 || up.BytesReused < raw/2 || up.BytesFetched >= imgs[debianV2].Size {
				t.Errorf("the chunked reinstall fetched %d bytes and reused %d of the %d-byte image (%d compressed); want a fraction fetched, most reused",
					up.BytesFetched, up.BytesReused, raw, imgs[debianV2].Size)
			}
			text := cli.run(t, "history", c.mac)
			if !strings.Contains(text, "fetched") || !strings.Contains(text, "reused") {
				t.Errorf("rackboot history does not show the bytes fetched and reused:\n%s", text)
			}
			mu.Lock()
			timings = append(timings, fmt.Sprintf("%s: reinstall to %s as chunks fetched %.1f MiB (%.1f %% of the image, %.1f %% of its zstd file), reused %.1f %%, wrote %.1f MiB, %d ms in the agent",
				c.name, debianV2, float64(up.BytesFetched)/(1<<20), 100*float64(up.BytesFetched)/float64(raw), 100*float64(up.BytesFetched)/float64(imgs[debianV2].Size),
				100*float64(up.BytesReused)/float64(raw), float64(up.BytesWritten)/(1<<20), up.WriteMS))
			mu.Unlock()
			t.Logf("%s timeline:\n%s", m.name, m.timeline())
		})
	}
	t.Run("openstack", func(t *testing.T) {
		t.Parallel()
		m := newMachine(tb, "deb-openstack", lab.BIOS, debianOSMAC)
		m.size = debianDisk
		vm := m.powerOn(t, ctx)
		m.install(t, ctx, vm)
		// rackboot.after=poweroff: the kernel powers the machine off
		// instead of restarting it (both end QEMU under -no-reboot).
		if _, ok, _ := vm.Find(`reboot: Power down`); !ok {
			t.Errorf("the installer of a version with rackboot.after=poweroff did not power off; last lines:\n%s", vm.Tail(10))
		}
		vm = m.powerOn(t, ctx)
		client, took := m.login(t, ctx, vm, debianAddr[debianOSMAC], key)
		defer client.Close()
		checkDebian(t, client, m, debianAddr[debianOSMAC], debianV1, imgs[debianV1])
		if out := run(t, client, "sudo blkid -s LABEL -o value /dev/disk/by-partlabel/cidata"); strings.TrimSpace(out) != "config-2" {
			t.Errorf("config drive label %q, want config-2", out)
		}
		if out := run(t, client, "cloud-init status --long"); !strings.Contains(out, "DataSourceConfigDrive") {
			t.Errorf("cloud-init read its configuration from another data source than ConfigDrive:\n%s", out)
		}
		mu.Lock()
		timings = append(timings, fmt.Sprintf("openstack (BIOS): power-on to SSH login %.0f s", took.Seconds()))
		mu.Unlock()
	})
	t.Cleanup(func() { t.Logf("timings:\n  %s", strings.Join(timings, "\n  ")) })
}

// login waits for the machine's SSH server at addr and logs in as ops
// with the run's key; it returns the client and the time since power-on.
func (m *machine) login(t *testing.T, ctx context.Context, vm *lab.VM, addr string, key *lab.SSHKey) (*ssh.Client, time.Duration) {
	t.Helper()
	c, err := m.tb.net.SSH(ctx, m.tb.net.Cli, addr+":22", "ops", key, debianBoot)
	if err != nil {
		t.Fatalf("%v\nlast console lines (%s):\n%s", err, vm.SerialLog(), vm.Tail(40))
	}
	took := time.Since(vm.Started())
	m.log(time.Now(), "SSH login as ops at %s", addr)
	return c, took
}

// agentImageRate is the rate, in compressed bytes per second, at which
// the agent of mac's first attempt received the image while writing it,
// from its log line "image written", and the image's format (a chunked
// image's bytes are the chunks it fetched).
func agentImageRate(t *testing.T, admin adminAPI, mac string) (float64, string) {
	t.Helper()
	var hist []registry.Attempt
	admin.get(t, "/api/hosts/"+mac+"/history?log=1", &hist)
	re := regexp.MustCompile(`msg="image written".* received=(\d+) format=(\w+) .*seconds=([0-9.]+)`)
	for _, a := range hist {
		for _, l := range a.Log {
			if m := re.FindStringSubmatch(l); m != nil {
				n, _ := strconv.ParseFloat(m[1], 64)
				s, _ := strconv.ParseFloat(m[3], 64)
				if s > 0 {
					return n / s, m[2]
				}
			}
		}
	}
	t.Fatalf("no \"image written\" line in the agent log of %s", mac)
	return 0, ""
}

// downloadRate downloads url on the machine and returns the rate in
// bytes per second. Without hash it discards the bytes: what the link
// gives a client that does nothing with the data, in the same VM. With
// hash it computes their SHA-256 (Python's hashlib, which is OpenSSL's),
// the least any installer that verifies an image must do with its bytes:
// the ceiling of the agent's stream on this VM's CPU.
func downloadRate(t *testing.T, c *ssh.Client, url string, hash bool) float64 {
	t.Helper()
	out := run(t, c, `python3 -c '
import hashlib, sys, time, urllib.request
h = hashlib.sha256() if sys.argv[2] == "true" else None
start = time.monotonic()
n = 0
with urllib.request.urlopen(sys.argv[1]) as r:
    while True:
        b = r.read(1 << 20)
        if not b:
            break
        n += len(b)
        if h:
            h.update(b)
print(n, time.monotonic() - start)
' `+url+" "+strconv.FormatBool(hash))
	var n, s float64
	if _, err := fmt.Sscan(out, &n, &s); err != nil || s <= 0 {
		t.Fatalf("download printed %q: %v", out, err)
	}
	return n / s
}

// run runs cmd on the machine over SSH and returns its output.
func run(t *testing.T, c *ssh.Client, cmd string) string {
	t.Helper()
	out, err := lab.Run(c, cmd)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	return out
}

// checkDebian checks, logged in on the installed machine, what its
// profile says it must be.
func checkDebian(t *testing.T, c *ssh.Client, m *machine, addr, version string, img *osimage.Image) {
	t.Helper()
	// Wait for cloud-init to finish its last stage.
	status := run(t, c, "cloud-init status --wait --long; true")
	t.Logf("%s: cloud-init status --long:\n%s", m.name, status)
	if !regexp.MustCompile(`(?m)^status: done$`).MatchString(status) {
		t.Errorf("cloud-init status is not done:\n%s", status)
	}
	if res := run(t, c, "sudo cat /run/cloud-init/result.json"); !regexp.MustCompile(`"errors": \[\]`).MatchString(res) {
		t.Errorf("cloud-init reported errors: %s", res)
	}
	host := debianHost[m.mac]
	checks := []struct{ cmd, want string }{
		{"hostname", "^" + host + "\n$"},
		{"ip -4 -o addr show", regexp.QuoteMeta(addr) + `/24`},
		{"cat /etc/resolv.conf", `(?m)^search .*lab\.example`},
		{"resolvectl dns 2>/dev/null || cat /etc/resolv.conf", regexp.QuoteMeta(lab.ServerIP)},
		{"sudo -n true && echo sudo-ok", "sudo-ok"},
		{"sudo stat -c '%a %U' /etc/rackboot-e2e.conf && sudo cat /etc/rackboot-e2e.conf", "^640 root\nwritten by cloud-init\n$"},
		{". /etc/os-release; echo $IMAGE_VERSION", "^" + regexp.QuoteMeta(version) + "\n$"},
		{"findmnt -n -o FSTYPE /srv/data", "^ext4\n$"},
		{"findmnt -n -o FSTYPE,LABEL /srv/scratch", "^xfs +scratch\n$"},
		// The profile's cloud_config: its bootcmd ran beside rackboot's
		// (which mounts /srv/data), its runcmd once.
		{"cat /run/rackboot-e2e-bootcmd /var/lib/rackboot-e2e-runcmd", "^bootcmd ran\nruncmd ran\n$"},
	}
	for _, ck := range checks {
		if out := run(t, c, ck.cmd); !regexp.MustCompile(ck.want).MatchString(out) {
			t.Errorf("%s: `%s` printed %q, want /%s/", m.name, ck.cmd, out, ck.want)
		}
	}
	// mount: swap: the layout's swap partition, found by its label, is
	// the machine's swap.
	if swap := strings.Fields(run(t, c, "sudo swapon --show=NAME --noheadings; readlink -f /dev/disk/by-partlabel/swap")); len(swap) != 2 || swap[0] != swap[1] {
		t.Errorf("%s: swap in use and the swap partition: %q, want the one device twice", m.name, swap)
	}
	// The root file system grew past the image to the disk.
	size, err := strconv.ParseInt(strings.TrimSpace(run(t, c, "df -B1 --output=size / | tail -n 1")), 10, 64)
	if err != nil || size <= img.UncompressedSize {
		t.Errorf("%s: root file system of %d bytes (%v), want more than the image's %d", m.name, size, err, img.UncompressedSize)
	}
	t.Logf("%s: %s", m.name, strings.ReplaceAll(run(t, c, "hostname; ip -4 -o addr show scope global; df -h /; findmnt -n /srv/data"), "\n", " | "))
}
