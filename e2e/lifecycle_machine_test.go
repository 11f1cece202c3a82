//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rackboot/rackboot/e2e/lab"
	"github.com/rackboot/rackboot/e2e/osimage"
)

// Bounds of one power-on under TCG on two cores shared with other runs.
const (
	// osBootTimeout: power-on to the demo OS's last marker, through PXE,
	// rackboot's local-boot script and the firmware's fall-through.
	osBootTimeout = 300 * time.Second
	// offTimeout: the last line of a boot to QEMU's exit.
	offTimeout = 60 * time.Second
)

// machine is one lab machine across its power cycles. Every power-on is a
// new QEMU process with the same MAC, the same disk image and, under UEFI,
// the same variable store: what a real server keeps when it is switched
// off and on again.
type machine struct {
	tb   *testbed
	name string // "bios", "uefi"
	fw   lab.Firmware
	mac  string
	disk string // the machine's disk image
	vars string // its UEFI variable store (NVRAM)
	size int64  // the disk's size; diskSize when zero

	boots  int
	first  time.Time // the first power-on, the timeline's zero
	events []event
}

// event is one line of a machine's timeline.
type event struct {
	at   time.Time
	what string
}

func newMachine(tb *testbed, name string, fw lab.Firmware, mac string) *machine {
	return &machine{
		tb: tb, name: name, fw: fw, mac: mac,
		disk: filepath.Join(tb.dir, "lc-"+name+".disk.img"),
		vars: filepath.Join(tb.dir, "lc-"+name+".vars.fd"),
	}
}

// powerOn starts the machine; the first power-on creates its blank disk.
// Each power-on has its own serial log, lc-NAME-N.serial.log.
func (m *machine) powerOn(t *testing.T, ctx context.Context) *lab.VM {
	t.Helper()
	m.boots++
	hw, err := net.ParseMAC(m.mac)
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("lc-%s-%d", m.name, m.boots)
	if m.boots == 1 {
		if err := os.WriteFile(m.disk, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		size := m.size
		if size == 0 {
			size = diskSize
		}
		if err := os.Truncate(m.disk, size); err != nil {
			t.Fatal(err)
		}
	}
	cfg := lab.VMConfig{
		Name: name, Dir: m.tb.dir, Firmware: m.fw, MAC: hw, Vars: m.vars,
		// The disk comes second in the firmware's boot order, after the
		// NIC (bootindex=1), as in a fleet that PXE-boots first. OVMF
		// needs it: under QEMU it rebuilds BootOrder at every boot from
		// QEMU's bootindex list and deletes the Boot#### entries of
		// devices not on it that start with HD() or PciRoot()
		// (OvmfPkg/Library/QemuBootOrderLib, BootOrderComplete), which
		// would take the agent's entry, and its BootNext, away.
		Extra: []string{
			"-drive", "file=" + m.disk + ",if=none,id=disk0,format=raw",
			"-device", "virtio-blk-pci,drive=disk0,bootindex=2",
		},
	}
	vm, err := m.tb.net.StartVM(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := vm.Close(); err != nil {
			t.Errorf("closing %s: %v", vm.Name(), err)
		}
	})
	if m.boots == 1 {
		m.first = vm.Started()
	}
	m.log(vm.Started(), "power-on %d (%s)", m.boots, vm.Name())
	return vm
}

func (m *machine) log(at time.Time, format string, args ...any) {
	m.events = append(m.events, event{at: at, what: fmt.Sprintf(format, args...)})
}

// at places a console line on the machine's timeline.
func (m *machine) at(vm *lab.VM, l lab.Line) time.Time { return vm.Started().Add(l.At) }

// waitOff waits for QEMU to exit after the guest rebooted or powered off
// (-no-reboot makes both an exit).
func (m *machine) waitOff(t *testing.T, vm *lab.VM) {
	t.Helper()
	select {
	case <-vm.Done():
		m.log(time.Now(), "off")
	case <-time.After(offTimeout):
		t.Fatalf("%s still running %v after its last line:\n%s", vm.Name(), offTimeout, vm.Tail(30))
	}
}

// wait waits for a console line, failing with the console's and rackboot's
// last lines.
func (m *machine) wait(t *testing.T, ctx context.Context, vm *lab.VM, pattern string, timeout time.Duration) lab.Line {
	t.Helper()
	l, err := vm.WaitFor(ctx, pattern, timeout)
	if err != nil {
		t.Fatalf("%v\nlast console lines (%s):\n%s\nlast rackboot log lines:\n%s",
			err, vm.SerialLog(), vm.Tail(40), readTail(m.tb.serverLog, 20))
	}
	return l
}

// install waits for the agent's final line and the reboot that follows.
func (m *machine) install(t *testing.T, ctx context.Context, vm *lab.VM) {
	t.Helper()
	l := m.wait(t, ctx, vm, `rackboot-agent: install done`, installTimeout)
	if s, ok, _ := vm.Find(`rackboot-agent starting`); ok {
		m.log(m.at(vm, s), "installer running")
	}
	if s, ok, _ := vm.Find(`msg="UEFI boot entry set"`); ok {
		m.log(m.at(vm, s), "agent set the UEFI boot entry")
	}
	m.log(m.at(vm, l), "install done")
	m.waitOff(t, vm)
}

// scripts returns the outcomes of the boot scripts rackboot served the
// machine since vm's power-on, and puts them on the timeline.
func (m *machine) scripts(t *testing.T, vm *lab.VM) []string {
	t.Helper()
	var outcomes []string
	for _, e := range since(m.tb.entries(t), vm.Started()) {
		if e.Msg == "script served" && e.Str("path") == "/ipxe" && sameMAC(e.Str("mac"), m.mac) {
			outcomes = append(outcomes, e.Str("outcome"))
			m.log(e.Time, "rackboot served the script: outcome %s", e.Str("outcome"))
		}
	}
	return outcomes
}

// bootOS waits for the demo OS to finish and power off, and returns what
// it reported.
func (m *machine) bootOS(t *testing.T, ctx context.Context, vm *lab.VM) osimage.Report {
	t.Helper()
	l := m.wait(t, ctx, vm, osimage.MarkerDone, osBootTimeout)
	var rep osimage.Report
	for _, line := range vm.Lines() {
		rep.Add(line.Text)
	}
	if os, ok, _ := vm.Find(osimage.MarkerOS); ok {
		m.log(m.at(vm, os), "OS up: version=%s fw=%s hostname=%s", rep.Version, rep.Firmware, rep.Hostname)
	}
	m.log(m.at(vm, l), "OS done: data %q", rep.Data)
	m.waitOff(t, vm)
	return rep
}

// timeline is the machine's events in order, in seconds since its first
// power-on.
func (m *machine) timeline() string {
	slices.SortStableFunc(m.events, func(a, b event) int { return a.at.Compare(b.at) })
	var b strings.Builder
	for _, e := range m.events {
		fmt.Fprintf(&b, "  %7.1fs  %s\n", e.at.Sub(m.first).Seconds(), e.what)
	}
	return b.String()
}
