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
	// and it must be safe for concurrent use. mac may be a slice of the
	// receive buffer: it is valid only during the call.
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

// maxPacket is the size of each receive buffer. DHCP messages fit in 576
// bytes unless the client allows more (option 57); no PXE client sends
// more than an Ethernet frame.
const maxPacket = 4096

// Serve answers the requests arriving on conn until ctx is cancelled or
// reading fails. It closes conn before it returns, and returns nil when ctx
// was cancelled. conn normally comes from Listen; any *net.UDPConn works
// (tests serve 127.0.0.1:0), and other PacketConns are served without
// knowing the arriving interface, so their answers follow routing.
//
// Requests are handled in order, as they arrive: each read takes every
// datagram already queued (up to batchSize, one system call on Linux), and
// the answers to them leave together (one more) before the next read.
// Deciding takes microseconds and writing a UDP datagram does not block,
// so there is no queue in which an answer could grow late, and a read
// never waits for more datagrams than there are. iPXE stops listening for
// proxy answers about three seconds after its DHCP starts.
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

	h := newHandler(s, cfg, log)
	outs := make([]outgoing, 0, batchSize)
	sent := make([]answer, 0, batchSize)
	for {
		ds, err := l.read()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("dhcp: read from %v: %w", conn.LocalAddr(), err)
		}
		outs, sent = outs[:0], sent[:0]
		for _, d := range ds {
			out, a, ok := h.handle(d, h.bufs[len(outs)])
			if !ok {
				continue
			}
			if a.fast {
				h.bufs[len(outs)] = out.b // keep a grown buffer
			}
			outs, sent = append(outs, out), append(sent, a)
		}
		l.write(outs)
		for i := range sent {
			h.report(&sent[i], outs[i])
		}
	}
}

// handler is the state of one Serve loop; not safe for concurrent use.
type handler struct {
	srv       *Server
	cfg       Config
	server    net.IP // cfg.ServerIP in its 4-byte form
	loggers   interfaceLoggers
	templates *templates
	bufs      [][]byte // the fast path's encodings, one per answer of a batch
}

// newHandler returns the state of a loop serving cfg, which must be valid
// and have its defaults applied.
func newHandler(s *Server, cfg Config, log *slog.Logger) *handler {
	return &handler{
		srv:       s,
		cfg:       cfg,
		server:    cfg.ServerIP.To4(),
		loggers:   interfaceLoggers{base: log, m: map[int]*slog.Logger{}},
		templates: newTemplates(cfg),
		bufs:      make([][]byte, batchSize),
	}
}

// answer is what is logged and counted about an answer once it was sent.
type answer struct {
	log  *slog.Logger
	c    client
	kind string // "offer" or "ack"
	path string // the boot file (option 67)
	fast bool   // encoded by the fast path into the buffer it was given
}

// handle decides the answer to one datagram, encoding it into buf[:0] on
// the fast path; it reports false, having logged why, when there is none.
func (h *handler) handle(d datagram, buf []byte) (outgoing, answer, bool) {
	log := h.loggers.get(d.ifIndex)
	if r, ok := scan(d.b, h.server); ok {
		known := h.srv.Hosts != nil && h.srv.Hosts.Known(r.mac())
		if t := h.templates.get(&r); t != nil && (known || h.cfg.Discovery) {
			var c client
			c.setMAC(r.mac())
			copy(c.xid[:], r.header[offXID:])
			c.arch, c.peer = t.arch, d.peer
			out := outgoing{b: t.encode(buf, &r), ifIndex: d.ifIndex, dst: replyAddr(d.peer)}
			return out, answer{log: log, c: c, kind: t.kind, path: t.path, fast: true}, true
		}
	}

	req, err := dhcpv4.FromBytes(d.b)
	if err != nil {
		if log.Enabled(context.Background(), slog.LevelDebug) {
			log.Debug("malformed packet ignored", "ip", addrString(d.peer), "err", err)
		}
		return outgoing{}, answer{}, false
	}
	c := client{xid: req.TransactionID, arch: "none", peer: d.peer}
	c.setMAC(req.ClientHWAddr)
	if a, ok := clientArch(req); ok {
		c.arch = archName(a)
	}
	known := h.srv.Hosts != nil && h.srv.Hosts.Known(req.ClientHWAddr)
	resp, err := Reply(req, known, h.cfg)
	switch {
	case err == nil:
	case errors.Is(err, ErrMessageType) || errors.Is(err, ErrNotPXE) || errors.Is(err, ErrOtherServer):
		// Most DHCP traffic on a segment is not ours.
		c.log(log, slog.LevelDebug, "not answered", "err", err)
		return outgoing{}, answer{}, false
	case errors.Is(err, ErrUnknownHost):
		c.log(log, slog.LevelInfo, "unknown host not answered: add it to the profiles or turn discovery on")
		return outgoing{}, answer{}, false
	case errors.Is(err, ErrUnsupportedArch):
		c.log(log, slog.LevelWarn, "not answered", "err", err)
		return outgoing{}, answer{}, false
	default:
		c.log(log, slog.LevelError, "not answered", "err", err)
		return outgoing{}, answer{}, false
	}
	kind := "offer"
	if resp.MessageType() == dhcpv4.MessageTypeAck {
		kind = "ack"
	}
	out := outgoing{b: resp.ToBytes(), ifIndex: d.ifIndex, dst: replyAddr(d.peer)}
	return out, answer{log: log, c: c, kind: kind, path: resp.BootFileNameOption()}, true
}

// report logs an answer after its send, and counts it if it left.
func (h *handler) report(a *answer, out outgoing) {
	if out.err != nil {
		a.c.log(a.log, slog.LevelWarn, "send failed", "kind", a.kind, "dst", addrString(out.dst), "err", out.err)
		return
	}
	a.c.log(a.log, slog.LevelInfo, "answered", "kind", a.kind, "path", a.path, "dst", addrString(out.dst))
	if h.srv.OnReply != nil {
		h.srv.OnReply(a.kind, a.c.arch)
	}
}

// client names the sender of a request in the log.
type client struct {
	mac    [16]byte
	macLen int
	xid    dhcpv4.TransactionID
	arch   string
	peer   net.Addr
}

func (c *client) setMAC(mac net.HardwareAddr) {
	c.macLen = copy(c.mac[:], mac)
}

// log writes a line about the client's request at level, with its MAC
// address, xid, architecture and address. Formatting those costs more than
// deciding the answer, so it is done only when the line is written.
func (c *client) log(log *slog.Logger, level slog.Level, msg string, args ...any) {
	ctx := context.Background()
	if !log.Enabled(ctx, level) {
		return
	}
	attrs := []any{"mac", net.HardwareAddr(c.mac[:c.macLen]).String(), "xid", c.xid.String(), "arch", c.arch, "ip", addrString(c.peer)}
	log.Log(ctx, level, msg, append(attrs, args...)...)
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
