package dhcp

import (
	"errors"
	"fmt"
	"net"

	"github.com/insomniacslk/dhcp/dhcpv4/server4"
	"golang.org/x/net/ipv4"
)

// Socket buffer sizes that Listen asks for.
const (
	// DefaultReadBuffer is the receive buffer of a DHCP socket. The kernel
	// default (net.core.rmem_default, 208 KiB) holds a few tens of
	// milliseconds of DISCOVERs at 10,000 a second, so a burst arriving
	// while other work holds the CPU overflowed it and was dropped
	// (RcvbufErrors) with the server at 40 % of a core. 4 MiB holds several
	// hundred milliseconds of them.
	DefaultReadBuffer = 4 << 20
	// DefaultWriteBuffer is the send buffer. Answers leave in batches of up
	// to batchSize; 1 MiB keeps a batch from waiting for buffer space
	// while the previous one is still queued at the interface.
	DefaultWriteBuffer = 1 << 20
)

// ListenConfig opens DHCP sockets. Its zero value asks for the default
// buffer sizes.
type ListenConfig struct {
	// ReadBuffer is the receive buffer (SO_RCVBUF) asked for, in bytes.
	// Zero means DefaultReadBuffer; a negative value keeps the kernel's
	// default. Linux grants it beyond net.core.rmem_max only to a process
	// with CAP_NET_ADMIN (SO_RCVBUFFORCE); otherwise it is capped there.
	ReadBuffer int

	// WriteBuffer is the send buffer (SO_SNDBUF) asked for, in bytes, with
	// the same rules (net.core.wmem_max, SO_SNDBUFFORCE). Zero means
	// DefaultWriteBuffer.
	WriteBuffer int
}

// Listen opens a socket with the default buffer sizes: see
// ListenConfig.Listen.
func Listen(ifname string, port int) (net.PacketConn, error) {
	return ListenConfig{}.Listen(ifname, port)
}

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
// The buffer sizes are asked for, not required: a smaller grant does not
// fail Listen. Buffers reports what the kernel gave.
//
// Port 67 needs CAP_NET_BIND_SERVICE; binding a device may need CAP_NET_RAW.
func (lc ListenConfig) Listen(ifname string, port int) (net.PacketConn, error) {
	conn, err := server4.NewIPv4UDPConn(ifname, &net.UDPAddr{IP: net.IPv4zero, Port: port})
	if err != nil {
		return nil, fmt.Errorf("dhcp: listen on %q port %d: %w", ifname, port, err)
	}
	if err := ipv4.NewPacketConn(conn).SetControlMessage(ipv4.FlagInterface, true); err != nil {
		conn.Close()
		return nil, fmt.Errorf("dhcp: listen on %q port %d: %w", ifname, port, err)
	}
	read, write := lc.ReadBuffer, lc.WriteBuffer
	if read == 0 {
		read = DefaultReadBuffer
	}
	if write == 0 {
		write = DefaultWriteBuffer
	}
	// An error here leaves the kernel's default, which works, only with
	// less slack; the caller learns the size from Buffers.
	_ = setBuffers(conn, read, write)
	return conn, nil
}

// Buffers returns the receive and send buffer sizes of a UDP socket as the
// kernel reports them. Linux reports twice the size that was set, the
// second half being its allowance for bookkeeping; a socket from Listen as
// root therefore shows 8 MiB of receive buffer.
func Buffers(conn net.PacketConn) (read, write int, err error) {
	u, ok := conn.(*net.UDPConn)
	if !ok {
		return 0, 0, errors.New("dhcp: buffers: not a UDP socket")
	}
	return socketBuffers(u)
}
