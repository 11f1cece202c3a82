package main

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
)

// fakeDHCP is a DHCP server on loopback: for each DISCOVER it first sends
// a proxyDHCP OFFER (boot options, no address), as a PXE network's
// rackboot would, then the site server's OFFER; it ACKs a REQUEST for the
// offered address.
type fakeDHCP struct {
	conn net.PacketConn

	mu   sync.Mutex
	seen []*dhcpv4.DHCPv4
}

var (
	offered  = net.ParseIP("192.0.2.50")
	serverID = net.ParseIP("192.0.2.2")
)

func (s *fakeDHCP) serve(t *testing.T) {
	buf := make([]byte, 1500)
	for {
		n, peer, err := s.conn.ReadFrom(buf)
		if err != nil {
			return
		}
		m, err := dhcpv4.FromBytes(buf[:n])
		if err != nil {
			t.Errorf("fake DHCP server: %v", err)
			continue
		}
		s.mu.Lock()
		s.seen = append(s.seen, m)
		s.mu.Unlock()
		lease := []dhcpv4.Modifier{
			dhcpv4.WithYourIP(offered),
			dhcpv4.WithNetmask(net.CIDRMask(24, 32)),
			dhcpv4.WithRouter(net.ParseIP("192.0.2.1")),
			dhcpv4.WithOption(dhcpv4.OptServerIdentifier(serverID)),
			dhcpv4.WithOption(dhcpv4.OptIPAddressLeaseTime(time.Hour)),
		}
		var replies []*dhcpv4.DHCPv4
		switch m.MessageType() {
		case dhcpv4.MessageTypeDiscover:
			proxy, _ := dhcpv4.NewReplyFromRequest(m, dhcpv4.WithMessageType(dhcpv4.MessageTypeOffer),
				dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.ParseIP("192.0.2.1"))),
				dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient")),
				dhcpv4.WithOption(dhcpv4.OptBootFileName("ipxe.efi")))
			offer, _ := dhcpv4.NewReplyFromRequest(m, append(lease, dhcpv4.WithMessageType(dhcpv4.MessageTypeOffer))...)
			replies = append(replies, proxy, offer)
		case dhcpv4.MessageTypeRequest:
			if !m.RequestedIPAddress().Equal(offered) || !m.ServerIdentifier().Equal(serverID) {
				nak, _ := dhcpv4.NewReplyFromRequest(m, dhcpv4.WithMessageType(dhcpv4.MessageTypeNak))
				replies = append(replies, nak)
				break
			}
			ack, _ := dhcpv4.NewReplyFromRequest(m, append(lease, dhcpv4.WithMessageType(dhcpv4.MessageTypeAck))...)
			replies = append(replies, ack)
		}
		for _, r := range replies {
			s.conn.WriteTo(r.ToBytes(), peer)
		}
	}
}

// TestRequestLease runs the agent's DHCP exchange over loopback UDP: it
// must skip the proxyDHCP OFFER, take the address, and say who it is.
func TestRequestLease(t *testing.T) {
	srvConn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fakeDHCP{conn: srvConn}
	go srv.serve(t)
	defer srvConn.Close()

	cliConn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mac := net.HardwareAddr{0x52, 0x54, 0, 0, 1, 1}
	c, err := nclient4.NewWithConn(cliConn, mac, nclient4.WithServerAddr(srvConn.LocalAddr().(*net.UDPAddr)),
		nclient4.WithTimeout(2*time.Second), nclient4.WithRetry(2))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lease, err := requestLease(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := leaseConfig(lease.ACK)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Addr != netip.MustParsePrefix("192.0.2.50/24") || cfg.Gateway != netip.MustParseAddr("192.0.2.1") || cfg.Server != netip.MustParseAddr("192.0.2.2") {
		t.Errorf("lease %+v", cfg)
	}

	srv.mu.Lock()
	defer srv.mu.Unlock()
	var types []dhcpv4.MessageType
	for _, m := range srv.seen {
		types = append(types, m.MessageType())
		if got := m.ClassIdentifier(); got != vendorClass {
			t.Errorf("%v: vendor class %q, want %q", m.MessageType(), got, vendorClass)
		}
		if !slices.Equal(m.ClientHWAddr, mac) {
			t.Errorf("%v: chaddr %v", m.MessageType(), m.ClientHWAddr)
		}
	}
	if !slices.Equal(types, []dhcpv4.MessageType{dhcpv4.MessageTypeDiscover, dhcpv4.MessageTypeRequest}) {
		t.Errorf("server saw %v, want one DISCOVER and one REQUEST", types)
	}
	if prl := srv.seen[0].ParameterRequestList(); !prl.Has(dhcpv4.OptionInterfaceMTU) || !prl.Has(dhcpv4.OptionRouter) {
		t.Errorf("parameter request list %v lacks MTU or router", prl)
	}
}
