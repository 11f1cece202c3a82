package ipxe

import (
	"net"

	"github.com/rackboot/rackboot/profiles"
)

// *profiles.Set is the production Hosts.
var _ Hosts = (*profiles.Set)(nil)

// fakeHosts is a hand-written Hosts that, unlike profiles.Load, accepts any
// value, hostile ones included.
type fakeHosts struct {
	hosts map[string]*profiles.Host
	def   *profiles.Installer
}

func (f fakeHosts) Lookup(mac net.HardwareAddr) (*profiles.Host, bool) {
	h, ok := f.hosts[mac.String()]
	return h, ok
}

func (f fakeHosts) DefaultInstaller() *profiles.Installer { return f.def }

const testBase = "http://192.0.2.1:8080"

// testApp is the appliance of the golden scripts: plain HTTP for iPXE, the
// agent API over HTTPS, and the CA archive.
var testApp = Appliance{Base: testBase, API: "https://192.0.2.1:8443", CA: "/nbp/rackboot-ca.cpio.gz"}

var (
	macKnown   = net.HardwareAddr{0x52, 0x54, 0, 0, 0x01, 0x01}
	macBare    = net.HardwareAddr{0x52, 0x54, 0, 0, 0x01, 0x02} // known, no installer
	macUnknown = net.HardwareAddr{0x52, 0x54, 0, 0, 0x09, 0x09}
)

func agentInstaller() *profiles.Installer {
	return &profiles.Installer{Kernel: "vmlinuz", Initrd: "agent.cpio.gz", Cmdline: "console=ttyS0,115200 quiet"}
}

func defaultInstaller() *profiles.Installer {
	return &profiles.Installer{Kernel: "default/vmlinuz", Initrd: "default/initrd.img", Cmdline: "console=ttyS0"}
}

// fleet is a small fleet: one host with an installer, one without.
func fleet(def *profiles.Installer) fakeHosts {
	return fakeHosts{
		hosts: map[string]*profiles.Host{
			macKnown.String(): {MAC: macKnown, Hostname: "r1-n01", Installer: agentInstaller(), Source: "fleet.yaml:3"},
			macBare.String():  {MAC: macBare, Hostname: "r1-n02", Source: "fleet.yaml:9"},
		},
		def: def,
	}
}
