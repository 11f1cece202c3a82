package rack

import (
	_ "embed"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"text/template"

	"github.com/rackboot/rackboot/e2e/lab"
	"github.com/rackboot/rackboot/e2e/osimage"
	"github.com/rackboot/rackboot/profiles"
)

// DebianVersion is the Debian rack's OS: the Debian 12 image that
// osimage.BuildDebian makes with no extra package or file, the one the
// end-to-end suite's TestDebian installs first, so both share lab's
// cache.
const DebianVersion = "debian-12.1"

// DebianFleetFile is the name of the Debian rack's profiles file in the
// --profiles directory.
const DebianFleetFile = "debian.yaml"

// debianDisk is each Debian machine's disk: above the layout's 3 GiB, so
// the root file system grows past the 1.5 GiB image.
const debianDisk = 4 * gib

// debianHost is a machine of the Debian rack and what its profile gives
// it besides the fleet's defaults.
type debianHost struct {
	Machine
	Hostname string
	Address  string // static, on the lab's segment
}

// debianRack is the Debian rack: the example rack's three ways to boot
// (see Machines), each installing Debian 12 with a static address on the
// lab's segment. The addresses are outside the site DHCP server's range
// (lab.SiteRangeStart–SiteRangeEnd) and apart from those of the suite.
func debianRack() []debianHost {
	return []debianHost{
		// SeaBIOS with QEMU's iPXE ROM on a virtio NIC; GRUB for BIOS
		// boots the installed system.
		{Machine{Name: "node1", MAC: mac(0x77, 0x04, 0x01), Firmware: lab.BIOS, NIC: "virtio-net-pci", ROM: lab.ROMDefault, DiskSize: debianDisk},
			"deb-n01", "192.168.77.71/24"},
		// OVMF's own EDK2 PXE client, as on most UEFI servers; GRUB's
		// BOOTX64.EFI boots the installed system.
		{Machine{Name: "node2", MAC: mac(0x77, 0x04, 0x02), Firmware: lab.UEFI, NIC: "virtio-net-pci", ROM: lab.ROMDefault, DiskSize: debianDisk},
			"deb-n02", "192.168.77.72/24"},
		// An Intel e1000, which OVMF has no driver for: the card's iPXE
		// EFI ROM boots it over the network; Debian's e1000 driver
		// brings it up.
		{Machine{Name: "node3", MAC: mac(0x77, 0x04, 0x03), Firmware: lab.UEFI, NIC: "e1000", ROM: lab.ROMIPXE, DiskSize: debianDisk},
			"deb-n03", "192.168.77.73/24"},
	}
}

// DebianMachines returns the machines of the Debian rack, the demo's:
// a BIOS machine with a virtio NIC, a UEFI one with a virtio NIC and a
// UEFI one with an Intel e1000. Their hosts are in WriteDebianProfiles's
// fleet.
func DebianMachines() []Machine {
	var ms []Machine
	for _, h := range debianRack() {
		ms = append(ms, h.Machine)
	}
	return ms
}

//go:embed debian.yaml.tmpl
var debianFleet string

var debianTemplate = template.Must(template.New(DebianFleetFile).Option("missingkey=error").Parse(debianFleet))

// WriteDebianProfiles writes the Debian rack's fleet into dir as
// rackboot's --profiles directory (DebianFleetFile, from
// debian.yaml.tmpl): image is the DebianVersion image, whose sha256 goes
// into the version, and key the authorized_keys line of the run's SSH
// key, which the user ops gets. It returns the fleet as rackboot will
// load it.
func WriteDebianProfiles(dir string, image *osimage.Image, key string) (*profiles.Set, error) {
	if image.Version != DebianVersion {
		return nil, fmt.Errorf("rack: profiles: the Debian rack installs %s, not %s", DebianVersion, image.Version)
	}
	if strings.ContainsAny(key, "\"\\\n") {
		return nil, fmt.Errorf("rack: profiles: ssh key %q: want one authorized_keys line without quotes", key)
	}
	type host struct{ MAC, Hostname, Address, Firmware string }
	data := struct {
		Version, Image, SHA256, Kernel, Initrd, Key, Server string
		Hosts                                               []host
	}{
		Version: DebianVersion, Image: ImageFile(DebianVersion), SHA256: image.SHA256,
		Kernel: KernelFile, Initrd: InitrdFile, Key: key, Server: lab.ServerIP,
	}
	for _, h := range debianRack() {
		data.Hosts = append(data.Hosts, host{h.MAC.String(), h.Hostname, h.Address, h.Firmware.String()})
	}
	var b strings.Builder
	if err := debianTemplate.Execute(&b, data); err != nil {
		return nil, fmt.Errorf("rack: profiles: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("rack: profiles: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, DebianFleetFile), []byte(b.String()), 0o644); err != nil {
		return nil, fmt.Errorf("rack: profiles: %w", err)
	}
	set, err := profiles.Load(dir)
	if err != nil {
		return nil, fmt.Errorf("rack: the Debian fleet does not load: %w", err)
	}
	return set, nil
}

// DebianBootMilestones are the moments of a Debian machine's boot from
// its disk: rackboot's answer that it is installed, then on its console
// GRUB (the image's, from the disk), the kernel and systemd.
func DebianBootMilestones(mac net.HardwareAddr) []lab.Milestone {
	return []lab.Milestone{
		{Name: "pxe", Server: Answered(mac)},
		{Name: "local", Server: ScriptServed(mac, "local")},
		{Name: "grub", Serial: `Welcome to GRUB`},
		{Name: "linux", Serial: `Linux version `},
		{Name: "systemd", Serial: `Welcome to .*Debian`},
	}
}
