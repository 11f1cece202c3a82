package rack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/rackboot/rackboot/e2e/lab"
)

// Machine is one computer of a rack: a host of its fleet, the firmware and
// network card the lab gives it, and its disk.
type Machine struct {
	// Name is the lab's name for the machine; its files in the work
	// directory start with it.
	Name     string
	MAC      net.HardwareAddr // a host of the fleet (examples/*.yaml, debian.yaml.tmpl)
	Firmware lab.Firmware
	NIC      string     // QEMU's NIC model
	ROM      lab.NICROM // the NIC's option ROM
	// DiskSize is the size of its one disk, above the min_size of the
	// layout its profile names. The disk is a sparse file.
	DiskSize int64
}

const gib = 1 << 30

// Machines returns the example rack: three machines that boot in three
// different ways and install different versions with different layouts
// (the profiles decide which; the comments say what they do). Their MACs
// are hosts of examples/rack1.yaml and rack2.yaml.
func Machines() []Machine {
	return []Machine{
		// r1-n01: stable channel (demo-1.0), layout compact. SeaBIOS
		// has no network stack: QEMU's iPXE option ROM on the NIC does
		// the whole network boot, from its first DHCP on.
		{Name: "node1", MAC: mac(0x77, 0x00, 0x01), Firmware: lab.BIOS, NIC: "virtio-net-pci", ROM: lab.ROMDefault, DiskSize: 8 * gib},
		// r1-s01: stable channel (demo-1.0), layout storage (a
		// preserved data partition on the largest disk of 16 GiB or
		// more). OVMF without NIC ROM: EDK2's own PXE client boots, as
		// on most UEFI servers: DHCP, port 4011, TFTP of ipxe.efi, then
		// iPXE carries on over HTTP.
		{Name: "node2", MAC: mac(0x77, 0x00, 0x04), Firmware: lab.UEFI, NIC: "virtio-net-pci", ROM: lab.ROMDefault, DiskSize: 20 * gib},
		// r2-n02: rack 2 follows the canary channel (demo-1.1), layout
		// compact. An Intel e1000 NIC: OVMF has no driver for it, so
		// its network boot is the card's own option ROM, QEMU's iPXE
		// EFI ROM, which goes straight to the HTTP script.
		{Name: "node3", MAC: mac(0x78, 0x00, 0x02), Firmware: lab.UEFI, NIC: "e1000", ROM: lab.ROMIPXE, DiskSize: 8 * gib},
	}
}

func mac(b3, b4, b5 byte) net.HardwareAddr { return net.HardwareAddr{0x52, 0x54, 0x00, b3, b4, b5} }

// Boot describes how the machine boots over the network, for people.
func (m Machine) Boot() string {
	switch {
	case m.Firmware == lab.BIOS:
		return "BIOS, iPXE ROM, " + m.nicName()
	case m.ROM == lab.ROMIPXE:
		return "UEFI, iPXE EFI ROM, " + m.nicName()
	}
	return "UEFI, EDK2 PXE, " + m.nicName()
}

func (m Machine) nicName() string { return strings.TrimSuffix(m.NIC, "-pci") }

// Disk is the machine's disk image in dir.
func (m Machine) Disk(dir string) string { return filepath.Join(dir, m.Name+".disk.img") }

// NewDisk gives the machine a new, empty disk in dir: a blank server.
func (m Machine) NewDisk(dir string) error {
	name := m.Disk(dir)
	if err := os.Remove(name); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("rack: %w", err)
	}
	f, err := os.Create(name)
	if err != nil {
		return fmt.Errorf("rack: %w", err)
	}
	if err := f.Truncate(m.DiskSize); err != nil {
		f.Close()
		return fmt.Errorf("rack: %w", err)
	}
	return f.Close()
}

// PowerOn starts the machine in the lab with its disk (see NewDisk). run
// names this power-on's files in dir: serial console, QEMU log, UEFI
// variables.
//
// The boot order is the network, then the disk, as a PXE-provisioned
// rack is set up: every boot asks rackboot, whose script boots the
// installer or says to boot the disk. Under UEFI, the script's "exit"
// makes the firmware try its next boot option; OVMF makes boot options
// only of the devices that QEMU's boot order (bootindex) lists, so the
// disk is listed after the NIC. Under BIOS iPXE's sanboot reads the first
// disk through INT 13h, whatever the order.
func (m Machine) PowerOn(ctx context.Context, n *lab.Net, dir, run string) (*lab.VM, error) {
	disk := m.Disk(dir)
	if _, err := os.Stat(disk); err != nil {
		return nil, fmt.Errorf("rack: %s has no disk: %w", m.Name, err)
	}
	extra := []string{
		"-drive", "file=" + disk + ",if=none,id=disk0,format=raw",
		"-device", "virtio-blk-pci,drive=disk0,bootindex=2",
	}
	if m.Firmware == lab.UEFI {
		// OVMF makes four boot options of the NIC: PXE and HTTP boot,
		// each over IPv4 and IPv6. On the lab's IPv4-only segment PXE
		// over IPv6 waits 70 s for an answer before the disk's turn;
		// servers' firmware setup can switch it off, and so does this.
		extra = append(extra, "-fw_cfg", "name=opt/org.tianocore/IPv6PXESupport,string=n")
	}
	vm, err := n.StartVM(ctx, lab.VMConfig{
		Name: run, Dir: dir, Firmware: m.Firmware, MAC: m.MAC, NIC: m.NIC, ROM: m.ROM, Extra: extra,
	})
	if err != nil {
		return nil, fmt.Errorf("rack: powering on %s: %w", m.Name, err)
	}
	return vm, nil
}
