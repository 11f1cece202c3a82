package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/rackboot/rackboot/e2e/lab"
	"github.com/rackboot/rackboot/profiles"
)

// machine is one computer of the demo's rack: a host of the example fleet
// and the firmware the lab gives it.
type machine struct {
	name     string // the lab's name for the VM, and its files in the work directory
	mac      net.HardwareAddr
	firmware lab.Firmware

	host *profiles.Host // the host's profile; set by resolve
	vm   *lab.VM        // set by powerOn
	// marker is the marker line its initramfs printed, err why none came.
	marker lab.Line
	err    error
}

// rack lists the machines the demo powers on. Their MACs are hosts of the
// example fleet (examples/rack1.yaml).
func rack() []*machine {
	return []*machine{
		// SeaBIOS has no network stack: QEMU's iPXE option ROM on the NIC
		// does the whole network boot, from its first DHCP on.
		{name: "node1", mac: net.HardwareAddr{0x52, 0x54, 0x00, 0x77, 0x00, 0x01}, firmware: lab.BIOS},
		// OVMF with the NIC's ROM removed (romfile=): EDK2's own PXE client
		// boots, as on most UEFI servers: DHCP, port 4011, TFTP of
		// ipxe.efi, then iPXE carries on over HTTP.
		{name: "node2", mac: net.HardwareAddr{0x52, 0x54, 0x00, 0x77, 0x00, 0x02}, firmware: lab.UEFI},
	}
}

// firmwareName describes how the machine boots, for people.
func (m *machine) firmwareName() string {
	switch m.firmware {
	case lab.BIOS:
		return "BIOS: SeaBIOS + iPXE ROM"
	case lab.UEFI:
		return "UEFI: OVMF, EDK2 PXE"
	}
	return m.firmware.String()
}

// hostname is the machine's name in the profiles.
func (m *machine) hostname() string {
	if m.host == nil || m.host.Hostname == "" {
		return "?"
	}
	return m.host.Hostname
}

// label prefixes the machine's progress lines: the lab's name and the
// profile's hostname.
func (m *machine) label() string { return m.name + " " + m.hostname() }

// resolve finds each machine's host in the profiles. A machine the
// profiles do not know would get no answer from rackboot: the demo would
// only show it wait.
func resolve(ms []*machine, set *profiles.Set) error {
	for _, m := range ms {
		h, ok := set.Lookup(m.mac)
		if !ok {
			return fmt.Errorf("the profiles have no host with MAC %s (%s)", m.mac, m.name)
		}
		if h.Installer == nil {
			return fmt.Errorf("host %s (%s, %s) has no installer to boot", h.Hostname, m.mac, h.Source)
		}
		m.host = h
	}
	return nil
}

// powerOn starts the machine's VM in the lab; its files go to dir.
func (m *machine) powerOn(ctx context.Context, n *lab.Net, dir string) error {
	vm, err := n.StartVM(ctx, lab.VMConfig{Name: m.name, Dir: dir, Firmware: m.firmware, MAC: m.mac})
	if err != nil {
		return fmt.Errorf("powering on %s: %w", m.name, err)
	}
	m.vm = vm
	return nil
}

// waitMarker waits for the marker line of the machine's initramfs and
// records it, or why it did not come within timeout.
func (m *machine) waitMarker(ctx context.Context, timeout time.Duration) {
	m.marker, m.err = m.vm.WaitFor(ctx, lab.Marker+" ", timeout)
	if m.err == nil {
		m.err = m.checkMarker()
	}
}

// checkMarker checks that the kernel that printed the marker runs on this
// machine (mac, its NIC's address) and was booted by the script rendered
// for it (cmdline_mac, rackboot.mac= on its command line).
func (m *machine) checkMarker() error {
	fields := markerFields(m.marker.Text)
	for _, key := range []string{"mac", "cmdline_mac"} {
		if !sameMAC(fields[key], m.mac.String()) {
			return fmt.Errorf("marker %s=%q, want %s", key, fields[key], m.mac)
		}
	}
	return nil
}

// result is the machine's outcome in one word.
func (m *machine) result() string {
	switch {
	case m.vm == nil:
		return "not started"
	case m.err == nil:
		return "booted"
	case errors.Is(m.err, context.Canceled):
		return "interrupted"
	}
	return "FAILED"
}

// markerFields splits "RACKBOOT_E2E_MARKER k=v k=v" into its fields.
func markerFields(line string) map[string]string {
	out := map[string]string{}
	for _, f := range strings.Fields(line) {
		if k, v, ok := strings.Cut(f, "="); ok {
			out[k] = v
		}
	}
	return out
}

// sameMAC compares two MACs in any spelling net.ParseMAC accepts.
func sameMAC(a, b string) bool {
	x, err1 := net.ParseMAC(a)
	y, err2 := net.ParseMAC(b)
	return err1 == nil && err2 == nil && x.String() == y.String()
}
