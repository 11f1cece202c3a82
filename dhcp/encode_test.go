package dhcp

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

// slowAnswer is the answer the loop sent before it had a fast path:
// decode, Reply, encode. nil when there is none.
func slowAnswer(b []byte, hosts Hosts, cfg Config) (*dhcpv4.DHCPv4, []byte) {
	req, err := dhcpv4.FromBytes(b)
	if err != nil {
		return nil, nil
	}
	known := hosts != nil && hosts.Known(req.ClientHWAddr)
	resp, err := Reply(req, known, cfg)
	if err != nil {
		return req, nil
	}
	return req, resp.ToBytes()
}

// edit changes the wire bytes of a request.
func edit(t testing.TB, req *dhcpv4.DHCPv4, f func([]byte) []byte) []byte {
	t.Helper()
	return f(req.ToBytes())
}

// options returns the options of an encoded message, up to and without
// the End option.
func optionsEnd(b []byte) int {
	for i := offOptions; i < len(b); {
		switch b[i] {
		case 0:
			i++
		case 255:
			return i
		default:
			i += 2 + int(b[i+1])
		}
	}
	return len(b)
}

type fastCase struct {
	name     string
	b        []byte
	cfg      Config
	wantFast bool // the fast path answers; otherwise the slow path decides
}

func fastCases(t testing.TB) []fastCase {
	lab := labConfig()
	disc := Config{ServerIP: lab.ServerIP, ARM64File: "snp-arm64.efi", Discovery: true}
	req := func(mt dhcpv4.MessageType, mac net.HardwareAddr, mods ...dhcpv4.Modifier) []byte {
		return newRequest(t, mt, mac, mods...).ToBytes()
	}
	d, r := dhcpv4.MessageTypeDiscover, dhcpv4.MessageTypeRequest
	relay := []dhcpv4.Modifier{
		dhcpv4.WithGatewayIP(net.IPv4(10, 1, 2, 1)),
		dhcpv4.WithGeneric(dhcpv4.OptionRelayAgentInformation, []byte{1, 4, 'p', 'o', 'r', 't', 2, 2, 0, 7}),
	}
	clientID := []dhcpv4.Modifier{dhcpv4.WithGeneric(dhcpv4.OptionClientIdentifier, append([]byte{1}, knownMAC...))}
	noUUID := []dhcpv4.Modifier{
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00000:UNDI:002001")),
		dhcpv4.WithOption(dhcpv4.OptClientArch(iana.INTEL_X86PC)),
	}
	bios := pxeOptions(iana.INTEL_X86PC)
	long := strings.Repeat("d", 120) + "/ipxe.efi"
	mac16 := net.HardwareAddr(bytes.Repeat([]byte{0xab}, 16))

	return []fastCase{
		{"bios", req(d, knownMAC, bios...), lab, true},
		{"efi x64", req(d, knownMAC, pxeOptions(iana.EFI_X86_64)...), lab, true},
		{"efi bc", req(d, knownMAC, pxeOptions(iana.EFI_BC)...), lab, true},
		{"arm64", req(d, knownMAC, pxeOptions(iana.EFI_ARM64)...), lab, true},
		{"arm64 not configured", req(d, knownMAC, pxeOptions(iana.EFI_ARM64)...), Config{ServerIP: lab.ServerIP}, false},
		{"http x64", req(d, knownMAC, pxeOptions(iana.EFI_X86_64_HTTP)...), lab, true},
		{"http arm64 on port 80", req(d, knownMAC, pxeOptions(iana.EFI_ARM64_HTTP)...),
			Config{ServerIP: lab.ServerIP, HTTPPort: 80, ARM64File: "snp-arm64.efi"}, true},
		{"ia32", req(d, knownMAC, pxeOptions(iana.EFI_IA32)...), lab, false},
		{"arch not in the table", req(d, knownMAC, pxeOptions(41)...), lab, false},
		{"several archs", req(d, knownMAC, with(bios, []dhcpv4.Modifier{
			dhcpv4.WithOption(dhcpv4.OptClientArch(iana.EFI_X86_64, iana.INTEL_X86PC))})...), lab, true},
		{"long boot file", req(d, knownMAC, pxeOptions(iana.EFI_X86_64)...), Config{ServerIP: lab.ServerIP, EFIFile: long}, true},

		{"ipxe", req(d, knownMAC, with(bios, ipxeOptions())...), lab, true},
		{"ipxe by option 175 alone", req(d, knownMAC, with(pxeOptions(iana.EFI_X86_64), []dhcpv4.Modifier{
			dhcpv4.WithGeneric(dhcpv4.OptionEtherboot, []byte{0x13, 0x01, 0x01})})...), lab, true},
		{"ipxe by empty option 175", req(d, knownMAC, with(pxeOptions(iana.EFI_X86_64), []dhcpv4.Modifier{
			dhcpv4.WithGeneric(dhcpv4.OptionEtherboot, nil)})...), lab, true},
		{"ipxe by raw user class alone", req(d, knownMAC, with(bios, []dhcpv4.Modifier{dhcpv4.WithUserClass("iPXE", false)})...), lab, false},
		{"ipxe by rfc 3004 user class", req(d, knownMAC, with(bios, []dhcpv4.Modifier{
			dhcpv4.WithOption(dhcpv4.OptRFC3004UserClass([]string{"foo", "iPXE"}))})...), lab, false},
		{"other user class", req(d, knownMAC, with(bios, []dhcpv4.Modifier{dhcpv4.WithUserClass("Tinkerbell", false)})...), lab, false},
		{"ipxe on an arch not in the table", req(d, knownMAC, with(pxeOptions(41), ipxeOptions())...), lab, false},

		{"request", req(r, knownMAC, with(pxeOptions(iana.EFI_X86_64), []dhcpv4.Modifier{
			dhcpv4.WithClientIP(net.IPv4(192, 168, 77, 50))})...), lab, true},
		{"ipxe request", req(r, knownMAC, with(bios, ipxeOptions(), []dhcpv4.Modifier{
			dhcpv4.WithClientIP(net.IPv4(192, 168, 77, 50))})...), lab, true},
		{"request to us", req(r, knownMAC, with(pxeOptions(iana.EFI_X86_64), []dhcpv4.Modifier{
			dhcpv4.WithOption(dhcpv4.OptServerIdentifier(lab.ServerIP))})...), lab, true},
		{"request to the site server", req(r, knownMAC, with(pxeOptions(iana.EFI_X86_64), []dhcpv4.Modifier{
			dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(192, 168, 77, 2)))})...), lab, false},
		{"discover with a server identifier", req(d, knownMAC, with(bios, []dhcpv4.Modifier{
			dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(192, 168, 77, 2)))})...), lab, true},

		{"unknown host", req(d, unknownMAC, bios...), lab, false},
		{"unknown host with discovery", req(d, unknownMAC, bios...), disc, true},

		{"relay", req(d, knownMAC, with(bios, relay)...), lab, true},
		{"relay, client id", req(d, knownMAC, with(bios, relay, clientID)...), lab, true},
		{"client id", req(d, knownMAC, with(bios, clientID)...), lab, true},
		{"no uuid", req(d, knownMAC, noUUID...), lab, true},
		{"no uuid, client id, relay", req(d, knownMAC, with(noUUID, clientID, relay)...), lab, true},
		{"empty uuid", req(d, knownMAC, with(noUUID, []dhcpv4.Modifier{
			dhcpv4.WithGeneric(dhcpv4.OptionClientMachineIdentifier, nil)})...), lab, true},
		{"255-byte relay information", req(d, knownMAC, with(bios, []dhcpv4.Modifier{
			dhcpv4.WithGeneric(dhcpv4.OptionRelayAgentInformation, bytes.Repeat([]byte{7}, 255))})...), lab, true},
		{"unicast flag", req(d, knownMAC, with(bios, []dhcpv4.Modifier{dhcpv4.WithBroadcast(false)})...), lab, true},
		{"16-byte chaddr", req(d, mac16, bios...), disc, true},
		{"hlen 20", edit(t, newRequest(t, d, knownMAC, bios...), func(b []byte) []byte { b[offHLen] = 20; return b }), disc, true},
		{"hlen 0", edit(t, newRequest(t, d, knownMAC, bios...), func(b []byte) []byte { b[offHLen] = 0; return b }), disc, true},
		{"hlen 0, no discovery", edit(t, newRequest(t, d, knownMAC, bios...), func(b []byte) []byte { b[offHLen] = 0; return b }), lab, false},
		{"htype 6, hops 3, secs 9", edit(t, newRequest(t, d, knownMAC, bios...), func(b []byte) []byte {
			b[offHType], b[3], b[9] = 6, 3, 9
			return b
		}), lab, true},
		{"discover with ciaddr", req(d, knownMAC, with(bios, []dhcpv4.Modifier{dhcpv4.WithClientIP(net.IPv4(10, 0, 0, 9))})...), lab, true},
		{"pad options", edit(t, newRequest(t, d, knownMAC, bios...), func(b []byte) []byte {
			return append(append(b[:offOptions:offOptions], 0, 0, 0), b[offOptions:]...)
		}), lab, true},
		{"bytes after end", edit(t, newRequest(t, d, knownMAC, bios...), func(b []byte) []byte {
			return append(b[:optionsEnd(b)+1], 53, 1, 7, 97, 200)
		}), lab, true},
		{"option overload", req(d, knownMAC, with(bios, []dhcpv4.Modifier{dhcpv4.WithGeneric(dhcpv4.OptionOptionOverload, []byte{3})})...), lab, true},

		{"uuid twice", edit(t, newRequest(t, d, knownMAC, noUUID...), func(b []byte) []byte {
			end := optionsEnd(b)
			return append(append(b[:end:end], 97, 3, 0, 1, 2, 97, 2, 3, 4), 255)
		}), lab, false},
		{"message type twice", edit(t, newRequest(t, d, knownMAC, bios...), func(b []byte) []byte {
			end := optionsEnd(b)
			return append(append(b[:end:end], 53, 1, 1), 255)
		}), lab, false},
		{"no end option", edit(t, newRequest(t, d, knownMAC, bios...), func(b []byte) []byte { return b[:optionsEnd(b)] }), lab, false},
		{"truncated option", edit(t, newRequest(t, d, knownMAC, bios...), func(b []byte) []byte {
			end := optionsEnd(b)
			return append(b[:end:end], 97, 17, 0, 1)
		}), lab, false},
		{"no cookie", edit(t, newRequest(t, d, knownMAC, bios...), func(b []byte) []byte { b[offOptions-1] = 0; return b }), lab, false},
		{"header only", edit(t, newRequest(t, d, knownMAC, bios...), func(b []byte) []byte { return b[:offOptions-1] }), lab, false},
		{"boot reply", edit(t, newRequest(t, d, knownMAC, bios...), func(b []byte) []byte { b[0] = 2; return b }), lab, false},
		{"inform", req(dhcpv4.MessageTypeInform, knownMAC, bios...), lab, false},
		{"plain dhcp client", req(d, knownMAC, dhcpv4.WithRequestedOptions(dhcpv4.OptionRouter)), lab, false},
		{"no arch", req(d, knownMAC, dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient"))), lab, false},
		{"one-byte arch", req(d, knownMAC, dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient")),
			dhcpv4.WithGeneric(dhcpv4.OptionClientSystemArchitectureType, []byte{0})), lab, false},
		{"three-byte arch", req(d, knownMAC, dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient")),
			dhcpv4.WithGeneric(dhcpv4.OptionClientSystemArchitectureType, []byte{0, 7, 0})), lab, false},
		{"two-byte message type", edit(t, newRequest(t, d, knownMAC, bios...), func(b []byte) []byte {
			end := optionsEnd(b)
			b = append(b[:end:end], 255)
			i := bytes.Index(b[offOptions:], []byte{53, 1, 1}) + offOptions
			return append(append(b[:i:i], 53, 2, 1, 1), b[i+3:]...)
		}), lab, false},
		{"garbage", []byte("not a dhcp packet"), lab, false},
		{"empty", nil, lab, false},
	}
}

// TestFastPathIdentical: whatever the loop answers by its fast path is
// byte for byte what decoding, Reply and ToBytes give, and the fast path
// takes the common requests. The table runs twice through one handler and
// one buffer, so that nothing of one answer leaks into the next.
func TestFastPathIdentical(t *testing.T) {
	cases := fastCases(t)
	srv := &Server{Hosts: hostSet{knownMAC.String(): true}}
	handlers := map[string]*handler{}
	var buf []byte
	for round := range 2 {
		for _, tc := range cases {
			t.Run(fmt.Sprintf("%s/%d", tc.name, round), func(t *testing.T) {
				cfg := tc.cfg.withDefaults()
				key := fmt.Sprintf("%+v", cfg)
				h := handlers[key]
				if h == nil {
					h = newHandler(srv, cfg, slog.New(slog.DiscardHandler))
					handlers[key] = h
				}
				peer := &net.UDPAddr{IP: net.IPv4(10, 1, 2, 1), Port: 67}
				out, a, ok := h.handle(datagram{b: tc.b, ifIndex: 3, peer: peer}, buf)
				if a.fast {
					buf = out.b
				}
				req, want := slowAnswer(tc.b, srv.Hosts, cfg)
				if ok != (want != nil) {
					t.Fatalf("handle answered: %v; slow path answered: %v", ok, want != nil)
				}
				if a.fast != tc.wantFast {
					t.Errorf("fast path taken: %v, want %v", a.fast, tc.wantFast)
				}
				if !ok {
					return
				}
				if diff := cmp.Diff(fmt.Sprintf("% x", want), fmt.Sprintf("% x", out.b)); diff != "" {
					t.Errorf("answer bytes (-slow +handle):\n%s", diff)
				}
				resp, err := dhcpv4.FromBytes(want)
				if err != nil {
					t.Fatal(err)
				}
				arch, _ := clientArch(req)
				type report struct{ Kind, Path, Arch, MAC, XID, Dst string }
				// MessageType's String is "OFFER" or "ACK".
				wantReport := report{strings.ToLower(resp.MessageType().String()), resp.BootFileNameOption(), archName(arch),
					req.ClientHWAddr.String(), req.TransactionID.String(), "10.1.2.1:67"}
				got := report{a.kind, a.path, a.c.arch, net.HardwareAddr(a.c.mac[:a.c.macLen]).String(), a.c.xid.String(), out.dst.String()}
				if diff := cmp.Diff(wantReport, got); diff != "" {
					t.Errorf("report (-want +got):\n%s", diff)
				}
				if out.ifIndex != 3 {
					t.Errorf("answer through interface %d, want 3 (the arriving one)", out.ifIndex)
				}
			})
		}
	}
}

// FuzzFastPath: for any datagram, the loop answers exactly when the slow
// path does, with the same bytes.
func FuzzFastPath(f *testing.F) {
	limitMinimizing(f)
	for _, tc := range fastCases(f) {
		f.Add(tc.b)
	}
	for _, b := range firmwareRequests(f) {
		f.Add(b)
	}
	srv := &Server{Hosts: hostSet{knownMAC.String(): true}}
	var hs []*handler
	for _, cfg := range []Config{labConfig(), {ServerIP: net.IPv4(10, 0, 0, 1), Discovery: true}} {
		hs = append(hs, newHandler(srv, cfg.withDefaults(), slog.New(slog.DiscardHandler)))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, h := range hs {
			out, _, ok := h.handle(datagram{b: b, peer: &net.UDPAddr{IP: net.IPv4zero, Port: 68}}, nil)
			_, want := slowAnswer(b, srv.Hosts, h.cfg)
			if ok != (want != nil) {
				t.Fatalf("handle answered: %v; slow path answered: %v", ok, want != nil)
			}
			if ok && !bytes.Equal(out.b, want) {
				t.Fatalf("answer\n% x\nwant\n% x", out.b, want)
			}
		}
	})
}

// BenchmarkHandle is the decision and encoding of one answer to a relayed
// BIOS DISCOVER: the loop's fast path, and the slow path it replaces.
func BenchmarkHandle(b *testing.B) {
	pkt := newRequest(b, dhcpv4.MessageTypeDiscover, knownMAC, with(pxeOptions(iana.INTEL_X86PC), []dhcpv4.Modifier{
		dhcpv4.WithGatewayIP(net.IPv4(127, 0, 0, 1))})...).ToBytes()
	cfg := Config{ServerIP: net.IPv4(192, 168, 77, 1), Discovery: true}.withDefaults()
	peer := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 67}
	b.Run("fast", func(b *testing.B) {
		h := newHandler(&Server{}, cfg, slog.New(slog.DiscardHandler))
		var buf []byte
		b.ReportAllocs()
		for b.Loop() {
			out, a, ok := h.handle(datagram{b: pkt, peer: peer}, buf)
			if !ok || !a.fast {
				b.Fatal("not answered by the fast path")
			}
			buf = out.b
		}
	})
	b.Run("slow", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, out := slowAnswer(pkt, nil, cfg); out == nil {
				b.Fatal("not answered")
			}
		}
	})
}
