package prof

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"

	"github.com/rackboot/rackboot/dhcp"
)

// discover is a BIOS PXE ROM's DHCPDISCOVER, relayed, as perfdhcp sends it
// in P1.
func discover(b *testing.B, mac net.HardwareAddr) []byte {
	b.Helper()
	m, err := dhcpv4.NewDiscovery(mac,
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00000:UNDI:002001")),
		dhcpv4.WithOption(dhcpv4.OptClientArch(iana.INTEL_X86PC)),
		dhcpv4.WithGeneric(dhcpv4.OptionClientMachineIdentifier, append([]byte{0}, make([]byte, 16)...)),
		dhcpv4.WithRelay(net.IPv4(127, 0, 0, 1)),
	)
	if err != nil {
		b.Fatal(err)
	}
	return m.ToBytes()
}

// BenchmarkDHCPServe measures rackboot's proxy loop over loopback: one
// DISCOVER in, one OFFER out, a window of requests in flight, as in P1.
// ns/op is the cost of one answered DISCOVER, client included; the CPU
// profile separates the two.
func BenchmarkDHCPServe(b *testing.B) {
	for _, level := range []slog.Level{slog.LevelWarn, slog.LevelInfo, discardLevel} {
		name := "log-" + level.String()
		if level == discardLevel {
			name = "log-discarded" // slog.DiscardHandler: what the per-packet With costs without a handler
		}
		b.Run(name, func(b *testing.B) {
			srvConn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				b.Fatal(err)
			}
			srvConn.SetReadBuffer(4 << 20)
			log := slog.New(slog.NewJSONHandler(discard{}, &slog.HandlerOptions{Level: level}))
			if level == discardLevel {
				log = slog.New(slog.DiscardHandler)
			}
			srv := &dhcp.Server{Config: dhcp.Config{ServerIP: net.IPv4(127, 0, 0, 1), Discovery: true}, Log: log}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- srv.Serve(ctx, srvConn) }()
			defer func() { cancel(); <-done }()

			cl, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				b.Fatal(err)
			}
			defer cl.Close()
			cl.SetReadBuffer(4 << 20)
			dst := srvConn.LocalAddr().(*net.UDPAddr).AddrPort()
			pkt := discover(b, net.HardwareAddr{0x52, 0x54, 0x01, 0, 0, 1})
			buf := make([]byte, 2048)
			const window = 32
			b.ReportAllocs()
			b.ResetTimer()
			inFlight := 0
			for sent, got := 0, 0; got < b.N; {
				for inFlight < window && sent < b.N {
					if _, err := cl.WriteToUDPAddrPort(pkt, dst); err != nil {
						b.Fatal(err)
					}
					sent++
					inFlight++
				}
				cl.SetReadDeadline(time.Now().Add(time.Second))
				if _, _, err := cl.ReadFromUDPAddrPort(buf); err != nil {
					b.Fatalf("after %d answers: %v", got, err)
				}
				got++
				inFlight--
			}
		})
	}
}

// BenchmarkDHCPReply is the decision alone: parse, Reply, encode, without
// sockets or logging. The difference to BenchmarkDHCPServe is the loop's
// own cost per packet.
func BenchmarkDHCPReply(b *testing.B) {
	pkt := discover(b, net.HardwareAddr{0x52, 0x54, 0x01, 0, 0, 1})
	cfg := dhcp.Config{ServerIP: net.IPv4(192, 168, 77, 1), Discovery: true}
	b.ReportAllocs()
	for b.Loop() {
		req, err := dhcpv4.FromBytes(pkt)
		if err != nil {
			b.Fatal(err)
		}
		resp, err := dhcp.Reply(req, false, cfg)
		if err != nil {
			b.Fatal(err)
		}
		_ = resp.ToBytes()
	}
}

// discardLevel marks the run with slog.DiscardHandler.
const discardLevel = slog.Level(100)

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
