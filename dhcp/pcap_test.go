package dhcp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"time"
)

// pcapDatagram is one UDP/IPv4 datagram of a packet capture.
type pcapDatagram struct {
	at       time.Duration // since the capture's first packet
	src, dst netip.AddrPort
	payload  []byte
}

// pcap link types (tcpdump.org/linktypes.html) this reader understands.
const linkEthernet = 1

// readPcap returns the UDP/IPv4 datagrams of a classic pcap file (not
// pcapng) of Ethernet frames, as tcpdump -w writes it: a 24-byte file
// header (magic, version, snaplen, link type), then per packet a 16-byte
// record header (seconds, micro- or nanoseconds, captured and original
// length) and the frame. Frames that are not UDP over IPv4 (with or without
// one 802.1Q tag) are skipped; a truncated file, or a datagram cut by the
// snap length, is an error: a fixture must be whole.
func readPcap(name string) ([]pcapDatagram, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	return parsePcap(b)
}

func parsePcap(b []byte) ([]pcapDatagram, error) {
	if len(b) < 24 {
		return nil, errors.New("pcap: short file header")
	}
	var order binary.ByteOrder
	var unit time.Duration
	switch m := binary.LittleEndian.Uint32(b); m {
	case 0xa1b2c3d4, 0xa1b23c4d:
		order = binary.LittleEndian
	case 0xd4c3b2a1, 0x4d3cb2a1:
		order = binary.BigEndian
	default:
		return nil, fmt.Errorf("pcap: magic %#x: not a pcap file", m)
	}
	unit = time.Microsecond
	if order.Uint32(b) == 0xa1b23c4d {
		unit = time.Nanosecond
	}
	if lt := order.Uint32(b[20:]) & 0xffff; lt != linkEthernet {
		return nil, fmt.Errorf("pcap: link type %d, want Ethernet (%d)", lt, linkEthernet)
	}

	var out []pcapDatagram
	var first time.Duration
	for rest, i := b[24:], 0; len(rest) > 0; i++ {
		if len(rest) < 16 {
			return nil, fmt.Errorf("pcap: packet %d: short record header", i)
		}
		at := time.Duration(order.Uint32(rest))*time.Second + time.Duration(order.Uint32(rest[4:]))*unit
		incl, orig := int(order.Uint32(rest[8:])), int(order.Uint32(rest[12:]))
		if len(rest) < 16+incl {
			return nil, fmt.Errorf("pcap: packet %d: truncated", i)
		}
		if incl < orig {
			return nil, fmt.Errorf("pcap: packet %d: %d of %d bytes captured", i, incl, orig)
		}
		frame := rest[16 : 16+incl]
		rest = rest[16+incl:]
		if i == 0 {
			first = at
		}
		d, ok, err := udpOf(frame)
		if err != nil {
			return nil, fmt.Errorf("pcap: packet %d: %w", i, err)
		}
		if ok {
			d.at = at - first
			out = append(out, d)
		}
	}
	return out, nil
}

// udpOf decodes an Ethernet frame carrying UDP over IPv4; ok is false for
// any other frame.
func udpOf(frame []byte) (d pcapDatagram, ok bool, err error) {
	if len(frame) < 14 {
		return d, false, errors.New("short Ethernet header")
	}
	etherType, ip := binary.BigEndian.Uint16(frame[12:]), frame[14:]
	if etherType == 0x8100 { // 802.1Q
		if len(frame) < 18 {
			return d, false, errors.New("short VLAN tag")
		}
		etherType, ip = binary.BigEndian.Uint16(frame[16:]), frame[18:]
	}
	if etherType != 0x0800 {
		return d, false, nil
	}
	if len(ip) < 20 || ip[0]>>4 != 4 {
		return d, false, errors.New("bad IPv4 header")
	}
	ihl, total := int(ip[0]&0x0f)*4, int(binary.BigEndian.Uint16(ip[2:]))
	if ihl < 20 || total < ihl || len(ip) < total {
		return d, false, errors.New("bad IPv4 lengths")
	}
	if ip[9] != 17 { // not UDP
		return d, false, nil
	}
	if binary.BigEndian.Uint16(ip[6:])&0x3fff != 0 {
		return d, false, errors.New("IPv4 fragment")
	}
	udp := ip[ihl:total]
	if len(udp) < 8 || int(binary.BigEndian.Uint16(udp[4:])) != len(udp) {
		return d, false, errors.New("bad UDP length")
	}
	src, dst := netip.AddrFrom4([4]byte(ip[12:16])), netip.AddrFrom4([4]byte(ip[16:20]))
	d.src = netip.AddrPortFrom(src, binary.BigEndian.Uint16(udp))
	d.dst = netip.AddrPortFrom(dst, binary.BigEndian.Uint16(udp[2:]))
	d.payload = udp[8:]
	return d, true, nil
}
