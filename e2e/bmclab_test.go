//go:build e2e

package e2e

import (
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rackboot/rackboot/e2e/lab"
	"github.com/rackboot/rackboot/e2e/osimage"
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
	n := newLabNet(t, ctx)
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
	n := newLabNet(t, ctx)
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
