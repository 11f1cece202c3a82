package lab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"time"
)

// HostLink is the name of a lab host's interface inside its namespace
// (AddHost): the far end of its veth, whose near end is a port of the
// bridge.
const HostLink = "lab0"

// Host is a namespace of its own on the lab's segment: another appliance,
// a member of a store cluster. Programs run in it with Net.Command(NS, …)
// and listen on IP, which every other namespace of the lab reaches through
// the bridge.
type Host struct {
	NS   string // namespace name, PREFIX-PID-RANDOM-ROLE
	IP   string // its address on the segment, PrefixLen bits of network
	Link string // its interface: HostLink, or Bridge for the server namespace
}

// Server is the server namespace as a Host: the appliance the lab always
// has, on the bridge with ServerIP.
func (n *Net) Server() Host { return Host{NS: n.Srv, IP: ServerIP, Link: Bridge} }

// hostRole is what AddHost accepts as a role, and Sweep recognizes beside
// srv, site and cli: "app2", "etcd1"…
var hostRole = regexp.MustCompile(`^(app|etcd)[0-9]{1,2}$`)

// AddHost creates a namespace for role (app2, etcd1…: a word of hostRole)
// joined to the bridge by a veth, with addr on it, up. Close removes it
// with the others, and Sweep recognizes it. addr must be on the lab's
// segment, outside the site DHCP server's pool and apart from ServerIP,
// SiteIP, ClientIP and the machines' static addresses; the caller picks it.
func (n *Net) AddHost(ctx context.Context, role, addr string) (Host, error) {
	if !hostRole.MatchString(role) {
		return Host{}, fmt.Errorf("lab: host role %q: want app or etcd and a number", role)
	}
	a, err := netip.ParseAddr(addr)
	if err != nil || !netip.MustParsePrefix(ServerIP+"/24").Contains(a) {
		return Host{}, fmt.Errorf("lab: host address %q: want an address of %s/%d", addr, ServerIP, PrefixLen)
	}
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return Host{}, errors.New("lab: net is closed")
	}
	h := Host{NS: n.base + "-" + role, IP: addr, Link: HostLink}
	for _, have := range n.hosts {
		if have == h.NS {
			n.mu.Unlock()
			return Host{}, fmt.Errorf("lab: host %s exists", role)
		}
	}
	n.hosts = append(n.hosts, h.NS)
	n.mu.Unlock()

	// The bridge's end is named after the role (at most 15 characters:
	// "vetcd12-br" is 10).
	port := "v" + role + "-br"
	srv, in := []string{"-n", n.Srv}, []string{"-n", h.NS}
	steps := [][]string{
		{"netns", "add", h.NS},
		cat(srv, "link", "add", port, "type", "veth", "peer", "name", HostLink, "netns", h.NS),
		cat(srv, "link", "set", port, "master", Bridge, "up"),
		cat(in, "link", "set", "lo", "up"),
		cat(in, "addr", "add", fmt.Sprintf("%s/%d", addr, PrefixLen), "dev", HostLink),
		cat(in, "link", "set", HostLink, "up"),
	}
	for _, args := range steps {
		if err := ip(ctx, args...); err != nil {
			// Close deletes the namespace, and with it the veth.
			return Host{}, err
		}
	}
	// As for the bridge (create): a server sending router
	// advertisements binds the link-local address once DAD is done.
	if err := waitDAD(ctx, h.NS, HostLink, 5*time.Second); err != nil {
		return Host{}, err
	}
	return h, nil
}
