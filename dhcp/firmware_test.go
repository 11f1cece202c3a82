package dhcp

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

// The fixtures of testdata/firmware are the DHCP packets of real lab
// machines booting against `rackboot serve` (testdata/firmware/README.md
// says how they were captured, capture.sh recaptures them). Synthetic
// requests only prove what their author believed; these are what SeaBIOS's
// iPXE ROM, OVMF's iPXE EFI ROM, OVMF's own EDK2 PXE and HTTP boot clients,
// and the snponly.efi they chain, really send.

// captureServer is rackboot's address in the captures; captureConfig is
// what it served them with (rackboot serve's defaults: HTTP on 8080,
// snponly.efi for x86-64 UEFI, undionly.kpxe for BIOS).
var (
	captureServer = netip.MustParseAddr("192.168.77.1")
	captureConfig = Config{ServerIP: net.IP(captureServer.AsSlice()), HTTPPort: 8080, EFIFile: "snponly.efi"}
)

// exchange is what one client request of a capture must get from the
// decision and the server.
type exchange struct {
	Route string // "SRC > DST" as captured
	Type  string // the request's message type
	Arch  string // the architecture the decision reads (option 93)
	IPXE  bool   // the client says it is iPXE (user class, option 175)
	// The answer: its message type, boot file (option 67) and vendor class
	// (option 60); or Err, the reason for silence.
	Reply, File, Class string
	Err                error
}

// firmwareCapture is one pcap of testdata/firmware.
type firmwareCapture struct {
	name string
	// heard reports whether rackboot received a datagram sent to dst in
	// this capture (its port 67 was off during ovmf-edk2-bootserver).
	heard func(dst netip.AddrPort) bool
	want  []exchange // one per client request, in capture order
}

func heardAll(dst netip.AddrPort) bool {
	return dst.Port() == 67 && dst.Addr() == netip.AddrFrom4([4]byte{255, 255, 255, 255}) || dst.Addr() == captureServer
}

func heardUnicast(dst netip.AddrPort) bool { return dst.Addr() == captureServer }

const (
	scriptURL = "http://192.168.77.1:8080/boot.ipxe"
	fromNone  = "0.0.0.0:68 > 255.255.255.255:67"
)

var errOtherServer = fmt.Errorf("%w: 192.168.77.2", ErrOtherServer)

// firmwareCaptures lists the fixtures and what each request must get.
// Every client also exchanges DISCOVER/OFFER/REQUEST/ACK with the site's
// DHCP server (192.168.77.2); its REQUEST names that server in option 54,
// and the proxy must stay silent to it.
func firmwareCaptures() []firmwareCapture {
	ipxeOffer := func(arch string) exchange {
		return exchange{Route: fromNone, Type: "DISCOVER", Arch: arch, IPXE: true, Reply: "OFFER", File: scriptURL, Class: "PXEClient"}
	}
	ipxeToSite := func(arch string) exchange {
		return exchange{Route: fromNone, Type: "REQUEST", Arch: arch, IPXE: true, Err: errOtherServer}
	}
	edk2Offer := exchange{Route: fromNone, Type: "DISCOVER", Arch: "efi-x64", Reply: "OFFER", File: "snponly.efi", Class: "PXEClient"}
	edk2ToSite := exchange{Route: fromNone, Type: "REQUEST", Arch: "efi-x64", Err: errOtherServer}
	return []firmwareCapture{
		{
			// QEMU's iPXE ROM is iPXE from the start: the script at once.
			// It repeats its DISCOVER until an address comes, and asks no
			// ProxyDHCP request on port 4011: the offer's option 43
			// already carries the PXE options.
			name: "seabios-ipxe", heard: heardAll,
			want: []exchange{ipxeOffer("bios"), ipxeOffer("bios"), ipxeToSite("bios")},
		},
		{
			name: "ovmf-ipxe", heard: heardAll,
			want: []exchange{ipxeOffer("efi-x64"), ipxeOffer("efi-x64"), ipxeToSite("efi-x64")},
		},
		{
			// EDK2 takes the boot file of the proxy offer (option 43, bit
			// 3 of discovery control) and skips port 4011; the
			// snponly.efi it loads asks again, as iPXE.
			name: "ovmf-edk2-pxe", heard: heardAll,
			want: []exchange{edk2Offer, edk2ToSite, ipxeOffer("efi-x64"), ipxeToSite("efi-x64")},
		},
		{
			// UEFI HTTP boot: vendor class HTTPClient, arch 16; the answer
			// is a URL and says HTTPClient back. The iPXE it loads is an
			// ordinary x86-64 UEFI client.
			name: "ovmf-httpboot", heard: heardAll,
			want: []exchange{
				{Route: fromNone, Type: "DISCOVER", Arch: "efi-x64-http", Reply: "OFFER",
					File: "http://192.168.77.1:8080/nbp/snponly.efi", Class: "HTTPClient"},
				{Route: fromNone, Type: "REQUEST", Arch: "efi-x64-http", Err: errOtherServer},
				ipxeOffer("efi-x64"), ipxeToSite("efi-x64"),
			},
		},
		{
			// dnsmasq's proxy offer has no boot file, so EDK2 asks
			// dnsmasq's port 4011 from its own port 4011 (PXE 2.1 section
			// 2.2.5; no option 54), and dnsmasq's menu then sends it to
			// rackboot's port 4011 as boot server (option 43 sub-option 71,
			// PXE_BOOT_ITEM type 1). rackboot heard only that request;
			// the others are answered here as rackboot would if it had.
			name: "ovmf-edk2-bootserver", heard: heardUnicast,
			want: []exchange{
				edk2Offer, edk2ToSite,
				{Route: "192.168.77.128:4011 > 192.168.77.4:4011", Type: "REQUEST", Arch: "efi-x64", Reply: "ACK", File: "snponly.efi", Class: "PXEClient"},
				{Route: "192.168.77.128:4011 > 192.168.77.1:4011", Type: "REQUEST", Arch: "efi-x64", Reply: "ACK", File: "snponly.efi", Class: "PXEClient"},
				ipxeOffer("efi-x64"), ipxeToSite("efi-x64"),
			},
		},
	}
}

// capturedPacket is a datagram of a capture, decoded.
type capturedPacket struct {
	pcapDatagram
	msg *dhcpv4.DHCPv4
}

// isRequest reports a client's request: what the proxy has to decide on.
func (p capturedPacket) isRequest() bool { return p.msg.OpCode == dhcpv4.OpcodeBootRequest }

// loadCapture reads and decodes testdata/firmware/NAME.pcap.
func loadCapture(t testing.TB, name string) []capturedPacket {
	t.Helper()
	ds, err := readPcap(filepath.Join("testdata", "firmware", name+".pcap"))
	if err != nil {
		t.Fatal(err)
	}
	var out []capturedPacket
	for i, d := range ds {
		m, err := dhcpv4.FromBytes(d.payload)
		if err != nil {
			t.Fatalf("%s packet %d: %v", name, i+1, err)
		}
		out = append(out, capturedPacket{d, m})
	}
	return out
}

// captureHosts is the profiles of a capture: the machine that booted.
func captureHosts(pkts []capturedPacket) hostSet {
	h := hostSet{}
	for _, p := range pkts {
		if p.isRequest() {
			h[p.msg.ClientHWAddr.String()] = true
		}
	}
	return h
}

// TestFirmwareReply feeds every captured client request to the decision
// and checks the answer: architecture, message type, boot file or URL,
// vendor class, and what every answer carries (checkReply: siaddr, sname,
// option 54, option 43, option 97 mirrored, yiaddr 0), plus option 61.
func TestFirmwareReply(t *testing.T) {
	for _, fc := range firmwareCaptures() {
		t.Run(fc.name, func(t *testing.T) {
			pkts := loadCapture(t, fc.name)
			var got []exchange
			for _, p := range pkts {
				if !p.isRequest() {
					continue
				}
				req := p.msg
				e := exchange{
					Route: fmt.Sprintf("%v > %v", p.src, p.dst),
					Type:  req.MessageType().String(),
					Arch:  "none",
					IPXE:  isIPXE(req),
				}
				if a, ok := clientArch(req); ok {
					e.Arch = archName(a)
				}
				resp, err := Reply(req, true, captureConfig)
				if err != nil {
					e.Err = err
					got = append(got, e)
					continue
				}
				e.Reply, e.File, e.Class = resp.MessageType().String(), resp.BootFileNameOption(), resp.ClassIdentifier()
				got = append(got, e)
				checkReply(t, req, resp, captureConfig)
				if diff := cmp.Diff(req.Options.Get(dhcpv4.OptionClientIdentifier), resp.Options.Get(dhcpv4.OptionClientIdentifier)); diff != "" {
					t.Errorf("%s: option 61 not mirrored (-request +reply):\n%s", e.Route, diff)
				}
				if resp.MessageType() == dhcpv4.MessageTypeAck && !resp.ClientIPAddr.Equal(req.ClientIPAddr) {
					t.Errorf("%s: ACK ciaddr %v, want the request's %v", e.Route, resp.ClientIPAddr, req.ClientIPAddr)
				}
			}
			errText := cmp.Comparer(func(a, b error) bool { return fmt.Sprint(a) == fmt.Sprint(b) })
			if diff := cmp.Diff(fc.want, got, errText); diff != "" {
				t.Errorf("exchanges (-want +got):\n%s", diff)
			}
			for _, e := range got {
				if e.Err != nil && !errors.Is(e.Err, ErrOtherServer) {
					t.Errorf("%s: silent for %v; only requests to the site server should be", e.Route, e.Err)
				}
			}
		})
	}
}

// TestFirmwareCaptured compares what rackboot sent in each capture with
// what the decision answers now, byte for byte: the same answers, in the
// same order, to the requests rackboot received, and silence to the
// others. A change of the decision shows up here; then recapture (or
// explain in testdata/firmware/README.md).
func TestFirmwareCaptured(t *testing.T) {
	for _, fc := range firmwareCaptures() {
		t.Run(fc.name, func(t *testing.T) {
			pkts := loadCapture(t, fc.name)
			// route is where an answer went: from the port the request
			// came to, to the address replyAddr picks for its sender.
			type route struct{ From, To string }
			var sent, decided [][]byte
			var sentRoutes, wantRoutes []route
			for _, p := range pkts {
				switch {
				case !p.isRequest():
					if p.src.Addr() == captureServer {
						sent = append(sent, p.payload)
						sentRoutes = append(sentRoutes, route{fmt.Sprint(p.src.Port()), p.dst.String()})
					}
				case fc.heard(p.dst):
					if resp, err := Reply(p.msg, true, captureConfig); err == nil {
						decided = append(decided, resp.ToBytes())
						to := replyAddr(net.UDPAddrFromAddrPort(p.src)).String()
						wantRoutes = append(wantRoutes, route{fmt.Sprint(p.dst.Port()), to})
					}
				}
			}
			if len(sent) == 0 {
				t.Fatal("rackboot answered nothing in the capture")
			}
			if len(sent) != len(decided) {
				t.Fatalf("rackboot sent %d answers in the capture; the decision answers %d of the requests it heard", len(sent), len(decided))
			}
			for i := range sent {
				if !bytes.Equal(sent[i], decided[i]) {
					was, _ := dhcpv4.FromBytes(sent[i])
					now, _ := dhcpv4.FromBytes(decided[i])
					t.Errorf("answer %d differs (-captured +now):\n%s", i+1, cmp.Diff(dumpReply(was), dumpReply(now)))
				}
			}
			if diff := cmp.Diff(wantRoutes, sentRoutes); diff != "" {
				t.Errorf("answers sent from port, to (-replyAddr +captured):\n%s", diff)
			}
		})
	}
}

// TestFirmwareServe replays each capture's client requests to a real
// Server over loopback UDP, in capture order, and checks that the answers
// that come back are the decision's, byte for byte, in order, with the
// kind and architecture OnReply reports; a probe request sent last proves
// the silences (Serve handles datagrams in order). Which port a request
// was captured on does not matter: Serve answers the same on 67 and 4011.
func TestFirmwareServe(t *testing.T) {
	probeXID := dhcpv4.TransactionID{'p', 'r', 'o', 'b'}
	probe := newRequest(t, dhcpv4.MessageTypeDiscover, knownMAC, with(pxeOptions(iana.INTEL_X86PC),
		[]dhcpv4.Modifier{dhcpv4.WithTransactionID(probeXID)})...)
	for _, fc := range firmwareCaptures() {
		t.Run(fc.name, func(t *testing.T) {
			pkts := loadCapture(t, fc.name)
			hosts := captureHosts(pkts)
			hosts[knownMAC.String()] = true
			ts := startServer(t, &Server{Config: captureConfig, Hosts: hosts}, nil)
			c := newClient(t)

			type answer struct {
				Kind, Arch string
				Bytes      []byte
			}
			var want []answer
			for _, p := range pkts {
				if !p.isRequest() {
					continue
				}
				send(t, c, ts.addr, p.payload)
				resp, err := Reply(p.msg, true, captureConfig)
				if err != nil {
					continue
				}
				a, _ := clientArch(p.msg)
				want = append(want, answer{strings.ToLower(resp.MessageType().String()), archName(a), resp.ToBytes()})
			}
			send(t, c, ts.addr, probe.ToBytes())

			var got []answer
			for {
				resp, _ := receive(t, c)
				r := <-ts.replies
				if resp.TransactionID == probeXID {
					break
				}
				got = append(got, answer{r.Kind, r.Arch, resp.ToBytes()})
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("answers (-want +got):\n%s", diff)
			}
		})
	}
}

// TestFirmwareGolden renders each capture into testdata/firmware/NAME.golden:
// every packet in order, and for each client request the facts the
// decision reads and the answer it gives now. Run with -update to rewrite.
func TestFirmwareGolden(t *testing.T) {
	for _, fc := range firmwareCaptures() {
		t.Run(fc.name, func(t *testing.T) {
			pkts := loadCapture(t, fc.name)
			var b bytes.Buffer
			fmt.Fprintf(&b, "# Generated by TestFirmwareGolden from %s.pcap; rewrite with go test -run TestFirmwareGolden -update.\n", fc.name)
			fmt.Fprintf(&b, "# Each packet as captured; each client request with the answer Reply gives it now\n")
			fmt.Fprintf(&b, "# (config %+v, the client known).\n", captureConfig)
			for i, p := range pkts {
				n := i + 1
				fmt.Fprintf(&b, "\n=== #%d +%.3fs %v > %v %v %v xid %v\n", n, p.at.Seconds(), p.src, p.dst,
					p.msg.OpCode, p.msg.MessageType(), p.msg.TransactionID)
				if !p.isRequest() {
					fmt.Fprintf(&b, "captured: %s\n", capturedAnswer(p))
					continue
				}
				fmt.Fprintf(&b, "request: %s\n", firmwareRequest(p.msg))
				if !fc.heard(p.dst) {
					fmt.Fprintf(&b, "         (rackboot did not receive it in this capture)\n")
				}
				resp, err := Reply(p.msg, true, captureConfig)
				if err != nil {
					fmt.Fprintf(&b, "reply:   none: %v\n", err)
					continue
				}
				fmt.Fprintf(&b, "reply:   %v\n%s", resp.MessageType(), dumpReply(resp))
			}
			path := filepath.Join("testdata", "firmware", fc.name+".golden")
			if *update {
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
		})
	}
}

// firmwareRequest is dumpRequest with the options a firmware request
// carries beyond the synthetic ones: 43 (EDK2's boot item), 54, 61 and 94.
func firmwareRequest(req *dhcpv4.DHCPv4) string {
	var b strings.Builder
	b.WriteString(dumpRequest(req))
	if req.Flags != 0 {
		fmt.Fprintf(&b, " flags=%s", req.FlagsToString())
	}
	for _, code := range []uint8{43, 54, 61, 94} {
		if v := req.Options.Get(dhcpv4.GenericOptionCode(code)); v != nil {
			fmt.Fprintf(&b, " %s=%s", optionName(code), optionValue(code, v))
		}
	}
	return b.String()
}

// capturedAnswer summarises a server's answer in a capture: who sent it
// and what the client takes from it.
func capturedAnswer(p capturedPacket) string {
	m := p.msg
	who := "site DHCP server"
	switch {
	case p.src.Addr() == captureServer:
		who = "rackboot"
	case p.src.Addr() == netip.AddrFrom4([4]byte{192, 168, 77, 4}):
		who = "dnsmasq"
	}
	s := fmt.Sprintf("%s: yiaddr=%v siaddr=%v file=%q", who, m.YourIPAddr, m.ServerIPAddr, m.BootFileName)
	for _, code := range []uint8{43, 54, 60, 67} {
		if v := m.Options.Get(dhcpv4.GenericOptionCode(code)); v != nil {
			s += fmt.Sprintf(" %s=%s", optionName(code), optionValue(code, v))
		}
	}
	return s
}

// firmwareRequests returns the client requests of every capture, as
// received, for seeding fuzzers.
func firmwareRequests(t testing.TB) [][]byte {
	t.Helper()
	var out [][]byte
	for _, fc := range firmwareCaptures() {
		for _, p := range loadCapture(t, fc.name) {
			if p.isRequest() {
				out = append(out, p.payload)
			}
		}
	}
	return out
}

// TestParsePcap: the reader takes both byte orders and both time units,
// and refuses a fixture that is not whole.
func TestParsePcap(t *testing.T) {
	orig, err := os.ReadFile(filepath.Join("testdata", "firmware", "seabios-ipxe.pcap"))
	if err != nil {
		t.Fatal(err)
	}
	base, err := parsePcap(orig)
	if err != nil {
		t.Fatal(err)
	}
	if len(base) == 0 {
		t.Fatal("no datagrams")
	}
	// swapped rewrites the capture big-endian, as a big-endian machine's
	// tcpdump writes it; nano makes it a nanosecond capture.
	swapped := func(b []byte, nano bool) []byte {
		b = bytes.Clone(b)
		sw32 := func(p []byte) { p[0], p[1], p[2], p[3] = p[3], p[2], p[1], p[0] }
		sw16 := func(p []byte) { p[0], p[1] = p[1], p[0] }
		sw32(b[0:])
		sw16(b[4:])
		sw16(b[6:])
		for _, o := range []int{8, 12, 16, 20} {
			sw32(b[o:])
		}
		for rest := b[24:]; len(rest) >= 16; {
			incl := int(rest[8]) | int(rest[9])<<8 | int(rest[10])<<16 | int(rest[11])<<24
			if nano {
				usec := uint32(rest[4]) | uint32(rest[5])<<8 | uint32(rest[6])<<16 | uint32(rest[7])<<24
				ns := usec * 1000
				rest[4], rest[5], rest[6], rest[7] = byte(ns), byte(ns>>8), byte(ns>>16), byte(ns>>24)
			}
			for _, o := range []int{0, 4, 8, 12} {
				sw32(rest[o:])
			}
			rest = rest[16+incl:]
		}
		if nano {
			copy(b, []byte{0xa1, 0xb2, 0x3c, 0x4d})
		}
		return b
	}
	tests := []struct {
		name    string
		b       []byte
		wantErr bool
	}{
		{"little-endian", orig, false},
		{"big-endian", swapped(orig, false), false},
		{"big-endian nanoseconds", swapped(orig, true), false},
		{"truncated", orig[:len(orig)-1], true},
		{"short header", orig[:20], true},
		{"not pcap", append([]byte("pcapng!!"), orig[8:]...), true},
		{"other link type", append(append(bytes.Clone(orig[:20]), 113, 0, 0, 0), orig[24:]...), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parsePcap(tt.b)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parsePcap error = %v, want error: %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if diff := cmp.Diff(base, got, cmp.AllowUnexported(pcapDatagram{}), cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
				t.Errorf("datagrams (-little-endian +got):\n%s", diff)
			}
		})
	}
	if base[len(base)-1].at <= 0 || base[len(base)-1].at > time.Minute {
		t.Errorf("last datagram at %v: times are not relative to the first", base[len(base)-1].at)
	}
}
