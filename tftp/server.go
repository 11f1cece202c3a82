package tftp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	pintftp "github.com/pin/tftp/v3"
)

// Defaults for the zero values of Server's fields.
const (
	DefaultRoot = "/usr/lib/ipxe"
	// DefaultTimeout, DefaultMaxTimeout and DefaultRetries give the
	// retransmissions of one packet at 50, 150, 350, 750 ms, 1.55 s, then
	// every second; a client that stays silent for 5.6 s is given up.
	DefaultTimeout      = 50 * time.Millisecond
	DefaultMaxTimeout   = time.Second
	DefaultRetries      = 9
	DefaultMaxTransfers = 256
	// DefaultMaxPerClient is how many transfers one client address may
	// run at once. A PXE ROM runs one (EDK2: a tsize probe, then the
	// download, one after the other); shim and GRUB fetch their files one
	// at a time. Eight leaves room for a client that resends its RRQ (the
	// library starts a transfer per resend) without letting one address
	// take the slots every other machine needs.
	DefaultMaxPerClient = 8
	// DefaultCacheSize bounds the file contents kept in memory: the iPXE
	// binaries, shim and GRUB of a few platforms are well under it.
	DefaultCacheSize = 64 << 20
	// DefaultMaxBlockSize is an Ethernet frame's worth of TFTP data:
	// MTU 1500 - 20 (IPv4) - 8 (UDP) - 4 (TFTP header). It is what EDK2
	// asks for, and what tftpd-hpa's manual recommends as its -B limit.
	DefaultMaxBlockSize = 1468
)

// Server is a read-only TFTP server for one directory. Its fields are
// configuration, read when Serve starts; zero values mean the defaults.
// A Server must not be copied after first use.
type Server struct {
	// Root is the directory served; default DefaultRoot. Names are resolved
	// inside it with os.Root: no request reaches a file outside it, not even
	// through a symbolic link. Note that Debian's ipxe package installs
	// /usr/lib/ipxe/ipxe.efi as a symbolic link to /boot/ipxe.efi, which is
	// therefore refused from the default root (see README.md).
	Root string

	// Timeout is how long the server waits for an acknowledgement before it
	// first sends a DATA or OACK packet again; default 50 ms. Each further
	// retransmission of the same packet waits twice as long as the one
	// before, up to MaxTimeout. Lock-step TFTP (RFC 1350) recovers a lost
	// packet only by this timeout, and a 1 MB boot program is about 700
	// packets each way, so at 1 % loss a fixed 1 s turns a sub-second
	// download into ten seconds or more. A round trip takes well under a
	// millisecond on a LAN, and a few milliseconds when hundreds of
	// clients saturate the server's core, so 50 ms is rarely spurious; a
	// client that is slower only costs a duplicate DATA, which it
	// acknowledges again and the server ignores (RFC 1123 4.2.3.1). The
	// client's own "timeout" option (RFC 2349) is not honoured by pin/tftp.
	Timeout time.Duration

	// MaxTimeout is the longest wait between two sends of the same packet;
	// default 1 s, the interval PXE ROMs themselves start with. A Timeout
	// above it means a fixed interval of Timeout.
	MaxTimeout time.Duration

	// Retries is how many times a packet is sent again before the transfer
	// is given up; default 9, which with the default timeouts gives a
	// client 5.6 s to answer: firmware that pauses (a slow ROM, a busy
	// UEFI) is not abandoned, and a vanished client does not hold its
	// transfer much longer than that.
	Retries int

	// MaxTransfers caps concurrent read transfers; default 256. A request
	// over the cap gets an ERROR ("server busy, retry later") at once rather
	// than waiting: a client that hears nothing resends its request, and
	// pin/tftp would start a second transfer for each resend.
	MaxTransfers int

	// MaxPerClient caps the concurrent transfers of one client IP address;
	// default DefaultMaxPerClient, negative for no cap. Without it, one
	// address sending a few hundred RRQs and never acknowledging holds
	// every MaxTransfers slot for the give-up time (5.6 s) and keeps every
	// other machine from booting. A request over it gets an ERROR ("too
	// many transfers from your address") at once and is counted Limited;
	// the first refusal of a burst is logged, the rest only counted, and
	// the burst's total is logged when the address has no transfer left
	// (or once a minute while it lasts). Raise it where many clients share
	// one source address (a NAT, a relay, a load generator).
	MaxPerClient int

	// MaxBlockSize caps the blksize option (RFC 2348) a client may
	// negotiate; default DefaultMaxBlockSize. Valid values are 513 to 65464.
	// Raise it on jumbo-frame networks, lower it under tunnels or overlays.
	MaxBlockSize int

	// ShutdownTimeout bounds how long Serve waits, once its context ends,
	// for transfers to stop; default the time a transfer to a silent
	// client takes to give up (5.6 s with the default timing). Transfers
	// to live clients stop at their next block.
	ShutdownTimeout time.Duration

	// CacheSize bounds the bytes of file contents kept in memory; default
	// DefaultCacheSize, negative for none. A file of at most 16 MiB is read
	// once and then served from memory, saving a read system call per
	// block, for as long as its size, modification and change times and
	// inode stay the same; every request still looks the name up under
	// Root first, so the cache never serves a name the root would refuse.
	// A file changed less than a second ago is read from disk (see
	// settleTime). The least recently requested files make room for new
	// ones.
	CacheSize int64
	// Static says the files under Root do not change while the server
	// runs (rackboot serves a copy it stages before starting), so a file
	// is cached at its first request instead of once it has been
	// unchanged for a second: a storm right after a start is served from
	// memory too. The identity checks stay, so a change is still noticed.
	Static bool

	// Log receives one line per request; default slog.Default().
	Log *slog.Logger

	// Identify, if set, names the machine behind a client address (the
	// appliance looks it up in the kernel's neighbour table), so the log
	// line carries the MAC admins know the machine by. TFTP itself carries
	// no hardware address. It must be quick and safe for concurrent use.
	Identify func(netip.Addr) net.HardwareAddr

	// OnTransfer, if set, is called once for every request when it ends,
	// from the transfer's goroutine; it must be safe for concurrent use and
	// return quickly. Use it for metrics.
	OnTransfer func(Transfer)

	counters counters

	// noFiles counts requests refused for want of a file descriptor since
	// the last log line about them, written at most once a second
	// (noFilesAt, Unix nanoseconds).
	noFiles   atomic.Int64
	noFilesAt atomic.Int64

	mu      sync.Mutex
	running map[netip.AddrPort][]*running // transfers inside ReadFrom, for the hook
	clients map[netip.Addr]*client        // transfers per client address, for MaxPerClient
}

// Serve answers TFTP requests arriving on conn until ctx ends, then returns
// nil. It returns an error if the configuration is invalid or the server
// cannot run. Serve owns conn: it is closed when Serve returns.
//
// conn must be a *net.UDPConn. pin/tftp turns on IP_PKTINFO (IPV6_RECVPKTINFO)
// on it to learn the address each request was sent to, and binds the
// transfer's own socket to that address, so replies leave from the address
// the client talked to on a multi-homed host. A request sent to the
// broadcast address is answered from the kernel's choice of address.
//
// Each transfer runs on its own goroutine and its own ephemeral UDP port
// (RFC 1350 transfer IDs), as the library does.
func (s *Server) Serve(ctx context.Context, conn net.PacketConn) error {
	udp, ok := conn.(*net.UDPConn)
	if !ok {
		conn.Close()
		return fmt.Errorf("tftp: conn is %T, need *net.UDPConn", conn)
	}
	c, err := s.config()
	if err != nil {
		udp.Close()
		return err
	}
	defer c.root.Close()

	srv := pintftp.NewServer(s.readHandler(ctx, c), s.writeHandler(c))
	// The library's default timing (5 s, plus a random 0-1 s before every
	// retransmission) makes loss ruinous; see schedule for how the three
	// settings make one doubling timeout.
	srv.SetTimeout(c.schedule.first)
	srv.SetRetries(c.schedule.retries)
	srv.SetBackoff(c.schedule.backoff)
	// MTU-based blksize clamping (the library default, issue #51) is off,
	// replaced by the fixed MaxBlockSize cap, because:
	//   - it clamps to MTU-28, forgetting the 4-byte TFTP header, so on
	//     Ethernet it still allows 1472-byte blocks in 1504-byte packets,
	//     which fragment;
	//   - when the interface cannot be looked up (no control message, or
	//     InterfaceByIndex fails) it clamps every transfer to 512 bytes,
	//     2.3 times slower, silently;
	//   - it uses the interface MTU, not the path MTU, so it does not help
	//     under tunnels or overlays either (tinkerbell/smee#70 moved to a
	//     fixed cap for that reason).
	// PXE clients ask for at most an Ethernet frame's worth (EDK2 1468,
	// iPXE 1432), so the cap only ever changes what other clients get.
	srv.SetBlockSizeNegotiation(false)
	srv.SetBlockSize(c.maxBlockSize)
	srv.SetHook(hook{s: s, log: c.log})
	// Not SetAnticipate: it is not RFC 7440 windowsize, and after a loss it
	// resends a whole window the client does not re-ACK, failing transfers.
	// Not EnableSinglePort: it drops packets when busy and is several times
	// slower.

	served := make(chan error, 1)
	go func() { served <- srv.Serve(udp) }()

	select {
	case err := <-served:
		// The library's Serve returns on its own only when it cannot start.
		udp.Close()
		if err == nil {
			err = errors.New("stopped unexpectedly")
		}
		return fmt.Errorf("tftp: serve: %w", err)
	case <-ctx.Done():
	}

	// Shutdown closes conn and waits for every transfer. Transfers to live
	// clients end at their next block (their reader sees ctx); a silent
	// client holds its transfer until retries run out, so the wait is
	// bounded and such goroutines may outlive Serve briefly.
	stopped := make(chan struct{})
	go func() {
		srv.Shutdown()
		close(stopped)
	}()
	grace := time.NewTimer(c.grace)
	defer grace.Stop()
	select {
	case <-stopped:
	case <-grace.C:
		c.log.Warn("tftp shutdown: not waiting for transfers still running",
			"active", s.counters.active.Load(), "waited", c.grace)
	}
	// Usually already closed by Shutdown. If Shutdown ran before the
	// library's Serve had recorded conn, the read loop would otherwise
	// block forever; Shutdown has cancelled the loop, so it now exits.
	udp.Close()
	<-served
	return nil
}
