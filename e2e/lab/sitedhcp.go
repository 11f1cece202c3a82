package lab

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// SiteDHCP is the site's own DHCP server: busybox udhcpd in the Site
// namespace, handing out SiteRangeStart–SiteRangeEnd and nothing about PXE
// (no next-server, no boot file, no vendor options). A proxyDHCP server
// under test has to coexist with it, as in a real rack.
type SiteDHCP struct {
	proc   *Process
	leases string
}

// The site DHCP server's address pool.
const (
	SiteRangeStart = "192.168.77.100"
	SiteRangeEnd   = "192.168.77.150"
)

// StartSiteDHCP starts udhcpd in the Site namespace. dir receives its
// configuration, lease file and log (udhcpd.log).
func (n *Net) StartSiteDHCP(dir string) (*SiteDHCP, error) {
	conf := filepath.Join(dir, "udhcpd.conf")
	leases := filepath.Join(dir, "udhcpd.leases")
	text := fmt.Sprintf(`start %s
end %s
interface %s
lease_file %s
pidfile %s
opt subnet 255.255.255.0
opt lease 3600
`, SiteRangeStart, SiteRangeEnd, SiteLink, leases, filepath.Join(dir, "udhcpd.pid"))
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		return nil, fmt.Errorf("lab: site dhcp: %w", err)
	}
	if err := os.WriteFile(leases, nil, 0o644); err != nil {
		return nil, fmt.Errorf("lab: site dhcp: %w", err)
	}
	logf, err := os.Create(filepath.Join(dir, "udhcpd.log"))
	if err != nil {
		return nil, fmt.Errorf("lab: site dhcp: %w", err)
	}
	defer logf.Close() // the child holds its own descriptor
	cmd := n.Command(n.Site, "busybox", "udhcpd", "-f", conf)
	cmd.Stdout, cmd.Stderr = logf, logf
	p, err := n.Start(cmd)
	if err != nil {
		return nil, err
	}
	return &SiteDHCP{proc: p, leases: leases}, nil
}

// Stop stops udhcpd.
func (s *SiteDHCP) Stop() { s.proc.Stop() }

// Lease returns the address udhcpd leased to mac, waiting up to timeout for
// it. udhcpd keeps leases in memory and writes its lease file on SIGUSR1,
// so Lease asks for a fresh file on every try.
func (s *SiteDHCP) Lease(mac net.HardwareAddr, timeout time.Duration) (netip.Addr, error) {
	deadline := time.Now().Add(timeout)
	for {
		if err := s.proc.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
			return netip.Addr{}, fmt.Errorf("lab: site dhcp: %w", err)
		}
		time.Sleep(200 * time.Millisecond)
		f, err := os.Open(s.leases)
		if err != nil {
			return netip.Addr{}, fmt.Errorf("lab: site dhcp: %w", err)
		}
		leases, err := ParseUdhcpdLeases(f)
		f.Close()
		if err == nil {
			if a, ok := leases[mac.String()]; ok {
				return a, nil
			}
		}
		if time.Now().After(deadline) {
			if err != nil {
				return netip.Addr{}, err
			}
			return netip.Addr{}, fmt.Errorf("lab: site dhcp: no lease for %s", mac)
		}
	}
}

// ParseUdhcpdLeases decodes a busybox udhcpd lease file: a 64-bit
// big-endian timestamp, then 36-byte records of struct dyn_lease
// {expires u32 (unused here), ip [4]byte, mac [6]byte, hostname [20]byte, pad [2]byte}.
// It returns leased addresses keyed by MAC in net.HardwareAddr.String form.
func ParseUdhcpdLeases(r io.Reader) (map[string]netip.Addr, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	out := map[string]netip.Addr{}
	if len(data) == 0 {
		return out, nil // not written yet
	}
	const header, record = 8, 36
	if len(data) < header || (len(data)-header)%record != 0 {
		return nil, errors.New("lab: udhcpd lease file: truncated")
	}
	for rec := data[header:]; len(rec) > 0; rec = rec[record:] {
		ip := netip.AddrFrom4([4]byte(rec[4:8]))
		mac := net.HardwareAddr(bytes.Clone(rec[8:14]))
		out[mac.String()] = ip
	}
	return out, nil
}
