//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rackboot/rackboot/api"
	"github.com/rackboot/rackboot/e2e/lab"
	"github.com/rackboot/rackboot/e2e/osimage"
	"github.com/rackboot/rackboot/ipxe"
	"github.com/rackboot/rackboot/registry"
)

// The machines of TestLifecycle.
const (
	lifecycleBIOSMAC = "52:54:00:77:02:01"
	lifecycleUEFIMAC = "52:54:00:77:02:02"
)

// demoVersion is the catalog version TestLifecycle installs: the demo OS
// of package osimage, a real whole-disk image that boots under both
// firmwares and reports on its console what it found.
const demoVersion = "demo-1.0"

// lifecycleFleet is the profiles of TestLifecycle: demo-1.0 installed by
// the agent's initramfs, a layout that appends the config drive and a
// preserved data partition to the image's own esp and root-x86-64, and
// one host per firmware with the hostnames given.
func lifecycleFleet(imageSHA256 string, hostnames map[string]string) string {
	return `versions:
  - name: ` + demoVersion + `
    number: 10
    image: { url: ` + demoVersion + `.img.zst, sha256: ` + imageSHA256 + `, format: zstd, kind: whole-disk }
    installer: { kernel: ` + lab.KernelName + `, initrd: agent.cpio.gz, cmdline: "console=ttyS0,115200 loglevel=4 panic=-1" }
layouts:
  - name: demo
    disk: { select: smallest, min_size: 512MiB }
    partitions:
      - { name: cidata, size: 16MiB, type: linux, content: config }
      - { name: data, size: 64MiB, type: linux, preserve: true }
defaults:
  version: ` + demoVersion + `
  layout: demo
  users:
    - name: ops
      ssh_keys: ["` + opsKey + `"]
      sudo: true
hosts:
  - { mac: "` + lifecycleBIOSMAC + `", hostname: ` + hostnames[lifecycleBIOSMAC] + `, network: { dhcp: true } }
  - { mac: "` + lifecycleUEFIMAC + `", hostname: ` + hostnames[lifecycleUEFIMAC] + `, network: { dhcp: true } }
`
}

// TestLifecycle takes one machine per firmware through its life with
// rackboot, each power-on a new QEMU process on the same disk and (UEFI)
// the same NVRAM:
//
//  1. power-on: PXE, the installer, the agent installs demo-1.0 and
//     reboots; the admin then renames the host in the profiles YAML;
//  2. power-on: the installed OS comes up from the disk: under BIOS through
//     PXE and rackboot's local-boot script (sanboot of drive 0x80); under
//     UEFI straight from the disk, through the BootNext the agent set;
//  3. power-on: PXE again, rackboot serves the local-boot script (the YAML
//     edit changed nothing), and the OS comes up from the disk again;
//     `rackboot history` shows exactly one attempt, successful;
//  4. `rackboot reinstall MAC --reason e2e`, power-on: installs again;
//  5. power-on: the OS, now with the new hostname on its config drive and
//     the data partition of the first install; history shows two
//     successful attempts.
func TestLifecycle(t *testing.T) {
	requireLab(t)
	ctx := testContext(t)
	work := t.TempDir()
	log := slog.New(slog.NewTextHandler(t.Output(), nil))
	arts, err := lab.BuildArtifacts(ctx, lab.ArtifactsConfig{Log: log})
	if err != nil {
		t.Fatal(err)
	}
	img, err := osimage.Build(ctx, osimage.Config{Version: demoVersion, Kernel: arts.Kernel, ModulesDir: arts.ModulesDir, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %s, %d bytes (%d raw), sha256 %s", demoVersion, img.Path, img.Size, img.UncompressedSize, img.SHA256)
	initrd := buildAgentInitrd(t, ctx, work)
	fleet := &fleetFile{sha: img.SHA256, hostnames: map[string]string{
		lifecycleBIOSMAC: "lc-bios-01",
		lifecycleUEFIMAC: "lc-uefi-01",
	}}
	tb := startTestbed(t, ctx, testbedConfig{
		fleet: fleet.yaml(),
		files: map[string]string{demoVersion + ".img.zst": img.Path, "agent.cpio.gz": initrd},
		// UEFI machines chain snponly.efi rather than ipxe.efi: the
		// local-boot script ends with "exit", and Debian's ipxe.efi,
		// chained from OVMF's PXE, never returns from it (no firmware
		// output for minutes), where snponly.efi, which drives the NIC
		// through the firmware's own SNP, hands the boot back at once.
		serve: []string{"--efi-file", "snponly.efi"},
	})
	cli := rackbootCLI{tb: tb, bin: buildRackboot(t, ctx)}

	for _, m := range []*machine{
		newMachine(tb, "bios", lab.BIOS, lifecycleBIOSMAC),
		newMachine(tb, "uefi", lab.UEFI, lifecycleUEFIMAC),
	} {
		t.Run(m.name, func(t *testing.T) {
			defer func() { t.Logf("%s timeline, seconds since the first power-on:\n%s", m.name, m.timeline()) }()
			testLifecycle(t, ctx, m, fleet, cli)
		})
	}
}

func testLifecycle(t *testing.T, ctx context.Context, m *machine, fleet *fleetFile, cli rackbootCLI) {
	tb := m.tb
	fw := map[lab.Firmware]string{lab.BIOS: "bios", lab.UEFI: "efi"}[m.fw]
	host := fleet.hostnames[m.mac]

	// 1. The first install.
	vm := m.powerOn(t, ctx)
	m.install(t, ctx, vm)
	checkOutcomes(t, m.scripts(t, vm), ipxe.OutcomeInstaller)
	_, entrySet, _ := vm.Find(`msg="UEFI boot entry set"`)
	if entrySet != (m.fw == lab.UEFI) {
		t.Errorf("agent's console: UEFI boot entry set: %v, want %v", entrySet, m.fw == lab.UEFI)
	}
	// The admin renames the host. An installed machine is never
	// reinstalled because its profile changed: the next boots are local.
	renamed := host + "-renamed"
	fleet.rename(t, tb, m.mac, renamed)
	m.log(time.Now(), "profiles edited: hostname %s -> %s", host, renamed)

	// 2. The first boot of the installed system.
	vm = m.powerOn(t, ctx)
	rep := m.bootOS(t, ctx, vm)
	checkFirstBoot(t, m, vm)
	// The data partition is the layout's second after the image's two.
	checkReport(t, rep, osimage.Report{Init: true, Version: demoVersion, Firmware: fw, Kernel: rep.Kernel, Hostname: host,
		SSHKey: osimage.SSHKeySummary(opsKey), Formatted: "/dev/vda4", Data: osimage.DataLine(demoVersion, host), Done: true})

	// 3. Every later boot: PXE, rackboot's local-boot script, the disk.
	vm = m.powerOn(t, ctx)
	rep = m.bootOS(t, ctx, vm)
	checkLocalBoot(t, m, vm)
	checkReport(t, rep, osimage.Report{Init: true, Version: demoVersion, Firmware: fw, Kernel: rep.Kernel, Hostname: host,
		SSHKey: osimage.SSHKeySummary(opsKey), Data: osimage.DataLine(demoVersion, host), Done: true})
	hist := cli.history(t, m.mac)
	checkHistory(t, hist, 1)
	t.Logf("rackboot history %s:\n%s", m.mac, cli.run(t, "history", m.mac))

	// 4. Reinstall, at the next power cycle, with nothing done to the
	// machine itself.
	t.Logf("rackboot reinstall %s --reason e2e:\n%s", m.mac, cli.run(t, "reinstall", m.mac, "--reason", "e2e"))
	m.log(time.Now(), "rackboot reinstall")
	vm = m.powerOn(t, ctx)
	m.install(t, ctx, vm)
	checkOutcomes(t, m.scripts(t, vm), ipxe.OutcomeInstaller)

	// 5. The reinstalled system: the new hostname, the old data.
	vm = m.powerOn(t, ctx)
	rep = m.bootOS(t, ctx, vm)
	checkFirstBoot(t, m, vm)
	checkReport(t, rep, osimage.Report{Init: true, Version: demoVersion, Firmware: fw, Kernel: rep.Kernel, Hostname: renamed,
		SSHKey: osimage.SSHKeySummary(opsKey), Data: osimage.DataLine(demoVersion, host), Done: true})
	hist = cli.history(t, m.mac)
	checkHistory(t, hist, 2)
	if len(hist) == 2 && (!strings.Contains(hist[1].Reason, "e2e") || hist[1].Hostname != renamed) {
		t.Errorf("second attempt: reason %q hostname %q, want the request's reason (e2e) and %s", hist[1].Reason, hist[1].Hostname, renamed)
	}
	t.Logf("rackboot history %s:\n%s", m.mac, cli.run(t, "history", m.mac))
	var view api.HostView
	tb.adminAPI(t).get(t, "/api/hosts/"+m.mac, &view)
	if view.State != registry.StateInstalled || view.Version.Name != demoVersion {
		t.Errorf("host %s: state %s version %+v, want installed %s", m.mac, view.State, view.Version, demoVersion)
	}
}

// checkOutcomes compares the scripts rackboot served during one power-on
// with want.
func checkOutcomes(t *testing.T, got []string, want ...string) {
	t.Helper()
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("rackboot served the scripts %q during this power-on, want %q", got, want)
	}
}

// diskEntryRE is OVMF's line for starting the boot entry the agent made:
// "rackboot demo-1.0", the removable-media loader on the disk's ESP.
var diskEntryRE = regexp.MustCompile(`BdsDxe: starting Boot[0-9A-F]{4} "rackboot ` + regexp.QuoteMeta(demoVersion) + `" from HD\(1,GPT,`)

// checkFirstBoot checks the first boot after an install. SeaBIOS boots
// the NIC first, as always: PXE, rackboot's local-boot script, sanboot of
// the first disk. OVMF boots the disk at once, without any network boot:
// the agent set BootNext to its entry.
func checkFirstBoot(t *testing.T, m *machine, vm *lab.VM) {
	t.Helper()
	if m.fw == lab.BIOS {
		checkLocalBoot(t, m, vm)
		return
	}
	checkOutcomes(t, m.scripts(t, vm))
	l, started := firstLine(vm, diskEntryRE)
	_, pxe := firstLine(vm, regexp.MustCompile(`Start PXE|Start HTTP Boot`))
	if !started || pxe {
		t.Errorf("firmware started the agent's entry: %v; network boot: %v\n%s", started, pxe, vm.Tail(60))
		return
	}
	m.log(m.at(vm, l), "firmware starts %s (BootNext)", bootEntry(l.Text))
}

// checkLocalBoot: the power-on went through PXE and rackboot's local-boot
// script, every script rackboot served was the local one, and the
// firmware then booted the disk: SeaBIOS through iPXE's sanboot of drive
// 0x80; OVMF, once iPXE exited, by moving on along BootOrder to the
// agent's entry. On the way OVMF tries every other network entry of the
// NIC (PXE over IPv6, HTTP boot over IPv4 and IPv6; QEMU's bootindex puts
// them all before the disk), and HTTP boot over IPv4 reaches rackboot
// again: a second local-boot script.
func checkLocalBoot(t *testing.T, m *machine, vm *lab.VM) {
	t.Helper()
	got := m.scripts(t, vm)
	if len(got) == 0 {
		t.Errorf("rackboot served no script during this power-on")
	}
	for _, o := range got {
		if o != ipxe.OutcomeLocal {
			t.Errorf("rackboot served the scripts %q during this power-on, want only %q", got, ipxe.OutcomeLocal)
			break
		}
	}
	disk := regexp.MustCompile(`Booting from SAN device 0x80`)
	if m.fw == lab.UEFI {
		disk = diskEntryRE
	}
	l, ok := firstLine(vm, disk)
	if !ok {
		t.Errorf("no console line /%s/: the firmware did not boot the disk as expected\n%s", disk, vm.Tail(60))
		return
	}
	if m.fw == lab.BIOS {
		m.log(m.at(vm, l), "iPXE: %s", strings.TrimSpace(l.Text))
		return
	}
	// Where OVMF's fall-through spends its time.
	for _, f := range vm.Lines() {
		if strings.Contains(f.Text, "BdsDxe: failed to") {
			m.log(m.at(vm, f), "firmware: %s failed", bootEntry(f.Text))
		}
	}
	m.log(m.at(vm, l), "firmware starts %s", bootEntry(l.Text))
}

// bootEntryRE picks the entry out of OVMF's BdsDxe lines.
var bootEntryRE = regexp.MustCompile(`Boot[0-9A-F]{4} "[^"]*"`)

// bootEntry is the Boot#### and description a BdsDxe line names.
func bootEntry(line string) string {
	if e := bootEntryRE.FindString(line); e != "" {
		return e
	}
	return strings.TrimSpace(line)
}

// firstLine returns the first console line matching re.
func firstLine(vm *lab.VM, re *regexp.Regexp) (lab.Line, bool) {
	for _, l := range vm.Lines() {
		if re.MatchString(l.Text) {
			return l, true
		}
	}
	return lab.Line{}, false
}

// checkReport compares what the demo OS reported with want.
func checkReport(t *testing.T, got, want osimage.Report) {
	t.Helper()
	if got.Fail != "" || len(got.Warnings) > 0 || got.Kernel == "" {
		t.Errorf("demo OS: fail %q, warnings %q, kernel %q", got.Fail, got.Warnings, got.Kernel)
	}
	got.Warnings = nil
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("demo OS report (-want +got):\n%s", d)
	}
}

// checkHistory: n attempts, each successful, of demo-1.0's image.
func checkHistory(t *testing.T, hist []registry.Attempt, n int) {
	t.Helper()
	ok := len(hist) == n
	for _, a := range hist {
		ok = ok && a.Result == registry.ResultSuccess && a.Version.Name == demoVersion
	}
	if !ok {
		t.Errorf("history: %+v; want %d successful attempts of %s", hist, n, demoVersion)
	}
}

// fleetFile is the profiles file the testbed serves, edited as an admin
// would.
type fleetFile struct {
	sha       string
	hostnames map[string]string // by MAC
}

func (f *fleetFile) yaml() string { return lifecycleFleet(f.sha, f.hostnames) }

// rename gives mac another hostname in the file and waits until rackboot
// has loaded it. The file is replaced by a rename, as editors save, so
// the watcher never reads half of it.
func (f *fleetFile) rename(t *testing.T, tb *testbed, mac, hostname string) {
	t.Helper()
	f.hostnames[mac] = hostname
	writeProfiles(t, tb, f.yaml())
}

// rackbootCLI runs the admin commands of the rackboot binary inside the
// lab's server namespace, as an admin on the appliance would, with --data
// pointing at the daemon's data directory (where admin.token is).
type rackbootCLI struct {
	tb  *testbed
	bin string
}

func (c rackbootCLI) run(t *testing.T, args ...string) string {
	t.Helper()
	full := append(args, "--data", c.tb.data, "--server", "https://"+lab.ServerIP+":"+httpsPort)
	cmd := c.tb.net.Command(c.tb.net.Srv, c.bin, full...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	kill := time.AfterFunc(time.Minute, func() { cmd.Process.Kill() })
	err := cmd.Wait()
	kill.Stop()
	if err != nil {
		t.Fatalf("rackboot %s: %v\n%s", strings.Join(args, " "), err, out.Bytes())
	}
	return out.String()
}

// history is `rackboot history MAC --json`.
func (c rackbootCLI) history(t *testing.T, mac string) []registry.Attempt {
	t.Helper()
	var hist []registry.Attempt
	if err := json.Unmarshal([]byte(c.run(t, "history", mac, "--json")), &hist); err != nil {
		t.Fatalf("rackboot history --json: %v", err)
	}
	return hist
}
