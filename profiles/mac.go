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
