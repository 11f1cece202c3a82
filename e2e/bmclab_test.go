//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rackboot/rackboot/api"
	"github.com/rackboot/rackboot/e2e/lab"
	"github.com/rackboot/rackboot/e2e/osimage"
	"github.com/rackboot/rackboot/ipxe"
	"github.com/rackboot/rackboot/registry"
)

// Console lines of SeaBIOS that tell a network boot from a disk boot. The
// iPXE ROM's banner ("iPXE (http://ipxe.org) …") is printed during POST
// on every boot, whatever the boot order: never match it
// (docs/bmc-groundwork.md §1.6).
const (
	romBoot  = `Booting from ROM\.\.\.`
	diskBoot = `Booting from Hard Disk\.\.\.`
	// bootRE matches either.
	bootRE = `Booting from (ROM|Hard Disk)\.\.\.`
)

// Bounds of the BMC machines' boots under TCG on a loaded host.
const (
	// firmwareTimeout: power-on or reset to SeaBIOS's boot line.
	firmwareTimeout = 120 * time.Second
	// pxeFailTimeout: SeaBIOS's network boot to the disk boot after it,
	// when nothing answers iPXE's DHCP (about 18 s unloaded).
	pxeFailTimeout = 180 * time.Second
)

// TestBMCVMLab checks the lab's BMC machine on its own, without rackboot:
// a BIOS lab.BMCVM behind ipmi_sim (lab.StartIPMISim), driven with
// ipmitool over IPMI 2.0 (lanplus, cipher suite 3) from the server
// namespace, then through its Go methods. Its disk's boot sector prints
// RACKBOOT-DISK-BOOT; nothing answers the NIC's DHCP, so a network boot
// falls through to the disk after iPXE gives up.
//
//  1. off at start: `chassis power status` is off, no QEMU;
//  2. `chassis bootdev pxe` + `power on`: Booting from ROM, then (DHCP
//     fails) Booting from Hard Disk and the boot sector's line;
//  3. `power reset`, nothing pending: the same QEMU resets and boots the
//     disk only (the NIC is not in the boot order any more);
//  4. `bootdev pxe` + `power cycle`: a new QEMU, Booting from ROM first;
//  5. `power cycle`, nothing pending: a new QEMU, disk first;
//  6. `power off`: QEMU gone, status off;
//  7. PowerOn(false): disk only, ipmitool sees it on; Reset(true): ROM
//     first; PowerOff: off for ipmitool too.
func TestBMCVMLab(t *testing.T) {
	requireLab(t)
	requireIPMI(t)
	ctx := testContext(t)
	dir := logDir(t)
	n, err := lab.NewNet(ctx, lab.NetConfig{})
	if err != nil {
		t.Fatal(err)
	}
	closeOnSignal(t, n)
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Errorf("removing the lab: %v", err)
		}
	})
	disk := filepath.Join(dir, "disk.img")
	if err := writeBootSectorDisk(disk); err != nil {
		t.Fatal(err)
	}
	mac, _ := net.ParseMAC("52:54:00:77:17:01")
	vm, err := n.NewBMCVM(ctx, lab.BMCVMConfig{Name: "bmc0", Dir: filepath.Join(dir, "bmc0"), MAC: mac, Disk: disk, MemoryMiB: 256})
	if err != nil {
		t.Fatal(err)
	}
	sim, err := lab.StartIPMISim(ctx, n, vm, "admin", "s3cret-pw")
	if err != nil {
		vm.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := sim.Close(); err != nil {
			t.Errorf("closing ipmi_sim and %s: %v", vm.Name(), err)
		}
		if t.Failed() {
			t.Logf("chassis log:\n%s", readTail(sim.ChassisLog(), 40))
		}
	})
	t.Logf("ipmi_sim on %s (server namespace); machine %s", sim.Addr, strings.Join(vm.Args(true), " "))
	ipmi := func(args ...string) string {
		t.Helper()
		return ipmitool(t, ctx, n, sim.Addr, "admin", "s3cret-pw", args...)
	}
	step := func(name string) time.Duration {
		at := vm.Now()
		t.Logf("%7.1fs  %s", at.Seconds(), name)
		return at
	}

	// 0. Net.Listen: a double served by this process in the server
	// namespace is reached there (where rackboot serve runs), and only
	// there.
	addr := serveIn(t, n, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("double here")) }))
	if out, err := n.Command(n.Srv, "curl", "-sS", "--max-time", "10", "http://"+addr+"/").CombinedOutput(); err != nil || string(out) != "double here" {
		t.Errorf("curl http://%s/ in the server namespace: %v: %q", addr, err, out)
	}
	if out, err := n.Command(n.Cli, "curl", "-sS", "--max-time", "10", "http://"+addr+"/").CombinedOutput(); err == nil {
		t.Errorf("curl http://%s/ in the client namespace reached the double: %q", addr, out)
	}

	// 1.
	step("1. power status")
	if out := ipmi("chassis", "power", "status"); !strings.Contains(out, "Chassis Power is off") || vm.IsOn() {
		t.Fatalf("at start: %q, IsOn %v; want off", out, vm.IsOn())
	}

	// 2.
	at := step("2. bootdev pxe + power on")
	ipmi("chassis", "bootdev", "pxe")
	if out := ipmi("chassis", "bootparam", "get", "5"); !strings.Contains(out, "Force PXE") {
		t.Errorf("bootparam 5 after bootdev pxe: %q", out)
	}
	ipmi("chassis", "power", "on")
	if !vm.IsOn() {
		t.Fatalf("power on: QEMU not running:\n%s", readTail(vm.QEMULog(), 10))
	}
	wantFirstBoot(t, ctx, vm, at, romBoot)
	waitConsole(t, ctx, vm, diskBoot, at, pxeFailTimeout)
	waitConsole(t, ctx, vm, `RACKBOOT-DISK-BOOT`, at, firmwareTimeout)
	step("   ROM, then disk")
	if out := ipmi("chassis", "bootparam", "get", "5"); strings.Contains(out, "Force PXE") {
		t.Errorf("bootparam 5 after the network boot: %q, want it consumed", out)
	}

	// 3.
	pid := qemuPid(t, vm)
	at = step("3. power reset")
	ipmi("chassis", "power", "reset")
	wantFirstBoot(t, ctx, vm, at, diskBoot)
	if p := qemuPid(t, vm); p != pid {
		t.Errorf("reset: QEMU pid %d, want the same process %d", p, pid)
	}

	// 4.
	at = step("4. bootdev pxe + power cycle")
	ipmi("chassis", "bootdev", "pxe")
	ipmi("chassis", "power", "cycle")
	wantFirstBoot(t, ctx, vm, at, romBoot)
	if p := qemuPid(t, vm); p == pid {
		t.Errorf("cycle: QEMU pid %d unchanged, want a new process", p)
	}

	// 5.
	at = step("5. power cycle")
	ipmi("chassis", "power", "cycle")
	wantFirstBoot(t, ctx, vm, at, diskBoot)

	// 6.
	step("6. power off")
	ipmi("chassis", "power", "off")
	if vm.IsOn() {
		t.Errorf("power off: QEMU still running")
	}
	if out := ipmi("chassis", "power", "status"); !strings.Contains(out, "Chassis Power is off") {
		t.Errorf("after power off: %q", out)
	}

	// 7.
	at = step("7. PowerOn(false)")
	if err := vm.PowerOn(false); err != nil {
		t.Fatal(err)
	}
	if out := ipmi("chassis", "power", "status"); !strings.Contains(out, "Chassis Power is on") {
		t.Errorf("after PowerOn: ipmitool says %q", out)
	}
	wantFirstBoot(t, ctx, vm, at, diskBoot)
	at = step("   Reset(true)")
	if err := vm.Reset(true); err != nil {
		t.Fatal(err)
	}
	wantFirstBoot(t, ctx, vm, at, romBoot)
	step("   PowerOff")
	if err := vm.PowerOff(); err != nil {
		t.Fatal(err)
	}
	if out := ipmi("chassis", "power", "status"); vm.IsOn() || !strings.Contains(out, "Chassis Power is off") {
		t.Errorf("after PowerOff: IsOn %v, ipmitool %q", vm.IsOn(), out)
	}
	step("done")
	t.Logf("console (%s):\n%s", vm.SerialLog(), consoleSummary(vm))
}

// uefiBootRE is OVMF's line for each boot option it tries, with the
// option's description (PXE and HTTP boot options name the NIC's MAC).
// OVMF announces its own PXE and HTTP boot with ">>Start PXE over IPv4."
// and the like, without a "loading" line.
var uefiBootRE = regexp.MustCompile(`BdsDxe: (?:loading|starting|failed to load) Boot[0-9A-F]{4} "([^"]*)"|>>(Start (?:PXE|HTTP Boot) over IPv[46])`)

// TestBMCVMLabUEFI checks the one-time network boot of a UEFI BMCVM
// through its Go methods (OVMF ignores -boot once; the bootindex and
// qom-set method works for it too, docs/bmc-groundwork.md §8): a power-on
// without netboot never tries the network (the disk, not EFI-bootable
// here, then the EFI shell); Reset(true) tries PXE first; Reset(false)
// does not try the network again. Nothing answers the NIC's DHCP.
func TestBMCVMLabUEFI(t *testing.T) {
	requireLab(t)
	ctx := testContext(t)
	dir := logDir(t)
	n, err := lab.NewNet(ctx, lab.NetConfig{})
	if err != nil {
		t.Fatal(err)
	}
	closeOnSignal(t, n)
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Errorf("removing the lab: %v", err)
		}
	})
	disk := filepath.Join(dir, "disk.img")
	if err := writeBootSectorDisk(disk); err != nil {
		t.Fatal(err)
	}
	mac, _ := net.ParseMAC("52:54:00:77:17:02")
	vm, err := n.NewBMCVM(ctx, lab.BMCVMConfig{Name: "uefi0", Dir: filepath.Join(dir, "uefi0"), Firmware: lab.UEFI, MAC: mac, Disk: disk, MemoryMiB: 512})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := vm.Close(); err != nil {
			t.Errorf("closing %s: %v", vm.Name(), err)
		}
	})
	defer func() { t.Logf("boot options tried and the lab's lines:\n%s", uefiSummary(vm)) }()
	isNet := func(desc string) bool { return strings.Contains(desc, "PXE") || strings.Contains(desc, "HTTP") }
	// firstOption waits for the first boot option OVMF tries after at.
	firstOption := func(at time.Duration) string {
		t.Helper()
		l := waitConsole(t, ctx, vm, uefiBootRE.String(), at, firmwareTimeout)
		m := uefiBootRE.FindStringSubmatch(l.Text)
		return m[1] + m[2]
	}

	at := vm.Now()
	if err := vm.PowerOn(false); err != nil {
		t.Fatal(err)
	}
	if o := firstOption(at); isNet(o) {
		t.Errorf("PowerOn(false): OVMF first tried %q", o)
	}
	shell := waitConsole(t, ctx, vm, `"EFI Internal Shell"`, at, firmwareTimeout)
	for _, l := range vm.Lines() {
		if m := uefiBootRE.FindStringSubmatch(l.Text); l.At >= at && l.At <= shell.At && m != nil && isNet(m[1]+m[2]) {
			t.Errorf("PowerOn(false) tried the network: %s", l)
		}
	}

	at = vm.Now()
	if err := vm.Reset(true); err != nil {
		t.Fatal(err)
	}
	if o := firstOption(at); !isNet(o) {
		t.Errorf("Reset(true): OVMF first tried %q, want the network", o)
	}

	at = vm.Now()
	if err := vm.Reset(false); err != nil {
		t.Fatal(err)
	}
	if o := firstOption(at); isNet(o) {
		t.Errorf("Reset(false) after a network boot: OVMF first tried %q", o)
	}
	if err := vm.PowerOff(); err != nil || vm.IsOn() {
		t.Errorf("PowerOff: %v, on %v", err, vm.IsOn())
	}
}

// uefiSummary is the boot options OVMF tried and the lab's own lines.
func uefiSummary(vm *lab.BMCVM) string {
	var b strings.Builder
	for _, l := range vm.Lines() {
		if uefiBootRE.MatchString(l.Text) || strings.HasPrefix(l.Text, "[lab]") || strings.Contains(l.Text, "Start PXE") {
			b.WriteString(l.String() + "\n")
		}
	}
	return b.String()
}

// TestBMCVMInstall is TestBMC's ipmi subtest with ipmitool in the place
// of rackboot's power commands, so the lab's BMC machine is proven with
// today's daemon: a BIOS lab.BMCVM behind ipmi_sim, `chassis bootdev pxe`
// + `power on`: the network boot first, the agent installs demo-1.0, the
// installer's reboot (the same QEMU) boots the disk first and the demo OS
// comes up and powers the machine off; the registry says installed. Then
// `rackboot reinstall` + `bootdev pxe` + `power cycle` installs it again.
func TestBMCVMInstall(t *testing.T) {
	requireLab(t)
	requireIPMI(t)
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
	initrd := buildAgentInitrd(t, ctx, work)
	tb := startTestbed(t, ctx, testbedConfig{
		fleet: bmcFleet(img.SHA256, bmcAddrs{}),
		files: map[string]string{demoVersion + ".img.zst": img.Path, "agent.cpio.gz": initrd},
	})
	logDaemonOnFailure(t, tb)
	cli := rackbootCLI{tb: tb, bin: buildRackboot(t, ctx)}
	vm := newBMCVM(t, ctx, tb, "bmc-ipmi", bmcIPMIMAC)
	sim, err := lab.StartIPMISim(ctx, tb.net, vm, bmcUser, bmcPassword)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	defer func() {
		t.Logf("console (%s), boots and the lab's lines:\n%s", vm.SerialLog(), consoleSummary(vm))
		if t.Failed() {
			t.Logf("chassis log:\n%s", readTail(sim.ChassisLog(), 40))
		}
	}()
	ipmi := func(args ...string) string {
		t.Helper()
		return ipmitool(t, ctx, tb.net, sim.Addr, bmcUser, bmcPassword, args...)
	}

	at, wall := vm.Now(), time.Now()
	ipmi("chassis", "bootdev", "pxe")
	ipmi("chassis", "power", "on")
	installThroughBMC(t, ctx, tb, vm, at, wall, 1)
	if out := ipmi("chassis", "power", "status"); !strings.Contains(out, "Chassis Power is off") {
		t.Errorf("after the OS powered off: %q", out)
	}

	t.Logf("rackboot reinstall: %s", cli.run(t, "reinstall", bmcIPMIMAC, "--reason", "e2e"))
	at, wall = vm.Now(), time.Now()
	ipmi("chassis", "bootdev", "pxe")
	ipmi("chassis", "power", "cycle")
	installThroughBMC(t, ctx, tb, vm, at, wall, 2)
}

// requireIPMI fails the test when ipmi_sim or ipmitool is missing (the
// openipmi and ipmitool packages: e2e/test.sh installs them).
func requireIPMI(t *testing.T) {
	t.Helper()
	for _, p := range []string{"ipmi_sim", "ipmitool"} {
		if _, err := exec.LookPath(p); err != nil {
			t.Fatalf("RACKBOOT_E2E=1 but %s is missing (Debian packages openipmi, ipmitool)", p)
		}
	}
}

// ipmitool runs ipmitool over lanplus with cipher suite 3 (without -C it
// first asks for the cipher suites, which ipmi_sim never answers, and
// waits 10 s) from the server namespace, and returns its output. Its exit
// status is not enough: `chassis bootdev` exits 0 when the BMC refused.
func ipmitool(t *testing.T, ctx context.Context, n *lab.Net, addr, user, password string, args ...string) string {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	full := append([]string{"-I", "lanplus", "-C", "3", "-H", host, "-p", port, "-U", user, "-P", password}, args...)
	cmd := n.Command(n.Srv, "ipmitool", full...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	kill := time.AfterFunc(60*time.Second, func() { cmd.Process.Kill() })
	err := cmd.Wait()
	kill.Stop()
	if err != nil || strings.Contains(out.String(), "failed") {
		t.Fatalf("ipmitool %s: %v\n%s", strings.Join(args, " "), err, out.Bytes())
	}
	t.Logf("ipmitool %s (%.2fs): %s", strings.Join(args, " "), time.Since(start).Seconds(), strings.TrimSpace(out.String()))
	return out.String()
}

// waitConsole waits for a console line at or after since.
func waitConsole(t *testing.T, ctx context.Context, vm *lab.BMCVM, pattern string, since, timeout time.Duration) lab.Line {
	t.Helper()
	l, err := vm.WaitFor(ctx, pattern, since, timeout)
	if err != nil {
		t.Fatalf("%v\nconsole (%s):\n%s\nQEMU log:\n%s", err, vm.SerialLog(), vm.Tail(40), readTail(vm.QEMULog(), 10))
	}
	return l
}

// wantFirstBoot waits for SeaBIOS's first boot line after since and
// checks that it is want (romBoot or diskBoot).
func wantFirstBoot(t *testing.T, ctx context.Context, vm *lab.BMCVM, since time.Duration, want string) lab.Line {
	t.Helper()
	l := waitConsole(t, ctx, vm, bootRE, since, firmwareTimeout)
	if !regexp.MustCompile(want).MatchString(l.Text) {
		t.Errorf("first boot after %.1fs: %q, want /%s/\n%s", since.Seconds(), l.Text, want, vm.Tail(30))
	}
	return l
}

// qemuPid is the running QEMU's pid, from the machine's state directory.
func qemuPid(t *testing.T, vm *lab.BMCVM) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(vm.Dir(), "qemu.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// consoleSummary is the console's boot lines and the lab's own, for the
// test log.
func consoleSummary(vm *lab.BMCVM) string {
	re := regexp.MustCompile(`^\[lab\]|Booting from|RACKBOOT|SeaBIOS \(version|rackboot-agent: install done|` + `RACKBOOT_DEMO_(OS|DONE)`)
	var b strings.Builder
	for _, l := range vm.Lines() {
		if re.MatchString(l.Text) {
			b.WriteString(l.String() + "\n")
		}
	}
	return b.String()
}

// writeBootSectorDisk writes a 1 MiB disk whose boot sector prints
// RACKBOOT-DISK-BOOT through the BIOS (INT 10h, which SeaBIOS copies to
// the serial console under -nographic) and halts.
func writeBootSectorDisk(name string) error {
	code := []byte{
		0x31, 0xc0, // xor ax, ax
		0x8e, 0xd8, // mov ds, ax
		0x31, 0xdb, // xor bx, bx (page 0)
		0xbe, 0x17, 0x7c, // mov si, msg (0x7c17)
		0xac,       // next: lodsb
		0x08, 0xc0, // or al, al
		0x74, 0x06, // jz halt
		0xb4, 0x0e, // mov ah, 0x0e (teletype)
		0xcd, 0x10, // int 0x10
		0xeb, 0xf5, // jmp next
		0xf4,       // halt: hlt
		0xeb, 0xfd, // jmp halt
	}
	code = append(code, "RACKBOOT-DISK-BOOT\r\n\x00"...)
	img := make([]byte, 1<<20)
	copy(img, code)
	img[510], img[511] = 0x55, 0xaa
	return os.WriteFile(name, img, 0o644)
}

// The machines of TestBMC. Only the first two exist; the BMCs of the
// other three are broken.
const (
	bmcIPMIMAC   = "52:54:00:77:17:11"
	bmcRFMAC     = "52:54:00:77:17:21"
	bmcAuthMAC   = "52:54:00:77:17:22" // wrong password
	bmcClosedMAC = "52:54:00:77:17:23" // nothing listens
	bmcHangMAC   = "52:54:00:77:17:24" // accepts, never answers
)

// The BMC account. The daemon reads the password from the credential file
// bmc-r1 in its --bmc-credentials directory; bmc-wrong holds another.
const (
	bmcUser     = "admin"
	bmcPassword = "s3cret-pw"
	bmcSystem   = "vm0" // the Redfish double's system Id
)

// bmcAddrs are the BMC addresses of TestBMC's profiles, known once the
// lab's server namespace exists.
type bmcAddrs struct {
	ipmi, redfish, closed, hang string
}

// bmcFleet is the profiles of TestBMC: demo-1.0 installed by the agent, as
// in TestLifecycle, and the five hosts with their BMCs; with a zero addrs,
// the hosts without BMCs (the testbed starts before the BMCs exist).
func bmcFleet(imageSHA256 string, a bmcAddrs) string {
	bmc := func(protocol, addr, credential string) string {
		if addr == "" {
			return ""
		}
		s := `, bmc: { protocol: ` + protocol + `, address: "` + addr + `", username: ` + bmcUser + `, credential: ` + credential
		if protocol == "redfish" {
			s += `, system: ` + bmcSystem
		}
		return s + ` }`
	}
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
defaults:
  version: ` + demoVersion + `
  layout: demo
  users:
    - name: ops
      ssh_keys: ["` + opsKey + `"]
      sudo: true
hosts:
  - { mac: "` + bmcIPMIMAC + `", hostname: bmc-ipmi-01, network: { dhcp: true }` + bmc("ipmi", a.ipmi, "bmc-r1") + ` }
  - { mac: "` + bmcRFMAC + `", hostname: bmc-rf-01, network: { dhcp: true }` + bmc("redfish", a.redfish, "bmc-r1") + ` }
  - { mac: "` + bmcAuthMAC + `", hostname: bmc-rf-auth, network: { dhcp: true }` + bmc("redfish", a.redfish, "bmc-wrong") + ` }
  - { mac: "` + bmcClosedMAC + `", hostname: bmc-rf-closed, network: { dhcp: true }` + bmc("redfish", a.closed, "bmc-r1") + ` }
  - { mac: "` + bmcHangMAC + `", hostname: bmc-rf-hang, network: { dhcp: true }` + bmc("redfish", a.hang, "bmc-r1") + ` }
`
}

// installThroughBMC follows a power-on with a one-time network boot that
// began at console time at (wall clock wall): the network boot first, the
// agent's install (the n-th on this console), the installer's reboot into
// the disk and the OS, which powers the machine off; the registry then
// says installed.
func installThroughBMC(t *testing.T, ctx context.Context, tb *testbed, vm *lab.BMCVM, at time.Duration, wall time.Time, n int) {
	t.Helper()
	first := wantFirstBoot(t, ctx, vm, at, romBoot)
	t.Logf("%7.1fs  %s", first.At.Seconds(), first.Text)
	done := waitConsole(t, ctx, vm, `rackboot-agent: install done`, at, installTimeout)
	t.Logf("%7.1fs  install done", done.At.Seconds())
	if got := len(findAll(vm, `rackboot-agent: install done`)); got != n {
		t.Errorf("%d installs done on the console, want %d", got, n)
	}
	// The reboot stays in the power-on and boots the disk: the NIC left
	// the boot order once the network boot began.
	disk := wantFirstBoot(t, ctx, vm, done.At, diskBoot)
	t.Logf("%7.1fs  %s", disk.At.Seconds(), disk.Text)
	up := waitConsole(t, ctx, vm, osimage.MarkerDone, disk.At, osBootTimeout)
	t.Logf("%7.1fs  demo OS done", up.At.Seconds())
	if err := vm.WaitOff(ctx, offTimeout); err != nil {
		t.Errorf("after the OS: %v", err)
	}
	checkOutcomes(t, scriptsSince(t, tb, vm.MAC().String(), wall), ipxe.OutcomeInstaller)
	var view api.HostView
	tb.adminAPI(t).get(t, "/api/hosts/"+vm.MAC().String(), &view)
	if view.State != registry.StateInstalled || view.Version.Name != demoVersion {
		t.Errorf("host %s: state %s version %+v, want installed %s", vm.MAC(), view.State, view.Version, demoVersion)
	}
}

// newBMCVM creates a BIOS machine with a blank disk, off; closed when the
// test ends.
func newBMCVM(t *testing.T, ctx context.Context, tb *testbed, name, mac string) *lab.BMCVM {
	t.Helper()
	hw, err := net.ParseMAC(mac)
	if err != nil {
		t.Fatal(err)
	}
	vm, err := tb.net.NewBMCVM(ctx, lab.BMCVMConfig{Name: name, Dir: filepath.Join(tb.dir, name), MAC: hw, DiskSize: diskSize})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := vm.Close(); err != nil {
			t.Errorf("closing %s: %v", name, err)
		}
	})
	return vm
}

// serveIn serves h on a fresh port of 127.0.0.1 in the server namespace
// until the test ends, and returns its address.
func serveIn(t *testing.T, n *lab.Net, h http.Handler) string {
	t.Helper()
	l, err := n.Listen(n.Srv, "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

// closedPort returns an address in the server namespace nothing listens
// on (connection refused).
func closedPort(t *testing.T, n *lab.Net) string {
	t.Helper()
	l, err := n.Listen(n.Srv, "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// hangingServer returns the address of a listener in the server
// namespace that accepts connections and never answers (a wedged BMC web
// server).
func hangingServer(t *testing.T, n *lab.Net) string {
	t.Helper()
	l, err := n.Listen(n.Srv, "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return l.Addr().String()
}

// logDaemonOnFailure logs the end of rackboot's log when the test failed.
func logDaemonOnFailure(t *testing.T, tb *testbed) {
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("last rackboot log lines (%s):\n%s", tb.serverLog, readTail(tb.serverLog, 60))
		}
	})
}

// scriptsSince is the outcomes of the boot scripts rackboot served mac
// since wall.
func scriptsSince(t *testing.T, tb *testbed, mac string, wall time.Time) []string {
	t.Helper()
	var outcomes []string
	for _, e := range since(tb.entries(t), wall) {
		if e.Msg == "script served" && e.Str("path") == "/ipxe" && sameMAC(e.Str("mac"), mac) {
			outcomes = append(outcomes, e.Str("outcome"))
		}
	}
	return outcomes
}

// firstAfter is the first console line matching pattern at or after at.
func firstAfter(vm *lab.BMCVM, pattern string, at time.Duration) (lab.Line, bool) {
	re := regexp.MustCompile(pattern)
	for _, l := range vm.Lines() {
		if l.At >= at && re.MatchString(l.Text) {
			return l, true
		}
	}
	return lab.Line{}, false
}

// findAll is every console line matching pattern.
func findAll(vm *lab.BMCVM, pattern string) []lab.Line {
	re := regexp.MustCompile(pattern)
	var all []lab.Line
	for _, l := range vm.Lines() {
		if re.MatchString(l.Text) {
			all = append(all, l)
		}
	}
	return all
}
