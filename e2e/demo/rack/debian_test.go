package rack

import (
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/rackboot/rackboot/e2e/lab"
	"github.com/rackboot/rackboot/e2e/osimage"
	"github.com/rackboot/rackboot/profiles"
)

// TestDebianProfiles writes the Debian rack's fleet and checks each
// machine's host as rackboot resolves it: Debian with the image's digest,
// the agent as installer, a layout that fits its disk and keeps a data
// partition, the run's key for ops, a static address on the lab's segment
// outside the site's DHCP range, and the firmware the lab gives it.
func TestDebianProfiles(t *testing.T) {
	const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPYKhj0ARBUk7F5sJD8Md+68qt0u5UZLlllfq+jt/tXC demo@lab"
	dir := t.TempDir()
	set, err := WriteDebianProfiles(dir, &osimage.Image{Version: DebianVersion, SHA256: sum10}, key)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, DebianFleetFile)); err != nil || !strings.Contains(string(b), sum10) {
		t.Errorf("%s: %v; want the image's sha256 in it", DebianFleetFile, err)
	}
	segment := netip.MustParsePrefix(lab.ServerIP + "/24")
	siteStart, siteEnd := netip.MustParseAddr(lab.SiteRangeStart), netip.MustParseAddr(lab.SiteRangeEnd)
	boots, addrs := map[string]bool{}, map[netip.Addr]bool{}
	for _, m := range DebianMachines() {
		h, ok := set.Lookup(m.MAC)
		if !ok {
			t.Errorf("%s: %s is not a host of the Debian fleet", m.Name, m.MAC)
			continue
		}
		if h.Version == nil || h.Version.Name != DebianVersion || h.Version.Image.SHA256 != sum10 ||
			h.Version.Image.URL != ImageFile(DebianVersion) {
			t.Errorf("%s (%s): version %+v, want %s with the image's url and sha256", m.Name, h.Hostname, h.Version, DebianVersion)
		}
		if h.Installer == nil || h.Installer.Kernel != KernelFile || h.Installer.Initrd != InitrdFile {
			t.Errorf("%s (%s): installer %+v, want %s and %s", m.Name, h.Hostname, h.Installer, KernelFile, InitrdFile)
		}
		if h.Layout == nil || minSize(t, h) > uint64(m.DiskSize) {
			t.Errorf("%s (%s): layout %+v needs more than its %d-byte disk", m.Name, h.Hostname, h.Layout, m.DiskSize)
		} else if !slices.ContainsFunc(h.Layout.Partitions, func(p profiles.Partition) bool { return p.Preserve && p.Mount != "" }) {
			t.Errorf("%s (%s): layout %s has no preserved, mounted partition", m.Name, h.Hostname, h.Layout.Name)
		}
		if !slices.ContainsFunc(h.Users, func(u profiles.User) bool { return u.Name == "ops" && slices.Contains(u.SSHKeys, key) }) {
			t.Errorf("%s (%s): users %+v, want ops with the run's key", m.Name, h.Hostname, h.Users)
		}
		a := h.Network.Prefix().Addr()
		if !h.Network.Static() || !segment.Contains(a) || a.String() == lab.ServerIP ||
			(a.Compare(siteStart) >= 0 && a.Compare(siteEnd) <= 0) || addrs[a] {
			t.Errorf("%s (%s): network %+v, want a static address of its own on %v outside the site's range", m.Name, h.Hostname, h.Network, segment)
		}
		addrs[a] = true
		if h.Labels["firmware"] != m.Firmware.String() {
			t.Errorf("%s (%s): label firmware=%q, but the lab boots it with %v", m.Name, h.Hostname, h.Labels["firmware"], m.Firmware)
		}
		boots[m.Boot()] = true
	}
	if len(boots) != 3 {
		t.Errorf("the Debian rack boots %v, want the three ways of the example rack", boots)
	}
}

func TestDebianProfilesRefused(t *testing.T) {
	if _, err := WriteDebianProfiles(t.TempDir(), &osimage.Image{Version: "debian-12.2", SHA256: sum10}, "ssh-ed25519 AAAA k"); err == nil {
		t.Error("WriteDebianProfiles took an image of another version")
	}
	if _, err := WriteDebianProfiles(t.TempDir(), &osimage.Image{Version: DebianVersion, SHA256: sum10}, `ssh-ed25519 AAAA "k"`); err == nil {
		t.Error("WriteDebianProfiles took a key with quotes")
	}
}

// TestDebianBootMilestones matches the console milestones against lines
// of a Debian machine's boot from disk in the demo (UEFI, node2), and
// against none of the iPXE lines before them.
func TestDebianBootMilestones(t *testing.T) {
	console := []string{
		"iPXE 1.0.0+git-20190125.36a4c85-5.1 -- Open Source Network Boot Firmware -- http://ipxe.org",
		"rackboot: deb-n02 52:54:00:77:04:02 (x86_64 efi) is installed: booting from its local disk",
		`BdsDxe: starting Boot0001 "UEFI Misc Device" from PciRoot(0x0)/Pci(0x3,0x0)`,
		"Welcome to GRUB!",
		" [    0.000000] Linux version 6.1.0-57-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0, " +
			"GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC Debian 6.1.192-3 (2026-11-26)",
		"Welcome to Debian GNU/Linux 12 (bookworm)!",
	}
	want := map[string]int{"grub": 3, "linux": 4, "systemd": 5}
	for _, m := range DebianBootMilestones(mustMAC(t, "52:54:00:77:04:02")) {
		if m.Serial == "" {
			continue
		}
		re := regexp.MustCompile(m.Serial)
		got := slices.IndexFunc(console, re.MatchString)
		if got != want[m.Name] {
			t.Errorf("milestone %s (/%s/) matches line %d first, want %d", m.Name, m.Serial, got, want[m.Name])
		}
		delete(want, m.Name)
	}
	if len(want) > 0 {
		t.Errorf("milestones missing: %v", want)
	}
}
