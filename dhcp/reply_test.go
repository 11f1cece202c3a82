package dhcp

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func labConfig() Config {
	return Config{ServerIP: net.IPv4(192, 168, 77, 1), ARM64File: "snp-arm64.efi"}
}

// TestReply states the rules of the decision one by one.
func TestReply(t *testing.T) {
	lab := labConfig()
	tests := []struct {
		name    string
		req     *dhcpv4.DHCPv4
		known   bool
		cfg     Config
		want    string // boot file; "" when silent
		wantErr error
	}{
		{"bios", newRequest(t, dhcpv4.MessageTypeDiscover, knownMAC, pxeOptions(iana.INTEL_X86PC)...), true, lab, "undionly.kpxe", nil},
		{"efi x64", newRequest(t, dhcpv4.MessageTypeDiscover, knownMAC, pxeOptions(iana.EFI_X86_64)...), true, lab, "ipxe.efi", nil},
		{"efi bc is x64", newRequest(t, dhcpv4.MessageTypeDiscover, knownMAC, pxeOptions(iana.EFI_BC)...), true, lab, "ipxe.efi", nil},
		{"configured efi file", newRequest(t, dhcpv4.MessageTypeDiscover, knownMAC, pxeOptions(iana.EFI_X86_64)...), true,
			Config{ServerIP: lab.ServerIP, EFIFile: "snponly.efi", BIOSFile: "ipxe.pxe"}, "snponly.efi", nil},
		{"configured bios file", newRequest(t, dhcpv4.MessageTypeDiscover, knownMAC, pxeOptions(iana.INTEL_X86PC)...), true,
			Config{ServerIP: lab.ServerIP, EFIFile: "snponly.efi", BIOSFile: "ipxe.pxe"}, "ipxe.pxe", nil},
		{"arm64", newRequest(t, dhcpv4.MessageTypeDiscover, knownMAC, pxeOptions(iana.EFI_ARM64)...), true, lab, "snp-arm64.efi", nil},
		{"arm64 not configured", newRequest(t, dhcpv4.MessageTypeDiscover, knownMAC, pxeOptions(iana.EFI_ARM64)...), true,
			Config{ServerIP: lab.ServerIP}, "", ErrUnsupportedArch},
		{"http x64", newRequest(t, dhcpv4.MessageTypeDiscover, knownMAC, pxeOptions(iana.EFI_X86_64_HTTP)...), true, lab,
			"http://192.168.77.1:8080/nbp/ipxe.efi", nil},
		{"http arm64 on port 80", newRequest(t, dhcpv4.MessageTypeDiscover, knownMAC, pxeOptions(iana.EFI_ARM64_HTTP)...), true,
			Config{ServerIP: lab.ServerIP, HTTPPort: 80, ARM64File: "snp-arm64.efi"}, "http://192.168.77.1:80/nbp/snp-arm64.efi", nil},
		{"ia32 not served", newRequest(t, dhcpv4.MessageTypeDiscover, knownMAC, pxeOptions(iana.EFI_IA32)...), true, lab, "", ErrUnsupportedArch},
		{"unknown arch", newRequest(t, dhcpv4.MessageTypeDiscover, knownMAC, pxeOptions(41)...), true, lab, "", ErrUnsupportedArch},
		{"first of several archs", newRequest(t, dhcpv4.MessageTypeDiscover, knownMAC, with(pxeOptions(0),
			[]dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptClientArch(iana.EFI_X86_64, iana.INTEL_X86PC))})...), true, lab, "ipxe.efi", nil},

		{"ipxe gets the script", newRequest(t, dhcpv4.MessageTypeDiscover, knownMAC, with(pxeOptions(iana.INTEL_X86PC), ipxeOptions())...), true, lab,
			"http://192.168.77.1:8080/boot.ipxe", nil},
		{"ipxe by raw user class", newRequest(t, dhcpv4.MessageTypeDiscover, knownMAC, with(pxeOptions(iana.EFI_X86_64),
			[]dhcpv4.Modifier{dhcpv4.WithUserClass("iPXE", false)})...), true, lab, "http://192.168.77.1:8080/boot.ipxe", nil},
		{"ipxe by rfc 3004 user class", newRequest(t, dhcpv4.MessageTypeDiscover, knownMAC, with(pxeOptions(iana.EFI_X86_64),
			[]dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptRFC3004UserClass([]string{"foo", "iPXE"}))})...), true, lab, "http://192.168.77.1:8080/boot.ipxe", nil},
		{"ipxe by option 175", newRequest(t, dhcpv4.MessageTypeDiscover, knownMAC, with(pxeOptions(iana.EFI_X86_64),
			[]dhcpv4.Modifier{dhcpv4.WithGeneric(dhcpv4.OptionEtherboot, []byte{0x13, 0x01, 0x01})})...), true, lab, "http://192.168.77.1:8080/boot.ipxe", nil},
		{"other user class is not ipxe", newRequest(t, dhcpv4.MessageTypeDiscover, knownMAC, with(pxeOptions(iana.EFI_X86_64),
			[]dhcpv4.Modifier{dhcpv4.WithUserClass("Tinkerbell", false)})...), true, lab, "ipxe.efi", nil},
		{"ipxe on an arch without binary", newRequest(t, dhcpv4.MessageTypeDiscover, knownMAC, with(pxeOptions(41), ipxeOptions())...), true,
			Config{ServerIP: lab.ServerIP}, "http://192.168.77.1:8080/boot.ipxe", nil},

		{"unknown host", newRequest(t, dhcpv4.MessageTypeDiscover, unknownMAC, pxeOptions(iana.EFI_X86_64)...), false, lab, "", ErrUnknownHost},
		{"unknown host with discovery", newRequest(t, dhcpv4.MessageTypeDiscover, unknownMAC, pxeOptions(iana.EFI_X86_64)...), false,
			Config{ServerIP: lab.ServerIP, Discovery: true}, "ipxe.efi", nil},

		{"request gets ack", newRequest(t, dhcpv4.MessageTypeRequest, knownMAC, pxeOptions(iana.EFI_X86_64)...), true, lab, "ipxe.efi", nil},
		{"request to us gets ack", newRequest(t, dhcpv4.MessageTypeRequest, knownMAC, with(pxeOptions(iana.EFI_X86_64),
			[]dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptServerIdentifier(lab.ServerIP))})...), true, lab, "ipxe.efi", nil},
		{"request to the site server", newRequest(t, dhcpv4.MessageTypeRequest, knownMAC, with(pxeOptions(iana.EFI_X86_64),
			[]dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(192, 168, 77, 2)))})...), true, lab, "", ErrOtherServer},
		{"inform", newRequest(t, dhcpv4.MessageTypeInform, knownMAC, pxeOptions(iana.EFI_X86_64)...), true, lab, "", ErrMessageType},
		{"release", newRequest(t, dhcpv4.MessageTypeRelease, knownMAC, pxeOptions(iana.EFI_X86_64)...), true, lab, "", ErrMessageType},
		{"no message type", newRequest(t, dhcpv4.MessageTypeNone, knownMAC, pxeOptions(iana.EFI_X86_64)...), true, lab, "", ErrMessageType},
		{"boot reply", newRequest(t, dhcpv4.MessageTypeDiscover, knownMAC, with(pxeOptions(iana.EFI_X86_64),
			[]dhcpv4.Modifier{func(d *dhcpv4.DHCPv4) { d.OpCode = dhcpv4.OpcodeBootReply }})...), true, lab, "", ErrMessageType},

		{"no vendor class", newRequest(t, dhcpv4.MessageTypeDiscover, knownMAC, dhcpv4.WithOption(dhcpv4.OptClientArch(iana.EFI_X86_64))), true, lab, "", ErrNotPXE},
		{"windows vendor class", newRequest(t, dhcpv4.MessageTypeDiscover, knownMAC, dhcpv4.WithOption(dhcpv4.OptClassIdentifier("MSFT 5.0")),
			dhcpv4.WithOption(dhcpv4.OptClientArch(iana.EFI_X86_64))), true, lab, "", ErrNotPXE},
		{"no arch", newRequest(t, dhcpv4.MessageTypeDiscover, knownMAC, dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient"))), true, lab, "", ErrNotPXE},
		{"malformed arch", newRequest(t, dhcpv4.MessageTypeDiscover, knownMAC, dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient")),
			dhcpv4.WithGeneric(dhcpv4.OptionClientSystemArchitectureType, []byte{7})), true, lab, "", ErrNotPXE},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := Reply(tt.req, tt.known, tt.cfg)
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Fatalf("Reply error = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				if resp != nil {
					t.Errorf("Reply returned a reply with error %v", err)
				}
				return
			}
			if diff := cmp.Diff(tt.want, resp.BootFileNameOption()); diff != "" {
				t.Errorf("boot file (-want +got):\n%s", diff)
			}
			checkReply(t, tt.req, resp, tt.cfg)
		})
	}
}

func TestReplyBadConfig(t *testing.T) {
	req := newRequest(t, dhcpv4.MessageTypeDiscover, knownMAC, pxeOptions(iana.EFI_X86_64)...)
	for _, cfg := range []Config{
		{},
		{ServerIP: net.IPv4zero},
		{ServerIP: net.ParseIP("2001:db8::1")},
		{ServerIP: net.IPv4(10, 0, 0, 1), HTTPPort: 70000},
	} {
		t.Run(fmt.Sprintf("%+v", cfg), func(t *testing.T) {
			resp, err := Reply(req, true, cfg)
			if err == nil || resp != nil {
				t.Fatalf("Reply = %v, %v; want an error", resp, err)
			}
		})
	}
}

// TestReplyLongBootFile: the file header field holds 127 bytes. A longer
// name is left out of it, since a truncated one would be a wrong one; it is
// whole in option 67.
func TestReplyLongBootFile(t *testing.T) {
	long := strings.Repeat("d", 120) + "/ipxe.efi"
	req := newRequest(t, dhcpv4.MessageTypeDiscover, knownMAC, pxeOptions(iana.EFI_X86_64)...)
	resp, err := Reply(req, true, Config{ServerIP: net.IPv4(10, 0, 0, 1), EFIFile: long})
	if err != nil {
		t.Fatal(err)
	}
	wire, err := dhcpv4.FromBytes(resp.ToBytes())
	if err != nil {
		t.Fatal(err)
	}
	got := [2]string{wire.BootFileName, wire.BootFileNameOption()}
	if diff := cmp.Diff([2]string{"", long}, got); diff != "" {
		t.Errorf("file field, option 67 (-want +got):\n%s", diff)
	}
}

// TestReplyRelay: a relayed request keeps giaddr and the relay's option 82.
func TestReplyRelay(t *testing.T) {
	agent := []byte{1, 4, 'p', 'o', 'r', 't'}
	req := newRequest(t, dhcpv4.MessageTypeDiscover, knownMAC, with(pxeOptions(iana.INTEL_X86PC), []dhcpv4.Modifier{
		dhcpv4.WithGatewayIP(net.IPv4(10, 1, 2, 1)),
		dhcpv4.WithGeneric(dhcpv4.OptionRelayAgentInformation, agent),
	})...)
	resp, err := Reply(req, true, labConfig())
	if err != nil {
		t.Fatal(err)
	}
	got := []string{resp.GatewayIPAddr.String(), fmt.Sprintf("% x", resp.Options.Get(dhcpv4.OptionRelayAgentInformation))}
	if diff := cmp.Diff([]string{"10.1.2.1", fmt.Sprintf("% x", agent)}, got); diff != "" {
		t.Errorf("giaddr, option 82 (-want +got):\n%s", diff)
	}
}

// checkReply asserts what every answer must carry, whatever the golden
// files say.
func checkReply(t *testing.T, req, resp *dhcpv4.DHCPv4, cfg Config) {
	t.Helper()
	server := cfg.ServerIP.To4()
	wantType := dhcpv4.MessageTypeOffer
	if req.MessageType() == dhcpv4.MessageTypeRequest {
		wantType = dhcpv4.MessageTypeAck
	}
	file := resp.BootFileNameOption()
	type summary struct {
		Op                     dhcpv4.OpcodeType
		Type                   dhcpv4.MessageType
		XID                    dhcpv4.TransactionID
		CHAddr, YIAddr, SIAddr string
		SName, ServerID        string
		Option43, Option97     []byte
		FileField              bool
	}
	got := summary{
		Op: resp.OpCode, Type: resp.MessageType(), XID: resp.TransactionID,
		CHAddr: resp.ClientHWAddr.String(), YIAddr: resp.YourIPAddr.String(), SIAddr: resp.ServerIPAddr.String(),
		SName: resp.ServerHostName, ServerID: resp.ServerIdentifier().String(),
		Option43: resp.Options.Get(dhcpv4.OptionVendorSpecificInformation), Option97: resp.Options.Get(dhcpv4.OptionClientMachineIdentifier),
		FileField: resp.BootFileName == file,
	}
	want := summary{
		Op: dhcpv4.OpcodeBootReply, Type: wantType, XID: req.TransactionID,
		CHAddr: req.ClientHWAddr.String(), YIAddr: "0.0.0.0", SIAddr: server.String(),
		SName: server.String(), ServerID: server.String(),
		Option43: []byte{6, 1, 8, 255}, Option97: req.Options.Get(dhcpv4.OptionClientMachineIdentifier),
		FileField: true,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("reply (-want +got):\n%s", diff)
	}
	if file == "" {
		t.Error("reply has no boot file (option 67)")
	}
	if c := resp.ClassIdentifier(); c != classPXE && c != classHTTP {
		t.Errorf("reply vendor class = %q", c)
	}
}

// goldenCase is one exchange of a golden file.
type goldenCase struct {
	name  string
	req   *dhcpv4.DHCPv4
	known bool
	cfg   Config
}

// TestReplyGolden renders the answer to every combination of architecture,
// iPXE or not, known host or not (with and without discovery) and message
// type into testdata/arch-*.golden. Run with -update to rewrite them.
func TestReplyGolden(t *testing.T) {
	archs := []iana.Arch{
		iana.INTEL_X86PC, iana.EFI_IA32, iana.EFI_X86_64, iana.EFI_BC, iana.EFI_ARM64,
		iana.EFI_X86_64_HTTP, iana.EFI_ARM64_HTTP, 41, // 41: a Raspberry Pi, not in the table
	}
	for _, arch := range archs {
		name := "arch-" + archName(arch)
		if _, ok := platformOf(arch); !ok {
			name = archName(arch) // already "arch-N"
		}
		t.Run(name, func(t *testing.T) {
			var cases []goldenCase
			for _, client := range []string{"firmware", "ipxe"} {
				for _, host := range []string{"known", "unknown", "unknown+discovery"} {
					for _, mt := range []dhcpv4.MessageType{dhcpv4.MessageTypeDiscover, dhcpv4.MessageTypeRequest} {
						mods := pxeOptions(arch)
						if client == "ipxe" {
							mods = with(mods, ipxeOptions())
						}
						if mt == dhcpv4.MessageTypeRequest {
							// The request to port 4011 comes from a client
							// that has its address.
							mods = append(mods, dhcpv4.WithClientIP(net.IPv4(192, 168, 77, 50)))
						}
						mac, cfg := knownMAC, labConfig()
						if host != "known" {
							mac = unknownMAC
						}
						cfg.Discovery = host == "unknown+discovery"
						cases = append(cases, goldenCase{
							name:  fmt.Sprintf("%s %s %s", client, host, mt),
							req:   newRequest(t, mt, mac, mods...),
							known: host == "known",
							cfg:   cfg,
						})
					}
				}
			}
			golden(t, name, cases)
		})
	}
}

// golden renders cases into testdata/name.golden, or compares them to it.
func golden(t *testing.T, name string, cases []goldenCase) {
	t.Helper()
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Generated by TestReplyGolden; rewrite with go test -run TestReplyGolden -update.\n")
	for _, c := range cases {
		fmt.Fprintf(&b, "\n=== %s\n", c.name)
		fmt.Fprintf(&b, "config:  %+v\n", c.cfg)
		fmt.Fprintf(&b, "known:   %v\n", c.known)
		fmt.Fprintf(&b, "request: %s\n", dumpRequest(c.req))
		resp, err := Reply(c.req, c.known, c.cfg)
		if err != nil {
			fmt.Fprintf(&b, "reply:   none: %v\n", err)
			continue
		}
		checkReply(t, c.req, resp, c.cfg)
		fmt.Fprintf(&b, "reply:   %v\n%s", resp.MessageType(), dumpReply(resp))
	}
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), b.String()); diff != "" {
		t.Errorf("%s (-want +got):\n%s", path, diff)
	}
}
