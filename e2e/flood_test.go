//go:build e2e

package e2e

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// The attacks of TestUnderAttack, as one hostile address on the boot
// segment would make them: a flood of idle HTTP connections and a flood of
// TFTP read requests it never acknowledges. Both keep trying for as long as
// their context lasts: a connection the server closes is opened again, a
// request is sent again, so the pressure does not fade once the server has
// shed the first wave.

// connKind is how an idle connection of the HTTP flood behaves.
type connKind int

const (
	// connSilent connects and sends nothing (a port scan's half, or a
	// client that died after its handshake).
	connSilent connKind = iota
	// connPartial sends the start of a request header and stops
	// (slowloris): the server has bytes of a request, so the connection
	// is not idle in net/http's sense until the header timeout.
	connPartial
	// connUnread sends a whole keep-alive request for a large artifact
	// and never reads the answer: the server's write blocks once the
	// socket buffers fill, holding the connection and the open file.
	connUnread
	connKinds
)

func (k connKind) String() string {
	return [...]string{"silent", "partial", "unread"}[k]
}

// httpFlood holds idle TCP connections to one HTTP server from one
// address. The zero value is not usable: set the fields above par before
// start.
type httpFlood struct {
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
	addr string         // the server, host:port
	path string         // a large file, asked for by connUnread and never read
	n    [connKinds]int // how many connections of each kind to hold
	wait time.Duration  // pause before opening again a connection the server closed
	// renew is how long a connUnread connection is kept before it is
	// replaced by a new one. When the server drops a client that does not
	// read, its FIN waits behind the unsent data, which this client never
	// takes: the attacker cannot see the close, so it renews the
	// connection once the server's stall timeout has surely passed.
	renew time.Duration
	par   chan struct{}  // bounds the dials in flight (each takes an OS thread)
	wg    sync.WaitGroup // the connections' goroutines

	// Counts, from the attacker's side. opened counts every connection
	// established; closed those the server closed (seen as EOF or reset
	// when reading, or as a hang-up on an unread connection); renewed the
	// unread ones replaced after renew; failed the dials that did not
	// connect. held is what the attacker holds right now, and peak its
	// maximum.
	opened, closed, renewed, failed [connKinds]atomic.Int64
	up                              [connKinds]atomic.Int64 // held now, by kind
	held, peak                      atomic.Int64
}

// total is how many connections the flood holds at full strength.
func (f *httpFlood) total() int {
	var n int
	for _, k := range f.n {
		n += k
	}
	return n
}

// start opens the connections, each on its own goroutine, and returns at
// once; stop them by cancelling ctx and calling done.
func (f *httpFlood) start(ctx context.Context) {
	f.par = make(chan struct{}, 32)
	for k := range connKinds {
		for range f.n[k] {
			f.wg.Add(1)
			go func() {
				defer f.wg.Done()
				f.hold(ctx, k)
			}()
		}
	}
}

// done waits for every connection's goroutine to end (after ctx ends).
func (f *httpFlood) done() { f.wg.Wait() }

// hold keeps one connection of kind k open until ctx ends: it connects,
// sends what k sends, waits for the server to close it, and starts again
// after f.wait.
func (f *httpFlood) hold(ctx context.Context, k connKind) {
	for ctx.Err() == nil {
		c, err := f.connect(ctx)
		if err != nil {
			if ctx.Err() == nil {
				f.failed[k].Add(1)
			}
			sleep(ctx, f.wait)
			continue
		}
		f.opened[k].Add(1)
		f.up[k].Add(1)
		if h := f.held.Add(1); h > f.peak.Load() {
			f.peak.Store(h) // racy max: good enough for a log line
		}
		end := f.use(ctx, c, k)
		c.Close()
		f.held.Add(-1)
		f.up[k].Add(-1)
		switch end {
		case endClosed:
			f.closed[k].Add(1)
		case endRenew:
			f.renewed[k].Add(1)
			continue // at once: the server has already let it go
		}
		sleep(ctx, f.wait+rand.N(f.wait))
	}
}

func (f *httpFlood) connect(ctx context.Context) (net.Conn, error) {
	select {
	case f.par <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-f.par }()
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return f.dial(dctx, "tcp4", f.addr)
}

// How a held connection ended.
type connEnd int

const (
	endStopped connEnd = iota // the attack ended
	endClosed                 // the server closed it
	endRenew                  // held for renew: replace it
)

// use sends what kind k sends and waits until the server closes c, ctx
// ends, or, for connUnread, f.renew has passed.
func (f *httpFlood) use(ctx context.Context, c net.Conn, k connKind) connEnd {
	host := strings.Split(f.addr, ":")[0]
	switch k {
	case connPartial:
		if _, err := io.WriteString(c, "GET "+f.path+" HTTP/1.1\r\nHost: "+host+"\r\nUser-Agent: flood\r\n"); err != nil {
			return endClosed
		}
	case connUnread:
		// A small receive buffer: the attacker spends little memory and
		// the server's writes block sooner.
		c.(*net.TCPConn).SetReadBuffer(4096)
		if _, err := io.WriteString(c, "GET "+f.path+" HTTP/1.1\r\nHost: "+host+"\r\nConnection: keep-alive\r\n\r\n"); err != nil {
			return endClosed
		}
		return waitHangup(ctx, c, f.renew)
	}
	// Silent and partial connections get nothing from the server but its
	// close (and perhaps an error status): reading costs the attacker
	// nothing and sees the close at once.
	stop := context.AfterFunc(ctx, func() { c.SetReadDeadline(time.Now()) })
	defer stop()
	buf := make([]byte, 512)
	for {
		if _, err := c.Read(buf); err != nil {
			if ctx.Err() != nil {
				return endStopped
			}
			return endClosed
		}
	}
}

// waitHangup waits, without reading, until the peer of c closes or resets
// it (poll's POLLRDHUP, POLLHUP or POLLERR), ctx ends or renew passes. A
// server that closes with unsent data in its buffer does not send its FIN
// before the data, which this client never takes, so such a close is seen
// only once the server's kernel gives up on the connection and resets it.
func waitHangup(ctx context.Context, c net.Conn, renew time.Duration) connEnd {
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		return endClosed
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	deadline := time.After(renew)
	for {
		select {
		case <-ctx.Done():
			return endStopped
		case <-deadline:
			return endRenew
		case <-tick.C:
		}
		var gone bool
		if err := rc.Control(func(fd uintptr) {
			p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLRDHUP}}
			if n, err := unix.Poll(p, 0); err == nil && n > 0 && p[0].Revents&(unix.POLLRDHUP|unix.POLLHUP|unix.POLLERR) != 0 {
				gone = true
			}
		}); err != nil || gone {
			return endClosed
		}
	}
}

// httpCounts is a snapshot of an httpFlood's counters.
type httpCounts struct {
	opened, closed, renewed, failed, up [connKinds]int64
	held, peak                          int64
}

func (f *httpFlood) counts() httpCounts {
	var c httpCounts
	for k := range connKinds {
		c.opened[k], c.closed[k], c.renewed[k] = f.opened[k].Load(), f.closed[k].Load(), f.renewed[k].Load()
		c.failed[k], c.up[k] = f.failed[k].Load(), f.up[k].Load()
	}
	c.held, c.peak = f.held.Load(), f.peak.Load()
	return c
}

// allOpened is how many connections were opened, all kinds.
func (c httpCounts) allOpened() int64 {
	var n int64
	for _, o := range c.opened {
		n += o
	}
	return n
}

func (c httpCounts) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "held %d (peak %d)", c.held, c.peak)
	for k := range connKinds {
		fmt.Fprintf(&b, "; %s: held %d, opened %d, closed by the server %d", k, c.up[k], c.opened[k], c.closed[k])
		if k == connUnread {
			fmt.Fprintf(&b, ", renewed %d", c.renewed[k])
		}
		fmt.Fprintf(&b, ", failed dials %d", c.failed[k])
	}
	return b.String()
}

// TFTP opcodes and the texts of rackboot's refusals (RFC 1350; tftp/errors.go).
const (
	tftpRRQ   = 1
	tftpDATA  = 3
	tftpERROR = 5

	tftpMsgLimited = "too many transfers from your address"
	tftpMsgBusy    = "server busy, retry later"
)

// tftpFlood sends read requests from n UDP sockets of one address and
// never acknowledges a block: each request the server admits holds a
// transfer until the server gives up on it. Every socket sends its request
// again every resend, as a client that hears nothing would, so the flood
// takes any slot that frees.
type tftpFlood struct {
	listen func() (net.PacketConn, error)
	server *net.UDPAddr
	file   string
	n      int
	resend time.Duration
	wg     sync.WaitGroup

	// Counts: requests sent; DATA packets received (first sends and the
	// server's retransmissions); transfers admitted (distinct server
	// ports that sent DATA); refusals by text; other ERROR packets.
	sent, data, admitted, limited, busy, other atomic.Int64
	sockets                                    atomic.Int64 // sockets open

	mu     sync.Mutex
	others map[string]int // texts of the other ERROR packets
}

// start opens the sockets and sends the first requests, all at once, and
// returns; stop it by cancelling ctx and calling done. It fails if a
// socket cannot be opened.
func (f *tftpFlood) start(ctx context.Context) error {
	rrq := binary.BigEndian.AppendUint16(nil, tftpRRQ)
	rrq = append(append(append(rrq, f.file...), 0), "octet\x00"...)
	conns := make([]net.PacketConn, 0, f.n)
	for range f.n {
		c, err := f.listen()
		if err != nil {
			for _, c := range conns {
				c.Close()
			}
			return err
		}
		conns = append(conns, c)
	}
	for _, c := range conns {
		f.sockets.Add(1)
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			defer f.sockets.Add(-1)
			defer c.Close()
			f.run(ctx, c, rrq)
		}()
	}
	return nil
}

func (f *tftpFlood) done() { f.wg.Wait() }

func (f *tftpFlood) run(ctx context.Context, c net.PacketConn, rrq []byte) {
	stop := context.AfterFunc(ctx, func() { c.SetReadDeadline(time.Now()) })
	defer stop()
	seen := map[int]bool{} // server ports (transfers) that sent DATA
	buf := make([]byte, 2048)
	next := time.Now()
	for ctx.Err() == nil {
		if !time.Now().Before(next) {
			if _, err := c.WriteTo(rrq, f.server); err == nil {
				f.sent.Add(1)
			}
			next = time.Now().Add(f.resend)
		}
		c.SetReadDeadline(next)
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return
		}
		if n < 4 {
			continue
		}
		switch binary.BigEndian.Uint16(buf) {
		case tftpDATA: // never acknowledged
			f.data.Add(1)
			if p := from.(*net.UDPAddr).Port; !seen[p] {
				seen[p] = true
				f.admitted.Add(1)
			}
		case tftpERROR:
			switch strings.TrimRight(string(buf[4:n]), "\x00") {
			case tftpMsgLimited:
				f.limited.Add(1)
			case tftpMsgBusy:
				f.busy.Add(1)
			default:
				f.other.Add(1)
				f.mu.Lock()
				if f.others == nil {
					f.others = map[string]int{}
				}
				// The address and port a text may carry would make
				// each one different.
				f.others[addrPort.ReplaceAllString(strings.TrimRight(string(buf[4:n]), "\x00"), "ADDR")]++
				f.mu.Unlock()
			}
		}
	}
}

func (f *tftpFlood) String() string {
	f.mu.Lock()
	others := fmt.Sprint(f.others)
	f.mu.Unlock()
	return fmt.Sprintf("%d sockets, %d requests sent, %d admitted (%d DATA packets received, none acknowledged), refused: %d too many from this address, %d server busy; %d other errors %s",
		f.sockets.Load(), f.sent.Load(), f.admitted.Load(), f.data.Load(), f.limited.Load(), f.busy.Load(), f.other.Load(), others)
}

// addrPort is an IPv4 address and port in an error text.
var addrPort = regexp.MustCompile(`\d+\.\d+\.\d+\.\d+:\d+`)

// fdWatch samples how many descriptors a process holds.
type fdWatch struct {
	pid  int
	peak atomic.Int64
	last atomic.Int64
}

func (w *fdWatch) run(ctx context.Context) {
	for {
		if ents, err := os.ReadDir(filepath.Join("/proc", fmt.Sprint(w.pid), "fd")); err == nil {
			n := int64(len(ents))
			w.last.Store(n)
			if n > w.peak.Load() {
				w.peak.Store(n)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// nofileLimit reads a process's open-file limit (soft, hard) from
// /proc/PID/limits, as the kernel applies it.
func nofileLimit(pid int) (string, error) {
	b, err := os.ReadFile(filepath.Join("/proc", fmt.Sprint(pid), "limits"))
	if err != nil {
		return "", err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "Max open files") {
			f := strings.Fields(strings.TrimPrefix(l, "Max open files"))
			if len(f) >= 2 {
				return f[0] + ":" + f[1], nil
			}
		}
	}
	return "", errors.New("no Max open files line")
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
