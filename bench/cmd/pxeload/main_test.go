package main

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/rackboot/rackboot/dhcp"
)

// discover is what a server reads from one of pxeload's packets.
type discover struct {
	Op, Type   string
	XID        uint32
	MAC, Class string
	Arch       string
	GUID       []byte
	GIAddr     string
	Broadcast  bool
	NDI        []byte
}

func decode(t *testing.T, b []byte) discover {
	t.Helper()
	m, err := dhcpv4.FromBytes(b)
	if err != nil {
		t.Fatalf("the DISCOVER does not parse: %v", err)
	}
	return discover{
		Op: m.OpCode.String(), Type: m.MessageType().String(), XID: uint32FromXID(m.TransactionID),
		MAC: m.ClientHWAddr.String(), Class: m.ClassIdentifier(), Arch: m.ClientArch()[0].String(),
		GUID: m.Options.Get(dhcpv4.OptionClientMachineIdentifier), GIAddr: m.GatewayIPAddr.String(),
		Broadcast: m.IsBroadcast(), NDI: m.Options.Get(dhcpv4.OptionClientNetworkInterfaceIdentifier),
	}
}

func uint32FromXID(x dhcpv4.TransactionID) uint32 {
	return uint32(x[0])<<24 | uint32(x[1])<<16 | uint32(x[2])<<8 | uint32(x[3])
}

func TestTemplate(t *testing.T) {
	mac := net.HardwareAddr{0x52, 0x54, 0x01, 0x00, 0x01, 0x02}
	guid := append([]byte{0}, []byte("rbbench-")...)
	guid = append(guid, 0x52, 0x54, 0x01, 0x00, 0x01, 0x02, 0xbe, 0xef)
	tests := []struct {
		name  string
		arch  uint16
		relay net.IP
		want  discover
	}{
		{"bios broadcast", 0, nil, discover{Op: "BootRequest", Type: "DISCOVER", XID: 0xdeadbeef, MAC: mac.String(),
			Class: "PXEClient:Arch:00000:UNDI:002001", Arch: "Intel x86PC", GUID: guid, GIAddr: "0.0.0.0", Broadcast: true, NDI: []byte{1, 2, 1}}},
		{"uefi relay", 7, net.IPv4(192, 0, 2, 3), discover{Op: "BootRequest", Type: "DISCOVER", XID: 0xdeadbeef, MAC: mac.String(),
			Class: "PXEClient:Arch:00007:UNDI:003016", Arch: "EFI x86-64", GUID: guid, GIAddr: "192.0.2.3", NDI: []byte{1, 2, 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			buf := make([]byte, 1500)
			// Fill twice: the second packet must not keep anything of
			// the first.
			pxeTemplate(tt.arch, tt.relay).fill(buf, 1, net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
			n := pxeTemplate(tt.arch, tt.relay).fill(buf, 0xdeadbeef, mac)
			if diff := cmp.Diff(tt.want, decode(t, buf[:n])); diff != "" {
				t.Errorf("DISCOVER (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseAnswer(t *testing.T) {
	req, err := dhcpv4.NewDiscovery(net.HardwareAddr{2, 0, 0, 0, 0, 1})
	if err != nil {
		t.Fatal(err)
	}
	offer, err := dhcpv4.NewReplyFromRequest(req, dhcpv4.WithMessageType(dhcpv4.MessageTypeOffer))
	if err != nil {
		t.Fatal(err)
	}
	ob := offer.ToBytes()
	tests := []struct {
		name   string
		b      []byte
		want   answer
		wantOK bool
	}{
		{"offer", ob, answer{xid: uint32FromXID(req.TransactionID), msgType: msgOffer}, true},
		{"request is not an answer", req.ToBytes(), answer{}, false},
		{"truncated header", ob[:100], answer{}, false},
		{"no message type", append(append([]byte{}, ob[:optionsOff]...), optEnd), answer{}, false},
		{"option overruns the packet", append(append([]byte{}, ob[:optionsOff]...), optMessageType, 9, 2), answer{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parseAnswer(tt.b)
			if ok != tt.wantOK || got != tt.want {
				t.Errorf("parseAnswer = %+v, %v; want %+v, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func FuzzParseAnswer(f *testing.F) {
	f.Add(pxeTemplate(0, nil).b)
	f.Add([]byte{2})
	f.Fuzz(func(t *testing.T, b []byte) {
		if a, ok := parseAnswer(b); ok && a.msgType == 0 {
			t.Errorf("ok answer without message type: %+v", a)
		}
	})
}

// TestRunAgainstRackboot drives rackboot's proxy over loopback in relay
// mode and expects every DISCOVER answered.
func TestRunAgainstRackboot(t *testing.T) {
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dhcp.Server{Config: dhcp.Config{ServerIP: net.IPv4(127, 0, 0, 1), Discovery: true}, Log: slog.New(slog.DiscardHandler)}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, conn) }()
	defer func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()

	macs, err := generateMACs("52:54:01", 50)
	if err != nil {
		t.Fatal(err)
	}
	lo := netip.MustParseAddr("127.0.0.1")
	s, err := run(ctx, config{
		mode: "relay", server: lo, local: lo, srcPort: -1, dstPort: conn.LocalAddr().(*net.UDPAddr).Port,
		rate: 2000, duration: 250 * time.Millisecond, timeout: time.Second, wait: 200 * time.Millisecond,
		clients: macs, arches: []uint16{0, 7, 9}, rcvbuf: 1 << 20,
	})
	if err != nil {
		t.Fatal(err)
	}
	if s.sent != 501 || s.answered != s.sent || s.sendErrors != 0 || s.foreign != 0 {
		t.Errorf("sent %d, answered %d, send errors %d, foreign %d; want 501 sent, all answered, nothing else",
			s.sent, s.answered, s.sendErrors, s.foreign)
	}
	if len(s.latencies) != s.answered || s.p(100) <= 0 {
		t.Errorf("%d latencies for %d answers, max %v", len(s.latencies), s.answered, s.p(100))
	}
}
