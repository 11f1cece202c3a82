package main

import (
	"bufio"
	"net"
	"net/netip"
	"os"
	"strings"
)

// macOf looks ip up in the kernel's neighbour (ARP) table. TFTP and HTTP
// requests carry only the client's IP; a client on the boot segment must
// have resolved our address by ARP first, which leaves its MAC in the table,
// so logs can name the machine by the MAC the admin knows it by.
func macOf(ip net.IP) net.HardwareAddr {
	f, err := os.Open("/proc/net/arp")
	if err != nil {
		return nil
	}
	defer f.Close()
	want := ip.String()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// IP address  HW type  Flags  HW address  Mask  Device
		fields := strings.Fields(sc.Text())
		if len(fields) >= 4 && fields[0] == want {
			if hw, err := net.ParseMAC(fields[3]); err == nil && hw.String() != "00:00:00:00:00:00" {
				return hw
			}
		}
	}
	return nil
}

// identify adapts macOf to the artifacts server's hook.
func identify(ip netip.Addr) net.HardwareAddr { return macOf(net.IP(ip.AsSlice())) }
