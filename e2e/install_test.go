//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/fat32"
	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/klauspost/compress/zstd"

	"github.com/rackboot/rackboot/api"
	"github.com/rackboot/rackboot/e2e/lab"
	"github.com/rackboot/rackboot/registry"
)

// The machines TestInstall installs: one per firmware, one with a static
// address and one on DHCP.
const (
	installBIOSMAC = "52:54:00:77:01:01"
	installUEFIMAC = "52:54:00:77:01:02"
	badImageMAC    = "52:54:00:77:01:03" // given a version whose image is missing
)

// Sizes of the synthetic OS image and of the machines' disks.
const (
	mib         = 1 << 20
	osImageSize = 64 * mib
	osRandom    = 16 * mib // random bytes at the start of its root partition; the rest is zeros
	diskSize    = 1 << 30
	sector      = 512
)

// installTimeout bounds one install from power-on to the agent's final
// line, under TCG on two cores.
const installTimeout = 300 * time.Second

// What the profiles give the machines' first user; TestInstall finds them
// on the config drive.
const (
	opsPassword = "$6$rackbootdemo0001$CxjM0jmkewtdNj9p/Rj31Dr8SO6FZcUYa5lwJUi77zN7vsm1ehxfJ/9T7uItaac7XEdYKGCZ3eLhafAUdFILb0"
	opsKey      = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPYKhj0ARBUk7F5sJD8Md+68qt0u5UZLlllfq+jt/tXC ops@example.com"
	biosAddress = "192.168.77.51/24"
)

// installFleet is the profiles of TestInstall: one version whose image is
// the synthetic OS (whole disk) and whose installer is the agent's
// initramfs, one layout adding an xfs partition and the config drive, two
// hosts.
func installFleet(imageSHA256 string) string {
	return `versions:
  - name: testos-1
    number: 1
    image: { url: testos-1.img.zst, sha256: ` + imageSHA256 + `, format: zstd, kind: whole-disk }
    installer: { kernel: ` + lab.KernelName + `, initrd: agent.cpio.gz, cmdline: "console=ttyS0,115200 loglevel=4 panic=-1" }
  - name: testos-missing
    number: 2
    channel: broken
    image: { url: testos-missing.img.zst, sha256: ` + strings.Repeat("0", 64) + `, format: zstd, kind: whole-disk }
    installer: { kernel: ` + lab.KernelName + `, initrd: agent.cpio.gz, cmdline: "console=ttyS0,115200 loglevel=4 panic=-1" }
layouts:
  - name: small
    disk: { select: smallest, min_size: 512MiB }
    partitions:
      - { name: scratch, size: 300MiB, type: linux, filesystem: xfs, mount: /srv/scratch }
      - { name: cidata, size: 16MiB, type: linux, content: config }
defaults:
  version: testos-1
  layout: small
  users:
    - name: ops
      password: ` + opsPassword + `
      ssh_keys: ["` + opsKey + `"]
      sudo: true
hosts:
  - mac: "` + installBIOSMAC + `"
    hostname: inst-bios-01
    network: { address: ` + biosAddress + `, gateway: 192.168.77.1, dns: [192.168.77.1] }
  - mac: "` + installUEFIMAC + `"
    hostname: inst-uefi-01
    network: { dhcp: true }
  - mac: "` + badImageMAC + `"
    hostname: inst-bad-01
    version: testos-missing
    network: { dhcp: true }
`
}

// TestInstall installs machines end to end: PXE boots the real installer
// (the distribution kernel and the initramfs `rackboot initrd` builds from
// its modules and rackboot-agent), which installs the synthetic OS image
// onto the machine's virtual disk, reports done and reboots, which ends
// QEMU. The test then asks the admin API and reads the disk image. The
// agent and the admin talk to the API over HTTPS; a capture of the lab's
// bridge shows the admin token and the plan's secrets never in clear.
func TestInstall(t *testing.T) {
	requireLab(t)
	ctx := testContext(t)
	work := t.TempDir()
	img := buildTestOS(t, work)
	initrd := buildAgentInitrd(t, ctx, work)
	tb := startTestbed(t, ctx, testbedConfig{
		fleet: installFleet(img.sha256),
		files: map[string]string{"testos-1.img.zst": img.zst, "agent.cpio.gz": initrd},
	})
	admin := tb.adminAPI(t)
	// The admin and agent APIs are on HTTPS: neither the admin token
	// (every admin call below) nor the plan's secrets (the user's
	// password hash, in every plan) may be seen on the segment.
	wire := watchWire(t, tb, map[string]string{"admin token": admin.token, "password hash of the plan": opsPassword})

	machines := []struct {
		name, host string
		fw         lab.Firmware
		mac        string
		static     bool
	}{
		{name: "bios", host: "inst-bios-01", fw: lab.BIOS, mac: installBIOSMAC, static: true},
		{name: "uefi", host: "inst-uefi-01", fw: lab.UEFI, mac: installUEFIMAC},
	}
	var timelines []lab.Timeline
	for _, m := range machines {
		t.Run(m.name, func(t *testing.T) {
			hw, _ := net.ParseMAC(m.mac)
			vm, err := tb.net.StartVM(ctx, lab.VMConfig{Name: "install-" + m.name, Dir: tb.dir, Firmware: m.fw, MAC: hw, DiskSize: diskSize})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if err := vm.Close(); err != nil {
					t.Errorf("closing %s: %v", vm.Name(), err)
				}
			})
			if m.fw == lab.BIOS {
				checkStranger(t, ctx, tb, admin, vm, m.mac)
			}
			line, err := vm.WaitFor(ctx, "rackboot-agent: install done", installTimeout)
			if err != nil {
				t.Fatalf("%v\nlast console lines (%s):\n%s\nlast rackboot log lines:\n%s",
					err, vm.SerialLog(), vm.Tail(40), readTail(tb.serverLog, 30))
			}
			t.Logf("%s", line)
			select { // the agent reboots; -no-reboot makes that QEMU's exit
			case <-vm.Done():
			case <-time.After(60 * time.Second):
				t.Fatalf("%s still running 60 s after the install:\n%s", vm.Name(), vm.Tail(20))
			}
			stopped := time.Since(vm.Started())

			checkRecord(t, admin, m.mac, img)
			disk := vm.Config().Disk
			checkDisk(t, disk, img)
			files := checkConfigDrive(t, disk)
			for name, want := range map[string][]string{
				"meta-data":      {"local-hostname: " + m.host},
				"user-data":      {"#cloud-config", "name: ops", opsPassword, opsKey, "/dev/disk/by-partlabel/scratch /srv/scratch xfs defaults,nofail 0 0"},
				"network-config": {"version: 2", m.mac},
			} {
				for _, w := range want {
					if !strings.Contains(files[name], w) {
						t.Errorf("config drive %s lacks %q:\n%s", name, w, files[name])
					}
				}
			}
			if m.static && !strings.Contains(files["network-config"], biosAddress) {
				t.Errorf("network-config lacks the static address %s:\n%s", biosAddress, files["network-config"])
			}
			if !m.static && !strings.Contains(files["network-config"], "dhcp4: true") {
				t.Errorf("network-config lacks dhcp4: true:\n%s", files["network-config"])
			}

			tl, err := lab.NewTimeline(vm, since(tb.entries(t), vm.Started()), installMilestones(m.mac))
			if err != nil {
				t.Fatal(err)
			}
			tl.Points = append(tl.Points, lab.Point{Name: "off", At: stopped, Found: true})
			timelines = append(timelines, tl)
		})
	}
	t.Run("missing-image", func(t *testing.T) { testMissingImage(t, ctx, tb, admin) })
	t.Run("wire", wire.check)
	t.Logf("seconds from power-on (rackboot log and serial console):\n%s", lab.FormatTimelines(timelines))
}

// testMissingImage powers on a machine whose version's image is not in the
// artifacts directory: rackboot's catalog check found that at start, so
// the machine is held. Its script says why, no attempt starts, the admin
// API shows it pending and held with the version's file:line, /readyz
// answers 200 (a held version does not make the appliance unready) and
// the disk is never written.
func testMissingImage(t *testing.T, ctx context.Context, tb *testbed, admin adminAPI) {
	hw, _ := net.ParseMAC(badImageMAC)
	vm, err := tb.net.StartVM(ctx, lab.VMConfig{Name: "install-missing", Dir: tb.dir, MAC: hw, DiskSize: diskSize})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { vm.Close() })
	// The console wraps at 80 columns: the reason is checked in the API
	// below, the console for the start of the held script's lines.
	if _, err := vm.WaitFor(ctx, `\) is held`, installTimeout); err != nil {
		t.Fatalf("%v\nlast console lines:\n%s", err, vm.Tail(40))
	}
	if _, err := vm.WaitFor(ctx, `^rackboot: rackboot hosts shows why, asking again in 30 seconds`, 30*time.Second); err != nil {
		t.Errorf("the held script does not say it asks again: %v\n%s", err, vm.Tail(20))
	}
	time.Sleep(5 * time.Second) // long enough for an installer to be asked for
	vm.Close()
	var host api.HostView
	admin.get(t, "/api/hosts/"+badImageMAC, &host)
	want := regexp.MustCompile(`fleet\.yaml:\d+: version testos-missing: image testos-missing\.img\.zst: no such file in the artifacts directory`)
	if host.State != registry.StatePending || !want.MatchString(host.Held) {
		t.Errorf("host is %s, held %q; want pending and held because the image is missing", host.State, host.Held)
	}
	var history []registry.Attempt
	admin.get(t, "/api/hosts/"+badImageMAC+"/history", &history)
	if len(history) != 0 {
		t.Errorf("history %+v, want no attempt", history)
	}
	if written, err := lab.DiskWritten(vm.Config().Disk); err != nil || written {
		t.Errorf("the held machine's disk: written %v (%v), want never written", written, err)
	}
	resp, err := admin.hc.Get("http://" + lab.ServerIP + ":" + httpPort + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/readyz = %d %s, want 200: a held version does not make the appliance unready", resp.StatusCode, body)
	}
}

// installMilestones are the moments of an install the timeline shows.
func installMilestones(mac string) []lab.Milestone {
	return []lab.Milestone{
		{Name: "pxe", Server: answeredWith(mac, "").match},
		{Name: "kernel", Server: artifactServed(lab.KernelName, mac).match},
		{Name: "agent", Serial: `rackboot-agent starting`},
		{Name: "modules", Serial: `msg="modules loaded"`},
		{Name: "lease", Serial: `msg="dhcp lease"`},
		{Name: "plan", Serial: `msg="plan received"`},
		{Name: "written", Serial: `msg="image written"`},
		{Name: "done", Serial: `rackboot-agent: install done`},
	}
}

// testOS is the synthetic OS image: a GPT disk whose root partition starts
// with random bytes.
type testOS struct {
	raw, zst string
	sha256   string // of the zstd file, as published
	rawSize  int64
	// body is the image without its MBR and GPT structures: the bytes the
	// install must leave identical on the disk (its own table is extended
	// with the config drive).
	bodyStart, bodyEnd int64
	bodySHA256         string
	rootStart, rootEnd uint64 // LBAs
}

func buildTestOS(t *testing.T, dir string) testOS {
	t.Helper()
	img := testOS{raw: filepath.Join(dir, "testos-1.img"), zst: filepath.Join(dir, "testos-1.img.zst"),
		rawSize: osImageSize, rootStart: mib / sector, rootEnd: (osImageSize-mib)/sector - 1}
	f, err := os.Create(img.raw)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(osImageSize); err != nil {
		t.Fatal(err)
	}
	tbl := &gpt.Table{LogicalSectorSize: sector, PhysicalSectorSize: sector, ProtectiveMBR: true, Partitions: []*gpt.Partition{
		{Index: 1, Name: "root", Type: gpt.LinuxRootX86_64, Start: img.rootStart, End: img.rootEnd},
	}}
	if err := tbl.Write(f, osImageSize); err != nil {
		t.Fatal(err)
	}
	random := make([]byte, osRandom)
	rand.Read(random)
	if _, err := f.WriteAt(random, int64(img.rootStart)*sector); err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(io.NewSectionReader(f, 0, osImageSize))
	if err != nil {
		t.Fatal(err)
	}
	// LBA 0 (MBR), 1 (header), 2-33 (entries); the backup at the end.
	img.bodyStart, img.bodyEnd = 34*sector, osImageSize-33*sector
	img.bodySHA256 = sha256Hex(raw[img.bodyStart:img.bodyEnd])

	var z bytes.Buffer
	zw, err := zstd.NewWriter(&z)
	if err != nil {
		t.Fatal(err)
	}
	zw.Write(raw)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(img.zst, z.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	img.sha256 = sha256Hex(z.Bytes())
	t.Logf("test OS image: %d MiB raw, %d KiB zstd, sha256 %s", osImageSize/mib, z.Len()>>10, img.sha256)
	return img
}

// buildAgentInitrd builds rackboot and rackboot-agent (static) and runs
// `rackboot initrd` with the lab kernel's modules and this host's
// mkfs.xfs (named, so that a host without xfsprogs fails here, saying so).
func buildAgentInitrd(t *testing.T, ctx context.Context, dir string) string {
	t.Helper()
	arts, err := lab.BuildArtifacts(ctx, lab.ArtifactsConfig{Log: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	rb := buildRackboot(t, ctx)
	agent := filepath.Join(dir, "rackboot-agent")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", agent, "./cmd/rackboot-agent")
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/rackboot-agent: %v\n%s", err, out)
	}
	initrd := filepath.Join(dir, "agent.cpio.gz")
	out, err := exec.CommandContext(ctx, rb, "initrd", "-o", initrd, "--agent", agent, "--modules", arts.ModulesDir, "--tools", "mkfs.xfs").CombinedOutput()
	if err != nil {
		t.Fatalf("rackboot initrd: %v\n%s", err, out)
	}
	t.Logf("rackboot initrd: %s", bytes.TrimSpace(out))
	return initrd
}

// adminAPI is a client of the appliance's admin API over HTTPS, from the
// lab's client namespace, with the admin token and the CA from rackboot's
// data directory.
type adminAPI struct {
	hc    *http.Client
	token string
	// base is the API's URL; the server namespace's (lab.ServerIP) when
	// empty. A test with several appliances sets it.
	base string
}

func (tb *testbed) adminAPI(t *testing.T) adminAPI {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(tb.data, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	hc, err := tb.net.HTTPSClient(tb.net.Cli, tb.data)
	if err != nil {
		t.Fatal(err)
	}
	return adminAPI{hc: hc, token: strings.TrimSpace(string(b))}
}

func (a adminAPI) get(t *testing.T, path string, out any) {
	t.Helper()
	base := a.base
	if base == "" {
		base = "https://" + lab.ServerIP + ":" + httpsPort
	}
	req, err := http.NewRequest(http.MethodGet, base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	resp, err := a.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", path, resp.Status, b)
	}
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("GET %s: %v in %s", path, err, b)
	}
}

// checkRecord asks the admin API for the machine: installed, after one
// successful attempt that wrote the whole image with the plan's digest.
func checkRecord(t *testing.T, admin adminAPI, mac string, img testOS) {
	t.Helper()
	var host api.HostView
	admin.get(t, "/api/hosts/"+mac, &host)
	if host.State != registry.StateInstalled {
		t.Errorf("host %s is %s (%s), want installed", mac, host.State, host.Reason)
	}
	var history []registry.Attempt
	admin.get(t, "/api/hosts/"+mac+"/history?log=1", &history)
	if len(history) != 1 {
		t.Fatalf("history of %s: %d attempts, want 1: %+v", mac, len(history), history)
	}
	at := history[0]
	if at.Result != registry.ResultSuccess || at.ImageSHA256 != img.sha256 || at.BytesWritten != img.rawSize {
		t.Errorf("attempt: result %s, image_sha256 %s, bytes_written %d; want success, %s, %d (error %q)",
			at.Result, at.ImageSHA256, at.BytesWritten, img.sha256, img.rawSize, at.Error)
	}
	if len(at.Log) == 0 {
		t.Errorf("attempt has no agent log")
	}
	t.Logf("attempt %d: %s in %d ms (agent's write %d ms), %d log lines", at.ID, at.Result, at.DurationMS, at.WriteMS, len(at.Log))
}

// checkDisk reads the machine's disk: a valid GPT (go-diskfs Verify, and
// sgdisk -v) with the image's root partition where the image put it, grown
// up to the layout's partitions at the end of the disk (the layout has no
// rest partition), a sound xfs file system on the scratch partition, and
// the image's bytes intact.
func checkDisk(t *testing.T, disk string, img testOS) {
	t.Helper()
	b, err := file.OpenFromPath(disk, true)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	tbl, err := gpt.Read(b, sector, sector)
	if err != nil {
		t.Fatalf("GPT of %s: %v", disk, err)
	}
	if tbl.RecoveredFromBackup {
		t.Errorf("primary GPT damaged, read from the backup")
	}
	if err := tbl.Verify(b, diskSize); err != nil {
		t.Errorf("go-diskfs Verify: %v", err)
	}
	var names []string
	for _, p := range tbl.Partitions {
		names = append(names, fmt.Sprintf("%d:%s:%d-%d", p.Index, p.Name, p.Start, p.End))
	}
	if len(tbl.Partitions) != 3 {
		t.Fatalf("partitions %v, want the image's root, scratch and cidata", names)
	}
	root, scratch, cidata := tbl.Partitions[0], tbl.Partitions[1], tbl.Partitions[2]
	if root.Name != "root" || root.Start != img.rootStart || root.End+1 != scratch.Start || root.End <= img.rootEnd || root.Type != gpt.LinuxRootX86_64 {
		t.Errorf("partition 1 is %v, want the image's root from LBA %d, grown from %d up to scratch", names[0], img.rootStart, img.rootEnd)
	}
	if scratch.Name != "scratch" || scratch.GetSize() != 300*mib || scratch.End+1 != cidata.Start || scratch.Start%2048 != 0 {
		t.Errorf("partition 2 is %v, want scratch, 300 MiB, 1 MiB aligned, right before cidata", names[1])
	}
	if cidata.Name != "cidata" || cidata.GetSize() != 16*mib || cidata.End+2048 < tbl.LastDataSector() || cidata.Start%2048 != 0 {
		t.Errorf("partition 3 is %v, want cidata, 16 MiB, 1 MiB aligned at the end of the disk (last usable LBA %d)", names[2], tbl.LastDataSector())
	}
	checkXFS(t, disk, scratch)
	if sgdisk, err := exec.LookPath("sgdisk"); err == nil {
		out, err := exec.Command(sgdisk, "-v", disk).CombinedOutput()
		if err != nil || !bytes.Contains(out, []byte("No problems found")) {
			t.Errorf("sgdisk -v: %v\n%s", err, out)
		}
	}
	f, err := os.Open(disk)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, img.bodyStart, img.bodyEnd-img.bodyStart)); err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != img.bodySHA256 {
		t.Errorf("image bytes on the disk: sha256 %s, want %s", got, img.bodySHA256)
	}
}

// checkXFS checks the xfs file system the agent made on part of the disk
// with xfsprogs: xfs_repair -n finds nothing to repair, and the label is
// the partition's name.
func checkXFS(t *testing.T, disk string, part *gpt.Partition) {
	t.Helper()
	f, err := os.Open(disk)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img := filepath.Join(t.TempDir(), part.Name+".img")
	out, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, io.NewSectionReader(f, part.GetStart(), part.GetSize())); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command("xfs_repair", "-n", img).CombinedOutput(); err != nil {
		t.Errorf("xfs_repair -n of partition %s: %v\n%s", part.Name, err, b)
	}
	b, err := exec.Command("xfs_db", "-r", "-c", "label", img).CombinedOutput()
	if want := fmt.Sprintf("label = %q", part.Name); err != nil || !strings.Contains(string(b), want) {
		t.Errorf("xfs_db label of partition %s: %v: %s, want %s", part.Name, err, b, want)
	}
}

// checkConfigDrive returns the files of the CIDATA partition.
func checkConfigDrive(t *testing.T, disk string) map[string]string {
	t.Helper()
	b, err := file.OpenFromPath(disk, true)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	tbl, err := gpt.Read(b, sector, sector)
	if err != nil {
		t.Fatal(err)
	}
	var part *gpt.Partition
	for _, p := range tbl.Partitions {
		if p.Name == "cidata" {
			part = p
		}
	}
	if part == nil {
		t.Fatal("no cidata partition")
	}
	fs, err := fat32.Read(b, part.GetSize(), part.GetStart(), sector)
	if err != nil {
		t.Fatalf("FAT of cidata: %v", err)
	}
	if l := strings.TrimSpace(fs.Label()); l != "CIDATA" {
		t.Errorf("config drive label %q, want CIDATA", l)
	}
	files := map[string]string{}
	for _, name := range []string{"meta-data", "user-data", "network-config"} {
		c, err := fs.ReadFile(name)
		if err != nil {
			t.Errorf("config drive: %s: %v", name, err)
			continue
		}
		files[name] = string(c)
	}
	return files
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
