package main

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Timeouts of the HTTP server (docs/DESIGN.md, section 7, "Resource
// limits"). Requests are small (scripts, plans, reports of at most a few
// MiB); what takes long are artifact downloads and event streams, which set
// their own per-write deadlines (artifacts.Handler.StallTimeout, and the
// api's streams) instead of these.
const (
	// httpReadHeaderTimeout bounds a request's header: a connection that
	// opens and sends nothing, or trickles its header, is closed.
	httpReadHeaderTimeout = 10 * time.Second
	// httpReadTimeout bounds a whole request, header and body. The largest
	// body, an agent's log batch, takes milliseconds on a boot network.
	httpReadTimeout = 30 * time.Second
	// httpWriteTimeout bounds a response from the end of its request.
	httpWriteTimeout = 30 * time.Second
	// httpIdleTimeout closes a keep-alive connection that has carried no
	// request for that long. iPXE fetches its script, kernel and initrd
	// seconds apart, and then the machine's kernel takes over without
	// closing iPXE's connection: the timeout is what frees it.
	httpIdleTimeout = 30 * time.Second
	// httpMaxHeaderBytes bounds a request's line and header (Go's default
	// is 1 MiB, per connection): a longer one is answered 431.
	httpMaxHeaderBytes = 64 << 10
	// httpMaxURI is the longest request target served; a longer one gets
	// 414 before any handler, log or file system sees it. iPXE's longest,
	// /ipxe?mac=…&arch=…&platform=…&uuid=…, is under 200 bytes.
	httpMaxURI = 8 << 10
)

// Connection cap defaults: each connection may hold two descriptors (its
// socket and a file being served), and the rest of the daemon (TFTP's 256
// transfers, DHCP, the registry, staged files) keeps fdReserve for itself.
const (
	// defaultHTTPMaxPerClient is --http-max-per-client's default.
	defaultHTTPMaxPerClient = 64
	defaultMaxConns         = 4096
	minMaxConns             = 64
	fdReserve               = 512
)

// autoMaxConns is the connection cap for an open-file limit of nofile
// (RLIMIT_NOFILE, which Go raises to its hard limit at start).
func autoMaxConns(nofile uint64) int {
	n := (int64(min(nofile, 1<<30)) - fdReserve) / 2
	return int(min(max(n, minMaxConns), defaultMaxConns))
}

// defaultHTTPMaxConns is autoMaxConns of this process's limit.
func defaultHTTPMaxConns() int {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		return defaultMaxConns
	}
	return autoMaxConns(rl.Cur)
}

// newHTTPServer is the daemon's HTTP server on ln with its limits: the
// timeouts above, and at most maxConns open connections (a connLimit,
// which also becomes the server's ConnState hook). It returns the server
// and the listener to Serve it on.
func newHTTPServer(ln net.Listener, h http.Handler, maxConns, perClient int, log *slog.Logger) (*http.Server, *connLimit) {
	cl := newConnLimit(ln, maxConns, perClient, log)
	return &http.Server{
		Handler:           limitURI(h),
		ReadHeaderTimeout: httpReadHeaderTimeout,
		ReadTimeout:       httpReadTimeout,
		WriteTimeout:      httpWriteTimeout,
		IdleTimeout:       httpIdleTimeout,
		MaxHeaderBytes:    httpMaxHeaderBytes,
		ConnState:         cl.connState,
		// When the connection was accepted, for linkCheck: a neighbour
		// snapshot read later holds the client's entry.
		ConnContext: func(ctx context.Context, _ net.Conn) context.Context {
			return context.WithValue(ctx, acceptedKey{}, time.Now())
		},
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}, cl
}

// limitURI answers 414 to a request target over httpMaxURI bytes, so that
// no handler parses it and no log line carries it.
func limitURI(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.RequestURI) > httpMaxURI {
			http.Error(w, "URI too long", http.StatusRequestURITooLong)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// connLimit is a listener that keeps at most max connections open. At the
// cap it does not make the newcomer wait, as a plain limiting listener
// (golang.org/x/net/netutil.LimitListener) does, for as long as the
// connections it holds stay open: it closes the connection that has been
// idle longest, a keep-alive connection between requests, or one that has
// sent nothing for newGrace. In a boot storm most open connections are
// such: iPXE leaves its keep-alive connection open when it hands the
// machine to the installer kernel, and an idle-connection flood is nothing
// else; a limiting listener would queue every new machine behind them for
// an idle timeout. A closed keep-alive connection costs its client a new
// handshake at its next request, nothing more (HTTP/1.1 lets either side
// close an idle connection; clients retry a request that met the close).
// Only when every connection is busy with a request does the newcomer wait
// in the kernel's accept queue, and a request ends within the write
// timeout or the stall timeout of a download.
//
// Shedding idle connections does not help against connections that are
// never idle in that sense: a flood of half-sent headers and of downloads
// never read holds busy slots until their timeouts, and every newcomer
// waits behind them. So one client address may hold at most perClient
// connections: beyond that a new connection from it is closed as soon as
// it is accepted, and the cap is never reached by one address alone. A
// machine keeps one or two connections (iPXE's, then its agent's), an
// admin a few: the default, defaultHTTPMaxPerClient, leaves room for many
// machines behind one address (a NAT) without letting one address take
// the appliance.
type connLimit struct {
	net.Listener
	max       int
	perClient int // 0: no per-address cap
	log       *slog.Logger

	mu     sync.Mutex
	open   int // connections counted against max
	conns  map[net.Conn]*connEntry
	byAddr map[netip.Addr]int // connections accepted and not yet closed, per client address
	wake   chan struct{}      // a slot freed or a connection went idle
	done   chan struct{}      // the listener is closed
	close  sync.Once

	shed    atomic.Uint64 // idle connections closed to make room
	refused atomic.Uint64 // connections closed at once: their address had perClient
}

type connEntry struct {
	addr  netip.Addr
	state http.ConnState
	since time.Time // when it entered state
	shed  bool      // closed by the limiter; its slot already given on
}

// newGrace is how long a new connection may send nothing before it may be
// shed. A client sends its request right after the handshake; under load
// the request is in the socket before the connection is even accepted.
const newGrace = time.Second

func newConnLimit(ln net.Listener, max, perClient int, log *slog.Logger) *connLimit {
	return &connLimit{Listener: ln, max: max, perClient: perClient, log: log, conns: make(map[net.Conn]*connEntry),
		byAddr: make(map[netip.Addr]int), wake: make(chan struct{}, 1), done: make(chan struct{})}
}

// Accept accepts a connection, then gives it a slot, shedding an idle
// connection if there is none free, or waiting for one. The connection is
// accepted first so that nothing is shed for a newcomer that does not
// exist; while it waits it is the only descriptor over the cap. The
// connection returned is the listener's own (*net.TCPConn), so responses
// keep sendfile(2).
func (l *connLimit) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		addr := peerAddr(c)
		if !l.admit(addr) {
			c.Close()
			continue
		}
		for {
			wait := l.reserve(c, addr)
			if wait == 0 {
				return c, nil
			}
			t := time.NewTimer(wait)
			select {
			case <-l.wake:
			case <-t.C:
			case <-l.done:
				t.Stop()
				c.Close()
				l.mu.Lock()
				l.release(addr)
				l.mu.Unlock()
				return nil, net.ErrClosed
			}
			t.Stop()
		}
	}
}

// admit counts a connection accepted from addr, or refuses it when addr
// already has perClient.
func (l *connLimit) admit(addr netip.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.perClient > 0 && l.byAddr[addr] >= l.perClient {
		if n := l.refused.Add(1); n == 1 || n%1000 == 0 {
			l.log.Warn("http connections refused: too many from one address",
				"ip", addr.String(), "max_per_client", l.perClient, "refused", n)
		}
		return false
	}
	l.byAddr[addr]++
	return true
}

// release forgets a connection of addr counted by admit. l.mu is held.
func (l *connLimit) release(addr netip.Addr) {
	if n := l.byAddr[addr]; n > 1 {
		l.byAddr[addr] = n - 1
	} else {
		delete(l.byAddr, addr)
	}
}

// peerAddr is c's client address, without port or zone, IPv4 unmapped.
func peerAddr(c net.Conn) netip.Addr {
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return ta.AddrPort().Addr().Unmap().WithZone("")
	}
	return netip.Addr{}
}

// reserve gives c a slot and returns 0, or returns how long to wait before
// trying again (woken earlier when a slot frees or a connection idles).
func (l *connLimit) reserve(c net.Conn, addr netip.Addr) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if l.open < l.max {
		l.open++
		l.conns[c] = &connEntry{addr: addr, state: http.StateNew, since: now}
		return 0
	}
	var victim net.Conn
	var ve *connEntry
	wait := time.Second // nothing to shed: a request must end first
	for o, e := range l.conns {
		if e.shed {
			continue
		}
		switch e.state {
		case http.StateIdle:
			if ve == nil || ve.state != http.StateIdle || e.since.Before(ve.since) {
				victim, ve = o, e
			}
		case http.StateNew:
			if left := e.since.Add(newGrace).Sub(now); left > 0 {
				wait = min(wait, left)
			} else if ve == nil || (ve.state == http.StateNew && e.since.Before(ve.since)) {
				victim, ve = o, e
			}
		}
	}
	if victim == nil {
		return wait
	}
	// The victim's slot passes to the newcomer: open stays the same, and
	// the victim's StateClosed, when the server sees it, frees nothing.
	ve.shed = true
	victim.Close()
	l.conns[c] = &connEntry{addr: addr, state: http.StateNew, since: now}
	if n := l.shed.Add(1); n == 1 || n%1000 == 0 {
		l.log.Warn("http connection cap reached: closing the longest-idle connections for new ones",
			"max_conns", l.max, "shed", n)
	}
	return 0
}

// connState is the server's ConnState hook: it follows each connection's
// state, for reserve, and frees its slot when it closes.
func (l *connLimit) connState(c net.Conn, st http.ConnState) {
	// Served over TLS (http.Server.ServeTLS wraps the listener), the
	// server reports the *tls.Conn around the connection Accept counted.
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.conns[c]
	if e == nil {
		return
	}
	switch st {
	case http.StateClosed, http.StateHijacked:
		delete(l.conns, c)
		l.release(e.addr)
		if !e.shed {
			l.open--
		}
	default:
		e.state, e.since = st, time.Now()
		if st != http.StateIdle {
			return
		}
	}
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// Close closes the listener and ends a waiting Accept.
func (l *connLimit) Close() error {
	l.close.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// Shed is how many idle connections were closed to make room.
func (l *connLimit) Shed() uint64 { return l.shed.Load() }

// Refused is how many connections were closed at once because their
// address had perClient open.
func (l *connLimit) Refused() uint64 { return l.refused.Load() }

// Open is how many connections hold a slot.
func (l *connLimit) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open
}
