package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// netConfig is what the agent applies to its NIC from a DHCP lease.
type netConfig struct {
	Addr    netip.Prefix // address and subnet (option 1)
	Gateway netip.Addr   // default router (option 3); invalid: none
	MTU     int          // interface MTU (option 26); 0: leave it
	DNS     []netip.Addr // option 6
	Search  []string     // options 119, else 15
	Server  netip.Addr   // the DHCP server (option 54), for the log
	Lease   time.Duration
}

// leaseConfig reads a DHCPACK.
func leaseConfig(ack *dhcpv4.DHCPv4) (netConfig, error) {
	var c netConfig
	ip, ok := netip.AddrFromSlice(ack.YourIPAddr.To4())
	if !ok || !ip.IsGlobalUnicast() {
		return c, fmt.Errorf("dhcp: lease without a usable address (yiaddr %v)", ack.YourIPAddr)
	}
	bits := -1
	if m := ack.SubnetMask(); m != nil {
		if ones, size := m.Size(); size == 32 {
			bits = ones
		}
	}
	if bits < 0 {
		// RFC 2131 makes option 1 optional; RFC 1122 says to assume the
		// address's classful network then, which is what ISC dhclient
		// does. Every real server sends it.
		bits = classfulBits(ip)
	}
	c.Addr = netip.PrefixFrom(ip, bits)
	for _, r := range ack.Router() {
		if gw, ok := netip.AddrFromSlice(r.To4()); ok && gw.IsGlobalUnicast() {
			c.Gateway = gw
			break
		}
	}
	if b := ack.Options.Get(dhcpv4.OptionInterfaceMTU); len(b) == 2 {
		// RFC 2132 9.1 sets 68 as the least MTU; less is a broken server.
		if mtu := int(b[0])<<8 | int(b[1]); mtu >= 576 {
			c.MTU = mtu
		}
	}
	for _, d := range ack.DNS() {
		if a, ok := netip.AddrFromSlice(d.To4()); ok && !a.IsUnspecified() {
			c.DNS = append(c.DNS, a)
		}
	}
	if l := ack.DomainSearch(); l != nil && len(l.Labels) > 0 {
		c.Search = l.Labels
	} else if dn := ack.DomainName(); dn != "" {
		c.Search = []string{dn}
	}
	if s, ok := netip.AddrFromSlice(ack.ServerIdentifier().To4()); ok {
		c.Server = s
	}
	c.Lease = ack.IPAddressLeaseTime(0)
	return c, nil
}

func classfulBits(ip netip.Addr) int {
	switch b := ip.As4()[0]; {
	case b < 128:
		return 8
	case b < 192:
		return 16
	default:
		return 24
	}
}

// leaseAttrs describes a lease for the log, leaving out what it lacks.
func leaseAttrs(c netConfig) []any {
	a := []any{"ip", c.Addr.String()}
	if c.Gateway.IsValid() {
		a = append(a, "gateway", c.Gateway.String())
	}
	if c.Server.IsValid() {
		a = append(a, "server", c.Server.String())
	}
	if c.Lease > 0 {
		a = append(a, "lease", c.Lease)
	}
	if c.MTU > 0 {
		a = append(a, "mtu", c.MTU)
	}
	if len(c.DNS) > 0 {
		a = append(a, "dns", fmt.Sprint(c.DNS))
	}
	return a
}

// resolvConf renders /etc/resolv.conf, read by Go's resolver when the
// appliance or an image URL is given by name.
func resolvConf(c netConfig) []byte {
	var b bytes.Buffer
	b.WriteString("# written by rackboot-agent from its DHCP lease\n")
	for _, d := range c.DNS {
		fmt.Fprintf(&b, "nameserver %s\n", d)
	}
	if len(c.Search) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(c.Search, " "))
	}
	return b.Bytes()
}

// findLink returns the name of the network interface whose address is
// mac, from sysfs (/sys/class/net/NAME/address).
func findLink(sysClassNet string, mac net.HardwareAddr) (string, error) {
	ents, err := os.ReadDir(sysClassNet)
	if err != nil {
		return "", err
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(sysClassNet, e.Name(), "address"))
		if err != nil {
			continue // gone meanwhile, or no address (some virtual links)
		}
		if hw, err := net.ParseMAC(strings.TrimSpace(string(b))); err == nil && bytes.Equal(hw, mac) {
			return e.Name(), nil
		}
	}
	return "", errNoLink
}

var errNoLink = errors.New("no network interface with that MAC")

// linkNames lists the interfaces with their addresses, for an error
// saying which NICs the kernel did find.
func linkNames(sysClassNet string) string {
	ents, err := os.ReadDir(sysClassNet)
	if err != nil {
		return err.Error()
	}
	var s []string
	for _, e := range ents {
		b, _ := os.ReadFile(filepath.Join(sysClassNet, e.Name(), "address"))
		s = append(s, e.Name()+" "+strings.TrimSpace(string(b)))
	}
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// infiniteLease is option 51's "forever" (RFC 2132 9.2).
const infiniteLease = 0xffffffff * time.Second

// leaseKeeper renews the agent's lease at half its time (RFC 2131 4.4.5,
// T1) while the install runs: a large image on a network with short
// leases outlasts them, and an expired address could be handed to another
// machine mid-install. A failed renewal is retried at half the time left,
// never sooner than floor.
type leaseKeeper struct {
	lease time.Duration // as granted
	addr  netip.Addr    // ours; a renewal cannot move it under a running download
	renew func(ctx context.Context) (ack *dhcpv4.DHCPv4, err error)
	floor time.Duration
	log   *slog.Logger
}

func (k *leaseKeeper) run(ctx context.Context) {
	if k.lease <= 0 || k.lease >= infiniteLease {
		return
	}
	expires := time.Now().Add(k.lease)
	wait := k.lease / 2
	for {
		if sleep(ctx, max(wait, k.floor)) != nil {
			return
		}
		ack, err := k.renew(ctx)
		if err != nil {
			wait = time.Until(expires) / 2
			k.log.Warn("dhcp renewal failed", "err", err, "expires_in", time.Until(expires).Round(time.Second))
			continue
		}
		d := ack.IPAddressLeaseTime(k.lease)
		if d >= infiniteLease {
			k.log.Info("dhcp lease renewed", "lease", "infinite")
			return
		}
		expires, wait = time.Now().Add(d), d/2
		if got, ok := netip.AddrFromSlice(ack.YourIPAddr.To4()); !ok || got != k.addr {
			k.log.Warn("dhcp renewal offers another address, keeping ours", "ip", ack.YourIPAddr.String())
		}
		k.log.Info("dhcp lease renewed", "lease", d)
	}
}
