//go:build e2e

package e2e

import (
	"bytes"
	"context"
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
