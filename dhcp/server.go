package dhcp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// Hosts tells the proxy which machines rackboot manages.
type Hosts interface {
	// Known reports whether mac belongs to a host in the profiles. It is
	// called for every packet, so it must be quick (a map lookup, no I/O),
	// and it must be safe for concurrent use.
	Known(mac net.HardwareAddr) bool
}

// Server answers PXE clients on the sockets given to Serve. One Server may
// serve several sockets at once (one per boot interface and port); its
// fields must not change while it does.
type Server struct {
	Config

	// Hosts says which clients are in the profiles. Nil means none is, so
	// only Discovery makes the proxy answer.
	Hosts Hosts

	// Log receives one line per answer (info), per refusal that needs a
	// human (unknown host: info; unsupported architecture: warn) and per
	// ignored or malformed packet (debug). Nil discards.
	Log *slog.Logger

	// OnReply, if set, is called after each answer was sent, with kind
	// "offer" or "ack" and the client's architecture ("bios", "efi-x64",
	// "efi-arm64-http", ... or "arch-N"). It is for metrics: it runs on the
	// packet path, so it must be quick, and safe for concurrent use.
	OnReply func(kind, arch string)
}

// maxPacket is the receive buffer. DHCP messages fit in 576 bytes unless
// the client allows more (option 57); no PXE client sends more than an
// Ethernet frame.
const maxPacket = 4096

// Serve answers the requests arriving on conn until ctx is cancelled or
// reading fails. It closes conn before it returns, and returns nil when ctx
// was cancelled. conn normally comes from Listen; any *net.UDPConn works
// (tests serve 127.0.0.1:0), and other PacketConns are served without
// knowing the arriving interface, so their answers follow routing.
//
// Requests are handled one at a time, in order: deciding takes
// microseconds and writing a UDP datagram does not block, so there is no
// queue in which an answer could grow late. iPXE stops listening for proxy
// answers about three seconds after its DHCP starts.
//
// A malformed or foreign packet is logged at debug level and skipped. A
// failed send is logged and does not stop the loop: it concerns one client.
// A failed read ends Serve with the error.
func (s *Server) Serve(ctx context.Context, conn net.PacketConn) error {
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	cfg := s.Config.withDefaults()
	if err := cfg.validate(); err != nil {
		return err
	}
	log := s.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	l := newLink(conn)
	if err := l.enableInterface(); err != nil {
		// Without the arriving interface in hand, replies leave by routing.
		// Only sockets that are not UDP (test doubles) end up here.
		log.Debug("no interface control messages: replies follow routing", "err", err)
	}

	loggers := interfaceLoggers{base: log, m: map[int]*slog.Logger{}}
	buf := make([]byte, maxPacket)
	for {
		n, ifIndex, peer, err := l.read(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("dhcp: read from %v: %w", conn.LocalAddr(), err)
		}
		s.handle(loggers.get(ifIndex), cfg, l, buf[:n], ifIndex, peer)
	}
}

// handle answers one datagram, or logs why not.
func (s *Server) handle(log *slog.Logger, cfg Config, l *link, b []byte, ifIndex int, peer net.Addr) {
	req, err := dhcpv4.FromBytes(b)
	if err != nil {
		log.Debug("malformed packet ignored", "ip", addrString(peer), "err", err)
		return
	}
	arch := "none"
	if a, ok := clientArch(req); ok {
		arch = archName(a)
	}
	known := s.Hosts != nil && s.Hosts.Known(req.ClientHWAddr)
	resp, err := Reply(req, known, cfg)
	if errors.Is(err, ErrMessageType) || errors.Is(err, ErrNotPXE) || errors.Is(err, ErrOtherServer) {
		// Most DHCP traffic on a segment is not ours: keep this path free
		// of per-packet logger allocations unless debug logging is on.
		if log.Enabled(context.Background(), slog.LevelDebug) {
			log.Debug("not answered", "mac", req.ClientHWAddr.String(), "xid", req.TransactionID.String(),
				"arch", arch, "ip", addrString(peer), "err", err)
		}
		return
	}
	log = log.With("mac", req.ClientHWAddr.String(), "xid", req.TransactionID.String(), "arch", arch, "ip", addrString(peer))
	switch {
	case err == nil:
	case errors.Is(err, ErrUnknownHost):
		log.Info("unknown host not answered: add it to the profiles or turn discovery on")
		return
	case errors.Is(err, ErrUnsupportedArch):
		log.Warn("not answered", "err", err)
		return
	default:
		log.Error("not answered", "err", err)
		return
	}

	kind := "offer"
	if resp.MessageType() == dhcpv4.MessageTypeAck {
		kind = "ack"
	}
	dst := replyAddr(peer)
	if err := l.write(resp.ToBytes(), ifIndex, dst); err != nil {
		log.Warn("send failed", "kind", kind, "dst", addrString(dst), "err", err)
		return
	}
	log.Info("answered", "kind", kind, "path", resp.BootFileNameOption(), "dst", addrString(dst))
	if s.OnReply != nil {
		s.OnReply(kind, arch)
	}
}

// replyAddr is where the answer to a request from peer goes. A client
// without an address yet (source 0.0.0.0) cannot be reached by unicast
// without ARP, so it gets a broadcast on the client port 68 (RFC 2131
// section 4.1). Everyone else is answered at the address and port the
// request came from: a relay at port 67, BIOS iPXE asking port 4011 from
// port 68, EDK2 asking port 4011 from port 4011.
func replyAddr(peer net.Addr) net.Addr {
	u, ok := peer.(*net.UDPAddr)
	if !ok || !u.IP.IsUnspecified() {
		return peer
	}
	return &net.UDPAddr{IP: net.IPv4bcast, Port: dhcpv4.ClientPort}
}

// addrString formats an address for the log; nil-safe.
func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}

// interfaceLoggers holds a child logger per arriving interface, named for
// the log, so that the packet path does not ask the kernel for the name each
// time. It belongs to one Serve loop and is not safe for concurrent use.
type interfaceLoggers struct {
	base *slog.Logger
	m    map[int]*slog.Logger
}

func (l *interfaceLoggers) get(index int) *slog.Logger {
	if log, ok := l.m[index]; ok {
		return log
	}
	name := ""
	if index != 0 {
		name = strconv.Itoa(index)
		if ifi, err := net.InterfaceByIndex(index); err == nil {
			name = ifi.Name
		}
	}
	log := l.base.With("interface", name)
	l.m[index] = log
	return log
}
