package profiles

import (
	"fmt"
	"net"
	"strings"
)

// ParseMAC accepts the common spellings of a 48-bit Ethernet address
// (52:54:00:aa:bb:cc, 52-54-00-AA-BB-CC, 5254.00aa.bbcc, 525400aabbcc) and
// returns it in net.HardwareAddr form.
func ParseMAC(s string) (net.HardwareAddr, error) {
	t := strings.TrimSpace(s)
	if len(t) == 12 && isHex(t) {
		t = t[0:2] + ":" + t[2:4] + ":" + t[4:6] + ":" + t[6:8] + ":" + t[8:10] + ":" + t[10:12]
	}
	hw, err := net.ParseMAC(t)
	if err != nil || len(hw) != 6 {
		return nil, fmt.Errorf("invalid MAC address %q", s)
	}
	return hw, nil
}

// MACKey is the canonical map key of a hardware address: lower-case,
// colon-separated, as net.HardwareAddr.String prints it.
func MACKey(hw net.HardwareAddr) string { return hw.String() }

func isHex(s string) bool {
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// parseMACPrefix parses the leading 1 to 5 octets of a MAC address, spelt
// like a MAC (52:54:00, 52-54-00, 525400), and returns them.
func parseMACPrefix(s string) ([]byte, error) {
	t := strings.TrimSpace(s)
	var hexs string
	if strings.ContainsAny(t, ":-") {
		parts := strings.FieldsFunc(t, func(r rune) bool { return r == ':' || r == '-' })
		if len(parts) != strings.Count(t, ":")+strings.Count(t, "-")+1 {
			return nil, fmt.Errorf("invalid MAC prefix %q", s)
		}
		for _, p := range parts {
			if len(p) != 2 {
				return nil, fmt.Errorf("invalid MAC prefix %q: want two hex digits per octet", s)
			}
		}
		hexs = strings.Join(parts, "")
	} else {
		hexs = strings.ReplaceAll(t, ".", "")
	}
	if len(hexs) == 0 || len(hexs)%2 != 0 || len(hexs) > 10 || !isHex(hexs) {
		return nil, fmt.Errorf("invalid MAC prefix %q: want 1 to 5 octets, e.g. 52:54:00", s)
	}
	out := make([]byte, len(hexs)/2)
	for i := range out {
		out[i] = unhex(hexs[2*i])<<4 | unhex(hexs[2*i+1])
	}
	return out, nil
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

// macArray is the map key of a 48-bit address; Lookup must not allocate.
func macArray(hw net.HardwareAddr) (k [6]byte, ok bool) {
	if len(hw) != 6 {
		return k, false
	}
	copy(k[:], hw)
	return k, true
}
