package dhcp

import (
	"fmt"
	"net"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

// Test clients. The MACs are QEMU's (52:54:00) as in the lab.
var (
	knownMAC   = net.HardwareAddr{0x52, 0x54, 0x00, 0x77, 0x00, 0x01}
	unknownMAC = net.HardwareAddr{0x52, 0x54, 0x00, 0x77, 0x00, 0x99}
	testXID    = dhcpv4.TransactionID{0xde, 0xad, 0xbe, 0xef}
	testUUID   = []byte{0, 0x8a, 0x32, 0x1f, 0x5e, 0x0c, 0x4f, 0x43, 0x9b, 0x1d, 0x62, 0x0e, 0x55, 0x77, 0x00, 0x01, 0x42}
)

// hostSet is a Hosts made of MAC addresses.
type hostSet map[string]bool

func (h hostSet) Known(mac net.HardwareAddr) bool { return h[mac.String()] }

// newRequest builds a client request and passes it through the wire
// encoding, so that it looks like one the server received.
func newRequest(t testing.TB, mt dhcpv4.MessageType, mac net.HardwareAddr, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	t.Helper()
	base := []dhcpv4.Modifier{
		dhcpv4.WithTransactionID(testXID),
		dhcpv4.WithHwAddr(mac),
		dhcpv4.WithMessageType(mt),
		dhcpv4.WithBroadcast(true),
	}
	req, err := dhcpv4.New(append(base, mods...)...)
	if err != nil {
		t.Fatal(err)
	}
	req, err = dhcpv4.FromBytes(req.ToBytes())
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// pxeOptions are the options PXE firmware of architecture arch sends:
// vendor class (60), architecture (93), NIC interface (94) and UUID (97).
// UEFI HTTP boot clients send "HTTPClient" instead of "PXEClient".
func pxeOptions(arch iana.Arch) []dhcpv4.Modifier {
	class := fmt.Sprintf("PXEClient:Arch:%05d:UNDI:002001", arch)
	if arch == iana.EFI_X86_64_HTTP || arch == iana.EFI_ARM64_HTTP {
		class = fmt.Sprintf("HTTPClient:Arch:%05d:UNDI:003001", arch)
	}
	return []dhcpv4.Modifier{
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier(class)),
		dhcpv4.WithOption(dhcpv4.OptClientArch(arch)),
		dhcpv4.WithGeneric(dhcpv4.OptionClientNetworkInterfaceIdentifier, []byte{1, 3, 16}),
		dhcpv4.WithGeneric(dhcpv4.OptionClientMachineIdentifier, testUUID),
	}
}

// ipxeOptions are what iPXE adds: user class "iPXE" (raw, not RFC 3004)
// and option 175 with its feature flags (19 HTTP, 24 bzImage).
func ipxeOptions() []dhcpv4.Modifier {
	return []dhcpv4.Modifier{
		dhcpv4.WithUserClass("iPXE", false),
		dhcpv4.WithGeneric(dhcpv4.OptionEtherboot, []byte{0x13, 0x01, 0x01, 0x18, 0x01, 0x01}),
	}
}

func with(mods ...[]dhcpv4.Modifier) []dhcpv4.Modifier {
	var all []dhcpv4.Modifier
	for _, m := range mods {
		all = append(all, m...)
	}
	return all
}
