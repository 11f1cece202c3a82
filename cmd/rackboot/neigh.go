package main

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
)

// A request for a machine's script or an agent's report names the machine
// by the MAC it claims (mac= on /ipxe, the agent's header). A machine on a
// segment the appliance is attached to must have resolved the appliance's
// address by ARP (or IPv6 neighbour discovery) before its TCP handshake,
// and the appliance had to resolve it back to answer, so the kernel's
// neighbour table holds the link-layer address the request really came
// from. linkCheck compares the two: a stranger who knows a pending
// machine's MAC gets no install token and changes no state
// (docs/DESIGN.md §7). What it cannot check — a routed segment behind a
// DHCP relay, or the appliance itself — is refused unless the admin
// trusts its prefix (--trust-routed).

// Refresh bounds of the neighbour snapshot. A request whose address is in
// a snapshot at most snapshotAge old, with the MAC it names, is verified. A
// miss or a mismatch is conclusive only in a snapshot read after the
// request's connection was accepted (the TCP handshake, and so the
// neighbour entry, came before); else the table is read again, at most
// once per minRefresh: a request that finds the last read younger waits
// for the next one, so a flood of strangers costs at most one table dump
// per minRefresh while a machine that just appeared is never refused for
// a stale snapshot (a rack booting at once is many such machines).
const (
	snapshotAge = time.Second
	minRefresh  = 50 * time.Millisecond
)

// linkCheck verifies claimed MACs against the neighbour table. It is safe
// for concurrent use.
type linkCheck struct {
	// trusted are source prefixes whose claimed MAC is believed without a
	// check (--trust-routed).
	trusted []netip.Prefix
	// read returns the neighbour table and the local network; nil reads
	// the kernel's (readNeighbours).
	read  func() (neighbours, error)
	now   func() time.Time
	sleep func(time.Duration)

	mu   sync.Mutex
	snap neighbours
	at   time.Time // when snap was read; zero: never
}

// neighbours is a snapshot of what the kernel knows of its segments.
type neighbours struct {
	hw        map[netip.Addr]net.HardwareAddr // resolved neighbours
	connected []netip.Prefix                  // prefixes of the local interfaces (not loopback)
	own       map[netip.Addr]bool             // the appliance's own addresses
}

// linkError says why a claimed MAC was not believed. It goes to the log
// and, reduced, to the requester.
type linkError struct {
	Claimed net.HardwareAddr
	Seen    net.HardwareAddr // the neighbour table's address, when one was found
	Reason  string
}

func (e *linkError) Error() string {
	if e.Seen != nil {
		return fmt.Sprintf("the request names %s but came from link-layer address %s", e.Claimed, e.Seen)
	}
	return fmt.Sprintf("the request names %s but %s", e.Claimed, e.Reason)
}

// verify returns nil when a request from ip, on a connection accepted at
// since, may speak for the machine mac.
func (c *linkCheck) verify(ip netip.Addr, mac net.HardwareAddr, since time.Time) error {
	ip = ip.Unmap().WithZone("")
	for _, p := range c.trusted {
		if p.Contains(ip) {
			return nil
		}
	}
	snap, at, err := c.snapshot(time.Time{})
	if err == nil && !at.After(since) {
		if hw, ok := snap.hw[ip]; !ok || !sameMAC(hw, mac) {
			// Read before the connection: the entry may be newer.
			snap, _, err = c.snapshot(since)
		}
	}
	if err != nil {
		return &linkError{Claimed: mac, Reason: "the neighbour table cannot be read: " + err.Error()}
	}
	hw, ok := snap.hw[ip]
	switch {
	case ok && sameMAC(hw, mac):
		return nil
	case ok:
		return &linkError{Claimed: mac, Seen: hw}
	case ip.IsLoopback() || snap.own[ip]:
		return &linkError{Claimed: mac, Reason: fmt.Sprintf("it came from the appliance itself (%s), where no link-layer address can be checked; list %s in --trust-routed to allow local tools", ip, ip)}
	case onLink(snap.connected, ip):
		return &linkError{Claimed: mac, Reason: fmt.Sprintf("the neighbour table has no link-layer address for %s", ip)}
	default:
		return &linkError{Claimed: mac, Reason: fmt.Sprintf("%s is not on a segment the appliance is attached to (routed, e.g. behind a DHCP relay), so its link-layer address cannot be checked; list its subnet in --trust-routed if that segment is trusted", ip)}
	}
}

// verifyRequest is verify for an HTTP request's peer, on the connection
// accepted at the time newHTTPServer's ConnContext noted (now, if none).
func (c *linkCheck) verifyRequest(r *http.Request, mac net.HardwareAddr) error {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return &linkError{Claimed: mac, Reason: fmt.Sprintf("its peer address %q cannot be parsed", r.RemoteAddr)}
	}
	since, ok := r.Context().Value(acceptedKey{}).(time.Time)
	if !ok {
		since = c.clock()
	}
	return c.verify(ap.Addr(), mac, since)
}

// snapshot returns the neighbour snapshot and when it was read: read
// again when it is older than snapshotAge, or than since. Reads are at
// least minRefresh apart: a caller that needs a newer one waits for its
// turn, and a read made meanwhile by another caller serves it.
func (c *linkCheck) snapshot(since time.Time) (neighbours, time.Time, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		now := c.clock()
		if !c.at.IsZero() && now.Sub(c.at) < snapshotAge && now.Sub(c.at) >= 0 && !c.at.Before(since) {
			return c.snap, c.at, nil
		}
		if wait := c.at.Add(minRefresh).Sub(now); !c.at.IsZero() && wait > 0 && wait <= minRefresh {
			c.mu.Unlock()
			c.pause(wait)
			c.mu.Lock()
			continue
		}
		read := c.read
		if read == nil {
			read = readNeighbours
		}
		// The time before the dump: an entry made before it is in it.
		start := c.clock()
		snap, err := read()
		if err != nil {
			return neighbours{}, time.Time{}, err
		}
		c.snap, c.at = snap, start
		return c.snap, c.at, nil
	}
}

func (c *linkCheck) clock() time.Time {
	if c.now == nil {
		return time.Now()
	}
	return c.now()
}

func (c *linkCheck) pause(d time.Duration) {
	if c.sleep == nil {
		time.Sleep(d)
		return
	}
	c.sleep(d)
}

// acceptedKey keys the time a connection was accepted in its requests'
// contexts (newHTTPServer's ConnContext).
type acceptedKey struct{}

// macOf is the neighbour table's link-layer address for ip, or nil: TFTP
// and HTTP requests carry only the client's IP, and logs name the machine
// by the MAC the admin knows it by.
func (c *linkCheck) macOf(ip netip.Addr) net.HardwareAddr {
	snap, _, err := c.snapshot(time.Time{})
	if err != nil {
		return nil
	}
	return snap.hw[ip.Unmap().WithZone("")]
}

func sameMAC(a, b net.HardwareAddr) bool { return string(a) == string(b) }

func onLink(connected []netip.Prefix, ip netip.Addr) bool {
	for _, p := range connected {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// readNeighbours dumps the kernel's neighbour tables (IPv4 and IPv6) and
// the addresses of the local interfaces.
func readNeighbours() (neighbours, error) {
	list, err := netlink.NeighList(0, netlink.FAMILY_ALL)
	if err != nil {
		return neighbours{}, fmt.Errorf("neighbour table: %w", err)
	}
	n := neighbours{hw: make(map[netip.Addr]net.HardwareAddr, len(list)), own: make(map[netip.Addr]bool)}
	for _, e := range list {
		// An entry being resolved, or whose resolution failed, names no
		// address; a permanent or static entry does.
		if len(e.HardwareAddr) == 0 || e.State&(netlink.NUD_INCOMPLETE|netlink.NUD_FAILED) != 0 {
			continue
		}
		ip, ok := netip.AddrFromSlice(e.IP)
		if !ok || isZeroMAC(e.HardwareAddr) {
			continue
		}
		n.hw[ip.Unmap()] = e.HardwareAddr
	}
	ifs, err := net.Interfaces()
	if err != nil {
		return neighbours{}, fmt.Errorf("interfaces: %w", err)
	}
	var errs []error
	for _, ifc := range ifs {
		addrs, err := ifc.Addrs()
		if err != nil {
			errs = append(errs, fmt.Errorf("addresses of %s: %w", ifc.Name, err))
			continue
		}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			ip, ok := netip.AddrFromSlice(ipn.IP)
			if !ok {
				continue
			}
			ip = ip.Unmap()
			n.own[ip] = true
			ones, _ := ipn.Mask.Size()
			if ifc.Flags&net.FlagLoopback == 0 {
				n.connected = append(n.connected, netip.PrefixFrom(ip, ones).Masked())
			}
		}
	}
	return n, errors.Join(errs...)
}

func isZeroMAC(hw net.HardwareAddr) bool {
	for _, b := range hw {
		if b != 0 {
			return false
		}
	}
	return true
}
