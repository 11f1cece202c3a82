//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rackboot/rackboot/e2e/lab"
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
