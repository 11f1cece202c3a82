package dhcp

import (
	"context"
	"fmt"
	"log/slog"
	"net"

	"golang.org/x/net/ipv6"
)

// RAResponder answers IPv6 router solicitations on one interface with a
// null router advertisement. It is off unless the operator asks for it.
//
// Why: iPXE (at least Debian's 2019 build and QEMU's NIC ROMs) configures
// IPv6 in parallel with DHCPv4, and its "Configuring (net0 ...)" step ends
// only when both are done. On an IPv4-only segment no router answers its
// solicitations and every iPXE DHCP costs about 16 seconds; any router
// advertisement ends that wait at once. The one sent here has router
// lifetime 0 (not a default router), the M and O flags clear and no
// options: no prefix, so hosts configure nothing from it (RFC 4861 section
// 6.3.4).
//
// It needs CAP_NET_RAW for the raw ICMPv6 socket.
type RAResponder struct {
	// Interface is the boot interface to answer on.
	Interface string
	// Log receives a line per advertisement (debug); nil discards.
	Log *slog.Logger
}

// ICMPv6 message types of RFC 4861 section 4.
const (
	icmpRouterSolicitation  = 133
	icmpRouterAdvertisement = 134
)

// ndpHopLimit is the hop limit of every neighbor discovery message (RFC
// 4861 section 6.1): receivers drop those with less, which proves that the
// message was not forwarded by a router.
const ndpHopLimit = 255

// Serve answers router solicitations until ctx is cancelled, then returns
// nil. It returns an error if the socket cannot be set up or reading fails.
func (r *RAResponder) Serve(ctx context.Context) error {
	log := r.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ifi, err := net.InterfaceByName(r.Interface)
	if err != nil {
		return fmt.Errorf("dhcp: router advertisements: %w", err)
	}
	lc := net.ListenConfig{Control: bindToDevice(ifi.Name)}
	conn, err := lc.ListenPacket(ctx, "ip6:ipv6-icmp", "::")
	if err != nil {
		return fmt.Errorf("dhcp: router advertisements on %s: %w", ifi.Name, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	p := ipv6.NewPacketConn(conn)
	if err := setupRASocket(p, ifi); err != nil {
		return fmt.Errorf("dhcp: router advertisements on %s: %w", ifi.Name, err)
	}
	log = log.With("interface", ifi.Name)
	log.Info("answering IPv6 router solicitations with null router advertisements")

	ra := nullRouterAdvertisement()
	dst := &net.IPAddr{IP: net.ParseIP("ff02::1"), Zone: ifi.Name} // all nodes
	out := &ipv6.ControlMessage{HopLimit: ndpHopLimit, IfIndex: ifi.Index}
	buf := make([]byte, 1500)
	for {
		n, cm, src, err := p.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("dhcp: router advertisements on %s: read: %w", ifi.Name, err)
		}
		if !isRouterSolicitation(buf[:n], cm) {
			continue
		}
		if _, err := p.WriteTo(ra, out, dst); err != nil {
			log.Warn("router advertisement not sent", "ip", src, "err", err)
			continue
		}
		log.Debug("router solicitation answered with a null router advertisement", "ip", src)
	}
}

// setupRASocket makes p receive router solicitations only, from the
// all-routers group they are sent to, with the hop limit in hand.
func setupRASocket(p *ipv6.PacketConn, ifi *net.Interface) error {
	var f ipv6.ICMPFilter
	f.SetAll(true)
	f.Accept(ipv6.ICMPTypeRouterSolicitation)
	if err := p.SetICMPFilter(&f); err != nil {
		return fmt.Errorf("icmp filter: %w", err)
	}
	if err := p.SetControlMessage(ipv6.FlagHopLimit, true); err != nil {
		return fmt.Errorf("hop limit control messages: %w", err)
	}
	if err := p.JoinGroup(ifi, &net.IPAddr{IP: net.ParseIP("ff02::2")}); err != nil {
		return fmt.Errorf("join all-routers group: %w", err)
	}
	if err := p.SetMulticastInterface(ifi); err != nil {
		return fmt.Errorf("multicast interface: %w", err)
	}
	if err := p.SetMulticastHopLimit(ndpHopLimit); err != nil {
		return fmt.Errorf("multicast hop limit: %w", err)
	}
	return nil
}

// isRouterSolicitation validates b as RFC 4861 section 6.1.1 asks: type
// 133, code 0, at least 8 bytes, and hop limit 255 when the kernel reported
// it (the kernel has checked the checksum).
func isRouterSolicitation(b []byte, cm *ipv6.ControlMessage) bool {
	if len(b) < 8 || b[0] != icmpRouterSolicitation || b[1] != 0 {
		return false
	}
	return cm == nil || cm.HopLimit == ndpHopLimit
}

// nullRouterAdvertisement encodes the answer (RFC 4861 section 4.2): type
// 134, code 0, checksum 0 (the kernel computes it for ICMPv6 raw sockets,
// RFC 3542 section 3.1), current hop limit 0 (unspecified), M=O=0, router
// lifetime 0, reachable time 0 and retransmission timer 0 (unspecified), and
// no options.
func nullRouterAdvertisement() []byte {
	b := make([]byte, 16)
	b[0] = icmpRouterAdvertisement
	return b
}
