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

// Refresh bounds of the neighbour snapshot: it is at most snapshotAge old
// when a request finds its address in it, and a miss or a mismatch reads
// the table again unless the last read is younger than minRefresh (so a
// flood of strangers costs at most one table dump per minRefresh).
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
	read func() (neighbours, error)
	now  func() time.Time

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

// verify returns nil when a request from ip may speak for the machine mac.
func (c *linkCheck) verify(ip netip.Addr, mac net.HardwareAddr) error {
	ip = ip.Unmap().WithZone("")
	for _, p := range c.trusted {
		if p.Contains(ip) {
			return nil
		}
	}
	snap, fresh, err := c.snapshot(false)
	if err != nil {
		return &linkError{Claimed: mac, Reason: "the neighbour table cannot be read: " + err.Error()}
	}
	hw, ok := snap.hw[ip]
	if (!ok || !sameMAC(hw, mac)) && !fresh {
		// A machine that just took over an address, or whose entry is
		// newer than the snapshot: read the table again.
		if snap, _, err = c.snapshot(true); err != nil {
			return &linkError{Claimed: mac, Reason: "the neighbour table cannot be read: " + err.Error()}
		}
		hw, ok = snap.hw[ip]
	}
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

// verifyRequest is verify for an HTTP request's peer.
func (c *linkCheck) verifyRequest(r *http.Request, mac net.HardwareAddr) error {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return &linkError{Claimed: mac, Reason: fmt.Sprintf("its peer address %q cannot be parsed", r.RemoteAddr)}
	}
	return c.verify(ap.Addr(), mac)
}

// snapshot returns the neighbour snapshot, read again when older than
// snapshotAge, or when force is set and it is older than minRefresh. fresh
// reports whether it is younger than minRefresh: reading again would tell
// nothing new.
func (c *linkCheck) snapshot(force bool) (neighbours, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.clock()
	age := now.Sub(c.at)
	if c.at.IsZero() || age >= snapshotAge || age < 0 || force && age >= minRefresh {
		read := c.read
		if read == nil {
			read = readNeighbours
		}
		snap, err := read()
		if err != nil {
			return neighbours{}, false, err
		}
		c.snap, c.at, age = snap, now, 0
	}
	return c.snap, age < minRefresh, nil
}

func (c *linkCheck) clock() time.Time {
	if c.now == nil {
		return time.Now()
	}
	return c.now()
}

// macOf is the neighbour table's link-layer address for ip, or nil: TFTP
// and HTTP requests carry only the client's IP, and logs name the machine
// by the MAC the admin knows it by.
func (c *linkCheck) macOf(ip netip.Addr) net.HardwareAddr {
	snap, _, err := c.snapshot(false)
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
