package dhcp

import (
	"errors"
	"fmt"
	"net"

	"github.com/insomniacslk/dhcp/dhcpv4/server4"
	"golang.org/x/net/ipv4"
)

// Listen opens the socket a Server serves one boot interface and port on
// (67 for DHCP, 4011 for the PXE boot-server requests of UEFI firmware).
//
// The socket is bound to 0.0.0.0 and to the device ifname
// (SO_BINDTODEVICE): DHCPDISCOVERs are broadcast to 255.255.255.255, which a
// socket bound to a unicast address never sees, and a broadcast answer from
// a socket bound to no device leaves by the default route's NIC instead of
// the client's. It has SO_BROADCAST, and SO_REUSEADDR and SO_REUSEPORT, so
// another proxy on the same port binds without error. An empty ifname
// binds no device. The socket reports the arriving interface of each
// datagram from the start, so that even a request queued before Serve runs
// is answered through its own interface.
//
// Port 67 needs CAP_NET_BIND_SERVICE; binding a device may need CAP_NET_RAW.
func Listen(ifname string, port int) (net.PacketConn, error) {
	conn, err := server4.NewIPv4UDPConn(ifname, &net.UDPAddr{IP: net.IPv4zero, Port: port})
	if err != nil {
		return nil, fmt.Errorf("dhcp: listen on %q port %d: %w", ifname, port, err)
	}
	if err := ipv4.NewPacketConn(conn).SetControlMessage(ipv4.FlagInterface, true); err != nil {
		conn.Close()
		return nil, fmt.Errorf("dhcp: listen on %q port %d: %w", ifname, port, err)
	}
	return conn, nil
}

// link reads and writes datagrams with the index of the interface they
// arrived on, so that each answer leaves by the interface its request came
// in on whatever the routing table says (IP_PKTINFO, the IfIndex of
// ipv4.ControlMessage). Sockets that are not UDP sockets are used plainly.
type link struct {
	conn net.PacketConn
	pc   *ipv4.PacketConn // nil unless conn is a *net.UDPConn
}

func newLink(conn net.PacketConn) *link {
	l := &link{conn: conn}
	if _, ok := conn.(*net.UDPConn); ok {
		l.pc = ipv4.NewPacketConn(conn)
	}
	return l
}

// enableInterface asks the kernel for the arriving interface of each
// datagram.
func (l *link) enableInterface() error {
	if l.pc == nil {
		return errors.New("not a UDP socket")
	}
	if err := l.pc.SetControlMessage(ipv4.FlagInterface, true); err != nil {
		l.pc = nil
		return err
	}
	return nil
}

// read returns the next datagram, its sender and the index of the
// interface it arrived on (0 if unknown).
func (l *link) read(b []byte) (n, ifIndex int, peer net.Addr, err error) {
	if l.pc == nil {
		n, peer, err = l.conn.ReadFrom(b)
		return n, 0, peer, err
	}
	n, cm, peer, err := l.pc.ReadFrom(b)
	if cm != nil {
		ifIndex = cm.IfIndex
	}
	return n, ifIndex, peer, err
}

// write sends b to dst through the interface ifIndex, or by routing if 0.
func (l *link) write(b []byte, ifIndex int, dst net.Addr) error {
	if l.pc == nil || ifIndex == 0 {
		_, err := l.conn.WriteTo(b, dst)
		return err
	}
	_, err := l.pc.WriteTo(b, &ipv4.ControlMessage{IfIndex: ifIndex}, dst)
	return err
}
