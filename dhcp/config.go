package dhcp

import (
	"fmt"
	"net"
)

// Defaults applied to the zero fields of a Config.
const (
	DefaultHTTPPort = 8080
	DefaultBIOSFile = "undionly.kpxe"
	DefaultEFIFile  = "ipxe.efi"
)

// Config is what the proxy advertises. Its zero fields mean the defaults
// above, except ServerIP, which must be set.
type Config struct {
	// ServerIP is the IPv4 address clients are sent to: next-server (siaddr),
	// sname, the server identifier (option 54) and the host of every URL. It
	// is the address clients reach the appliance at, which may differ from
	// the one its sockets are bound to (0.0.0.0).
	ServerIP net.IP

	// HTTPPort is the port of the HTTP server in the URLs given to iPXE and
	// to UEFI HTTP boot clients. Zero means 8080.
	HTTPPort int

	// BIOSFile is the iPXE binary for BIOS PXE ROMs (arch 0), fetched over
	// TFTP. Empty means "undionly.kpxe", which drives the NIC through the
	// ROM's UNDI and so works with any BIOS NIC.
	BIOSFile string

	// EFIFile is the iPXE binary for x86-64 UEFI (arch 7 and 9, and arch 16
	// for HTTP boot). Empty means "ipxe.efi"; "snponly.efi" uses the
	// firmware's network driver instead of iPXE's own, like undionly does.
	EFIFile string

	// ARM64File is the iPXE binary for arm64 UEFI (arch 11, and 19 for HTTP
	// boot). Empty means arm64 clients are not served and get no answer.
	ARM64File string

	// Discovery makes the proxy answer hosts that are not in the profiles,
	// so that they boot into discovery. When false they get no answer and
	// boot whatever else the network offers.
	Discovery bool
}

// withDefaults returns c with its zero fields set to the defaults.
func (c Config) withDefaults() Config {
	if c.HTTPPort == 0 {
		c.HTTPPort = DefaultHTTPPort
	}
	if c.BIOSFile == "" {
		c.BIOSFile = DefaultBIOSFile
	}
	if c.EFIFile == "" {
		c.EFIFile = DefaultEFIFile
	}
	return c
}

// validate reports a Config that cannot produce a usable answer.
func (c Config) validate() error {
	if ip := c.ServerIP.To4(); ip == nil || ip.IsUnspecified() {
		return fmt.Errorf("dhcp: server IP %q is not a usable IPv4 address", c.ServerIP)
	}
	if c.HTTPPort < 0 || c.HTTPPort > 65535 {
		return fmt.Errorf("dhcp: HTTP port %d out of range", c.HTTPPort)
	}
	return nil
}
