package rack

import (
	"net"
	"strings"
	"testing"

	"github.com/rackboot/rackboot/e2e/lab"
	"github.com/rackboot/rackboot/e2e/osimage"
	"github.com/rackboot/rackboot/profiles"
)

// TestMachinesAreExampleHosts checks the rack against the example fleet:
// every machine is a host there, whose firmware label says what the lab
// gives it and whose layout fits its disk, and between them the machines
// boot three ways and install both versions with two layouts.
func TestMachinesAreExampleHosts(t *testing.T) {
	images := map[string]*osimage.Image{}
	for _, v := range Versions {
		images[v] = &osimage.Image{SHA256: strings.Repeat("0", 64)}
	}
	set, err := WriteProfiles(t.TempDir(), images, nil)
	if err != nil {
		t.Fatal(err)
	}
	boots, versions, layouts, hostnames := map[string]bool{}, map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, m := range Machines() {
		h, ok := set.Lookup(m.MAC)
		if !ok {
			t.Errorf("%s: %s is not a host of the example fleet", m.Name, m.MAC)
			continue
		}
		if h.Installer == nil || h.Installer.Kernel != KernelFile || h.Installer.Initrd != InitrdFile {
			t.Errorf("%s (%s): installer %+v, want %s and %s", m.Name, h.Hostname, h.Installer, KernelFile, InitrdFile)
		}
		if h.Version == nil || h.Version.Image.URL != ImageFile(h.Version.Name) {
			t.Errorf("%s (%s): version %+v, want one whose image is VERSION.img.zst", m.Name, h.Hostname, h.Version)
			continue
		}
		if want := map[lab.Firmware]string{lab.BIOS: "bios", lab.UEFI: "uefi"}[m.Firmware]; h.Labels["firmware"] != want {
			t.Errorf("%s (%s): label firmware=%q, but the lab boots it with %v", m.Name, h.Hostname, h.Labels["firmware"], m.Firmware)
		}
		if h.Layout == nil || minSize(t, h) > uint64(m.DiskSize) {
			t.Errorf("%s (%s): layout %+v needs more than its %d-byte disk", m.Name, h.Hostname, h.Layout, m.DiskSize)
			continue
		}
		boots[m.Boot()], versions[h.Version.Name], layouts[h.Layout.Name], hostnames[h.Hostname] = true, true, true, true
	}
	if len(boots) != 3 || len(versions) != len(Versions) || len(layouts) < 2 || len(hostnames) != 3 {
		t.Errorf("the rack boots %v, installs %v with layouts %v on %v: want 3 ways, every version, 2 layouts, 3 hosts",
			boots, versions, layouts, hostnames)
	}
}

// minSize is the smallest disk the host's plan accepts.
func minSize(t *testing.T, h *profiles.Host) uint64 {
	t.Helper()
	p, err := profiles.Planner{}.Plan(h, nil, nil, "http://192.0.2.1:8080")
	if err != nil {
		t.Fatalf("%s: %v", h.Hostname, err)
	}
	return uint64(p.Disk.MinSize)
}

func TestBoot(t *testing.T) {
	var got []string
	for _, m := range Machines() {
		got = append(got, m.Boot())
	}
	want := []string{"BIOS, iPXE ROM, virtio-net", "UEFI, EDK2 PXE, virtio-net", "UEFI, iPXE EFI ROM, e1000"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("Boot() = %q, want %q", got, want)
	}
}

func mustMAC(t *testing.T, s string) net.HardwareAddr {
	t.Helper()
	hw, err := net.ParseMAC(s)
	if err != nil {
		t.Fatal(err)
	}
	return hw
}
