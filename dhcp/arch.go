package dhcp

import (
	"fmt"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

// platform is one row of the architecture table: what a client system
// architecture (option 93, RFC 4578 section 2.1, IANA "Processor
// Architecture Types") boots.
type platform struct {
	// name labels the architecture in logs and metrics.
	name string
	// file picks the iPXE binary from the config; "" means not served.
	file func(Config) string
	// http marks UEFI HTTP boot clients (UEFI 2.5 section 24.7): they take a
	// URL as boot file and want option 60 "HTTPClient" in the answer.
	http bool
}

// platformOf is the architecture table. Architectures it does not list get
// no answer: an x86 binary sent to anything else would only hang it.
func platformOf(a iana.Arch) (platform, bool) {
	switch a {
	case iana.INTEL_X86PC:
		return platform{name: "bios", file: func(c Config) string { return c.BIOSFile }}, true
	case iana.EFI_IA32:
		// 32-bit UEFI needs an i386 iPXE build, which rackboot does not ship.
		return platform{name: "efi-ia32", file: func(Config) string { return "" }}, true
	case iana.EFI_X86_64:
		// The insomniacslk names follow the IANA registry: 7 is x86-64.
		return platform{name: "efi-x64", file: func(c Config) string { return c.EFIFile }}, true
	case iana.EFI_BC:
		// RFC 4578 itself names 7 "EFI BC" and 9 "EFI x86-64"; the IANA
		// registry swapped them, and x86-64 firmware in the wild sends either.
		return platform{name: "efi-bc", file: func(c Config) string { return c.EFIFile }}, true
	case iana.EFI_ARM64:
		return platform{name: "efi-arm64", file: func(c Config) string { return c.ARM64File }}, true
	case iana.EFI_X86_64_HTTP:
		return platform{name: "efi-x64-http", file: func(c Config) string { return c.EFIFile }, http: true}, true
	case iana.EFI_ARM64_HTTP:
		return platform{name: "efi-arm64-http", file: func(c Config) string { return c.ARM64File }, http: true}, true
	}
	return platform{}, false
}

// clientArch returns the first architecture of option 93. A client lists
// more than one only when it can boot several; the first is its preference.
func clientArch(req *dhcpv4.DHCPv4) (iana.Arch, bool) {
	archs := req.ClientArch()
	if len(archs) == 0 {
		return 0, false
	}
	return archs[0], true
}

// archName labels an architecture in logs and metrics: the table's name,
// or "arch-N" for one it does not list.
func archName(a iana.Arch) string {
	if p, ok := platformOf(a); ok {
		return p.name
	}
	return fmt.Sprintf("arch-%d", uint16(a))
}
