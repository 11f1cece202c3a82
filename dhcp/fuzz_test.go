package dhcp

import (
	"net"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

// FuzzReply feeds arbitrary datagrams through what Serve does with one:
// parse, decide, encode. It must never panic, and an answer must never
// offer an address.
func FuzzReply(f *testing.F) {
	limitMinimizing(f)
	for _, req := range []*dhcpv4.DHCPv4{
		newRequest(f, dhcpv4.MessageTypeDiscover, knownMAC, pxeOptions(iana.INTEL_X86PC)...),
		newRequest(f, dhcpv4.MessageTypeRequest, knownMAC, pxeOptions(iana.EFI_X86_64_HTTP)...),
		newRequest(f, dhcpv4.MessageTypeDiscover, knownMAC, with(pxeOptions(iana.EFI_X86_64), ipxeOptions())...),
		newRequest(f, dhcpv4.MessageTypeDiscover, knownMAC),
	} {
		f.Add(req.ToBytes())
	}
	f.Add([]byte{})
	for _, b := range firmwareRequests(f) {
		f.Add(b)
	}
	cfgs := []Config{
		{ServerIP: net.IPv4(10, 0, 0, 1)},
		{ServerIP: net.IPv4(10, 0, 0, 1), ARM64File: "snp.efi", Discovery: true},
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := dhcpv4.FromBytes(b)
		if err != nil {
			return
		}
		for _, cfg := range cfgs {
			for _, known := range []bool{true, false} {
				resp, err := Reply(req, known, cfg)
				if (resp == nil) == (err == nil) {
					t.Fatalf("Reply = %v, %v: want exactly one of them", resp, err)
				}
				if resp == nil {
					continue
				}
				wire, err := dhcpv4.FromBytes(resp.ToBytes())
				if err != nil {
					t.Fatalf("answer does not parse: %v", err)
				}
				if !wire.YourIPAddr.Equal(net.IPv4zero) {
					t.Fatalf("answer offers %v", wire.YourIPAddr)
				}
				if wire.BootFileNameOption() == "" {
					t.Fatal("answer has no boot file")
				}
			}
		}
	})
}
