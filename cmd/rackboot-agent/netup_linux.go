package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/vishvananda/netlink"

	"github.com/rackboot/rackboot/agentapi"
)

const sysClassNet = "/sys/class/net"

// Bounds of bringing the network up. A NIC driver registers its
// interfaces within a second or two of loading; a switch port with
// spanning tree can take 30 s to forward after link up, which the DHCP
// retries cover.
const (
	linkWait    = 30 * time.Second
	carrierWait = 15 * time.Second
	dhcpTotal   = 3 * time.Minute
)

// bringUpNetwork finds the boot NIC by its MAC, brings it and lo up, gets
// a DHCP lease on it and applies it.
func bringUpNetwork(ctx context.Context, log *slog.Logger, mac net.HardwareAddr) (*dhcpLink, error) {
	if lo, err := netlink.LinkByName("lo"); err == nil {
		if err := netlink.LinkSetUp(lo); err != nil {
			log.Warn("cannot bring lo up", "err", err)
		}
	}
	name, err := waitLink(ctx, mac)
	if err != nil {
		return nil, err
	}
	log = log.With("phase", agentapi.PhaseNetwork, "link", name)
	link, err := netlink.LinkByName(name)
	if err != nil {
		return nil, fmt.Errorf("link %s: %w", name, err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return nil, fmt.Errorf("link %s up: %w", name, err)
	}
	if waitCarrier(ctx, name) {
		log.Info("link up")
	} else {
		log.Warn("no carrier yet, trying DHCP anyway", "waited", carrierWait)
	}
	lease, err := dhcpLease(ctx, log, name)
	if err != nil {
		return nil, err
	}
	cfg, err := leaseConfig(lease.ACK)
	if err != nil {
		return nil, err
	}
	if err := applyConfig(link, cfg); err != nil {
		return nil, err
	}
	log.Info("dhcp lease", leaseAttrs(cfg)...)
	return &dhcpLink{name: name, lease: lease, cfg: cfg}, nil
}

// dhcpLink is the boot NIC with its lease.
type dhcpLink struct {
	name  string
	lease *nclient4.Lease
	cfg   netConfig
}

// keep renews the lease until ctx ends (see leaseKeeper).
func (l *dhcpLink) keep(ctx context.Context, log *slog.Logger) {
	k := &leaseKeeper{
		lease: l.cfg.Lease,
		addr:  l.cfg.Addr.Addr(),
		floor: 10 * time.Second,
		log:   log.With("phase", agentapi.PhaseNetwork, "link", l.name),
		renew: func(ctx context.Context) (*dhcpv4.DHCPv4, error) {
			lease, err := renew(ctx, l.name, l.lease)
			if err != nil {
				return nil, err
			}
			l.lease = lease
			return lease.ACK, nil
		},
	}
	k.run(ctx)
}

func renew(ctx context.Context, name string, lease *nclient4.Lease) (*nclient4.Lease, error) {
	c, err := nclient4.New(name, nclient4.WithTimeout(3*time.Second), nclient4.WithRetry(3))
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.Renew(ctx, lease)
}

// waitLink polls sysfs until the interface with mac appears.
func waitLink(ctx context.Context, mac net.HardwareAddr) (string, error) {
	deadline := time.Now().Add(linkWait)
	for {
		name, err := findLink(sysClassNet, mac)
		if err == nil {
			return name, nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("%w %s after %v (is its driver in the initramfs? interfaces: %s)",
				errNoLink, mac, linkWait, linkNames(sysClassNet))
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return "", err
		}
	}
}

// waitCarrier reports whether the link has carrier within carrierWait.
func waitCarrier(ctx context.Context, name string) bool {
	deadline := time.Now().Add(carrierWait)
	for {
		b, err := os.ReadFile(filepath.Join(sysClassNet, name, "carrier"))
		if err == nil && strings.TrimSpace(string(b)) == "1" {
			return true
		}
		if time.Now().After(deadline) || sleep(ctx, 100*time.Millisecond) != nil {
			return false
		}
	}
}

// dhcpLease asks for a lease until one comes or dhcpTotal passes, waiting
// longer between rounds each time (1 s, 2 s, 4 s … 16 s).
func dhcpLease(ctx context.Context, log *slog.Logger, name string) (*nclient4.Lease, error) {
	deadline := time.Now().Add(dhcpTotal)
	wait := time.Second
	for try := 1; ; try++ {
		lease, err := dhcpOnce(ctx, name)
		if err == nil {
			return lease, nil
		}
		if time.Now().Add(wait).After(deadline) || ctx.Err() != nil {
			return nil, fmt.Errorf("no DHCP lease on %s after %d rounds: %w", name, try, err)
		}
		log.Warn("dhcp failed, retrying", "try", try, "wait", wait, "err", err)
		if err := sleep(ctx, wait); err != nil {
			return nil, err
		}
		wait = min(2*wait, 16*time.Second)
	}
}

// dhcpOnce runs one exchange on a raw socket: the interface has no
// address yet, so a UDP socket could neither send from 0.0.0.0 nor
// receive the server's answer to the offered address.
func dhcpOnce(ctx context.Context, name string) (*nclient4.Lease, error) {
	// nclient4 retransmits each message (RFC 2131 4.1): 3 tries of 3 s.
	c, err := nclient4.New(name, nclient4.WithTimeout(3*time.Second), nclient4.WithRetry(3))
	if err != nil {
		return nil, fmt.Errorf("dhcp on %s: %w", name, err)
	}
	defer c.Close()
	return requestLease(ctx, c)
}

// applyConfig sets the MTU, the address and the default route, and writes
// /etc/resolv.conf.
func applyConfig(link netlink.Link, c netConfig) error {
	if c.MTU > 0 && c.MTU != link.Attrs().MTU {
		if err := netlink.LinkSetMTU(link, c.MTU); err != nil {
			return fmt.Errorf("mtu %d: %w", c.MTU, err)
		}
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: c.Addr.Addr().AsSlice(), Mask: net.CIDRMask(c.Addr.Bits(), 32)}}
	if err := netlink.AddrReplace(link, addr); err != nil {
		return fmt.Errorf("address %s: %w", c.Addr, err)
	}
	if c.Gateway.IsValid() {
		gw := net.IP(c.Gateway.AsSlice())
		if !c.Addr.Masked().Contains(c.Gateway) {
			// A router outside the subnet (some cloud and /32 setups) is
			// reachable on the link: say so before routing through it.
			onlink := &netlink.Route{LinkIndex: link.Attrs().Index, Scope: netlink.SCOPE_LINK,
				Dst: &net.IPNet{IP: gw, Mask: net.CIDRMask(32, 32)}}
			if err := netlink.RouteReplace(onlink); err != nil {
				return fmt.Errorf("route to gateway %s: %w", c.Gateway, err)
			}
		}
		def := &netlink.Route{LinkIndex: link.Attrs().Index, Gw: gw,
			Dst: &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}}
		if err := netlink.RouteReplace(def); err != nil {
			return fmt.Errorf("default route via %s: %w", c.Gateway, err)
		}
	}
	if len(c.DNS) > 0 || len(c.Search) > 0 {
		if err := os.WriteFile("/etc/resolv.conf", resolvConf(c), 0o644); err != nil {
			return fmt.Errorf("resolv.conf: %w", err)
		}
	}
	return nil
}
