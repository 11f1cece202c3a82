package dhcp

import (
	"encoding/binary"

	"golang.org/x/sys/unix"
)

// ifIndexOf returns the interface index of the IP_PKTINFO control message
// in oob, or 0 if there is none. It allocates nothing, unlike
// ipv4.ControlMessage.Parse, which builds a slice of messages per packet.
func ifIndexOf(oob []byte) int {
	for len(oob) >= unix.SizeofCmsghdr {
		h, data, rest, err := unix.ParseOneSocketControlMessage(oob)
		if err != nil {
			return 0
		}
		if h.Level == unix.IPPROTO_IP && h.Type == unix.IP_PKTINFO && len(data) >= unix.SizeofInet4Pktinfo {
			// struct in_pktinfo starts with int ipi_ifindex.
			return int(int32(binary.NativeEndian.Uint32(data)))
		}
		oob = rest
	}
	return 0
}
