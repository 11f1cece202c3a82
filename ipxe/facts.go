package ipxe

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"slices"
	"strings"

	"github.com/rackboot/rackboot/profiles"
)

// Facts is what iPXE reports about the machine it runs on, in the query of
// the /ipxe request that /boot.ipxe makes. Values are canonical: a Facts
// returned by ParseFacts contains nothing but validated text.
type Facts struct {
	// MAC is the boot interface (${mac:hexhyp}).
	MAC net.HardwareAddr
	// Arch is iPXE's ${buildarch}: "i386", "x86_64", "arm32" or "arm64",
	// or "" when not reported.
	Arch string
	// Platform is iPXE's ${platform}: "pcbios" or "efi", or "" when not
	// reported.
	Platform string
	// UUID is the SMBIOS system UUID (${uuid}) in lower-case 8-4-4-4-12
	// form, or "" when the firmware has none.
	UUID string
}

// arches are the iPXE build architectures (${buildarch}) ParseFacts accepts.
func arches() []string { return []string{"i386", "x86_64", "arm32", "arm64"} }

// platforms are the iPXE platforms (${platform}) ParseFacts accepts: legacy
// BIOS and UEFI.
func platforms() []string { return []string{"pcbios", "efi"} }

// maxParam bounds how much of an offending parameter name an error repeats.
const maxParam = 32

// ParseFacts parses and validates the query of an /ipxe request. mac is
// required; arch, platform and uuid may be empty (iPXE expands an unset
// setting to nothing) but must be well-formed when present. Unknown and
// repeated parameters are errors, so a typo cannot silently change a
// decision. Error messages never repeat a parameter's value, and repeat at
// most a quoted, truncated parameter name.
func ParseFacts(q url.Values) (Facts, error) {
	var f Facts
	for _, k := range slices.Sorted(maps.Keys(q)) { // sorted: the same query, the same error
		v := q[k]
		switch k {
		case "mac", "arch", "platform", "uuid":
		default:
			return Facts{}, fmt.Errorf("unknown parameter %.*q", maxParam, k)
		}
		if len(v) != 1 {
			return Facts{}, fmt.Errorf("parameter %s given %d times, want once", k, len(v))
		}
	}
	mac := q.Get("mac")
	if mac == "" {
		return Facts{}, errors.New("mac: missing")
	}
	hw, err := profiles.ParseMAC(mac)
	// ParseMAC trims spaces; a value that needed trimming did not come from
	// iPXE, so refuse it rather than guess.
	if err != nil || strings.TrimSpace(mac) != mac {
		return Facts{}, errors.New("mac: not a 48-bit MAC address")
	}
	f.MAC = hw
	if f.Arch = q.Get("arch"); f.Arch != "" && !slices.Contains(arches(), f.Arch) {
		return Facts{}, fmt.Errorf("arch: unknown, want one of %s", strings.Join(arches(), ", "))
	}
	if f.Platform = q.Get("platform"); f.Platform != "" && !slices.Contains(platforms(), f.Platform) {
		return Facts{}, fmt.Errorf("platform: unknown, want one of %s", strings.Join(platforms(), ", "))
	}
	if u := q.Get("uuid"); u != "" {
		if !validUUID(u) {
			return Facts{}, errors.New("uuid: want 8-4-4-4-12 hexadecimal digits")
		}
		f.UUID = strings.ToLower(u)
	}
	return f, nil
}

// check re-validates f, for Facts that did not come from ParseFacts.
func (f Facts) check() error {
	switch {
	case len(f.MAC) != 6:
		return errors.New("facts: MAC is not 48 bits")
	case f.Arch != "" && !slices.Contains(arches(), f.Arch):
		return errors.New("facts: unknown arch")
	case f.Platform != "" && !slices.Contains(platforms(), f.Platform):
		return errors.New("facts: unknown platform")
	case f.UUID != "" && !validUUID(f.UUID):
		return errors.New("facts: malformed uuid")
	}
	return nil
}

// validUUID reports whether s is 8-4-4-4-12 hexadecimal digits, the form
// iPXE prints ${uuid} in.
func validUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// hyphenMAC is the form iPXE's ${mac:hexhyp} prints, used in URLs because
// colons would need escaping there.
func hyphenMAC(hw net.HardwareAddr) string {
	return strings.ReplaceAll(hw.String(), ":", "-")
}
