package main

import (
	"encoding/binary"
	"fmt"
	"net"
)

// BOOTP/DHCP layout (RFC 951, RFC 2131 section 2): the fixed header is 236
// bytes, then the magic cookie, then options.
const (
	offOp      = 0
	offHops    = 3
	offXID     = 4
	offFlags   = 10
	offGIAddr  = 24
	offCHAddr  = 28
	headerLen  = 236
	cookieLen  = 4
	optionsOff = headerLen + cookieLen
)

var magicCookie = [cookieLen]byte{99, 130, 83, 99}

// DHCP option codes used here.
const (
	optPad          = 0
	optMessageType  = 53 // RFC 2132 9.6
	optMaxSize      = 57 // RFC 2132 9.10
	optParamList    = 55 // RFC 2132 9.8
	optVendorClass  = 60 // RFC 2132 9.13: "PXEClient:Arch:xxxxx:UNDI:yyyzzz"
	optClientArch   = 93 // RFC 4578 2.1
	optClientNDI    = 94 // RFC 4578 2.2: UNDI 2.1
	optClientUUID   = 97 // RFC 4578 2.3: type 0 + 16-byte GUID
	optEnd          = 255
	msgDiscover     = 1
	msgOffer        = 2
	flagBroadcast   = 0x8000
	bootRequest     = 1
	bootReply       = 2
	uuidOptionBytes = 17
)

// template is a DHCPDISCOVER as a PXE ROM sends it, with the offsets of the
// fields each packet changes, so that a packet costs a copy and three
// patches instead of an encoder run.
type template struct {
	b       []byte
	uuidOff int // first of the 16 GUID bytes in option 97
}

// pxeTemplate builds the DISCOVER of a PXE 2.1 ROM of architecture arch
// (RFC 4578: 0 BIOS, 7 and 9 x86-64 UEFI). In relay mode giaddr is set and
// hops is 1, as perfdhcp and a real relay send it; in broadcast mode the
// broadcast flag is set, as PXE ROMs do (they have no address yet).
func pxeTemplate(arch uint16, relay net.IP) template {
	b := make([]byte, optionsOff, 400)
	b[offOp] = bootRequest
	b[1] = 1 // htype Ethernet
	b[2] = 6 // hlen
	if relay != nil {
		b[offHops] = 1
		copy(b[offGIAddr:offGIAddr+4], relay.To4())
	} else {
		binary.BigEndian.PutUint16(b[offFlags:], flagBroadcast)
	}
	copy(b[headerLen:], magicCookie[:])
	opt := func(code byte, v ...byte) {
		b = append(b, code, byte(len(v)))
		b = append(b, v...)
	}
	opt(optMessageType, msgDiscover)
	opt(optMaxSize, 0x05, 0xc0) // 1472, what EDK2 and iPXE announce
	// The parameter request list of EDK2's PXE client.
	opt(optParamList, 1, 2, 3, 4, 5, 6, 12, 13, 15, 17, 18, 22, 23, 28, 40, 41, 42, 43, 50, 51, 54, 58, 59, 60, 66, 67, 97, 128, 129, 130, 131, 132, 133, 134, 135)
	opt(optClientArch, byte(arch>>8), byte(arch))
	opt(optClientNDI, 1, 2, 1)
	uuidOff := len(b) + 3
	opt(optClientUUID, make([]byte, uuidOptionBytes)...) // type 0, GUID patched per client
	undi := "002001"
	if arch != 0 {
		undi = "003016"
	}
	opt(optVendorClass, []byte(fmt.Sprintf("PXEClient:Arch:%05d:UNDI:%s", arch, undi))...)
	b = append(b, optEnd)
	return template{b: b, uuidOff: uuidOff}
}

// fill writes the DISCOVER of client mac with transaction id xid into dst
// (which must have room for the template) and returns its length. The
// GUID is derived from the MAC, so one client always sends the same one.
func (t template) fill(dst []byte, xid uint32, mac net.HardwareAddr) int {
	n := copy(dst, t.b)
	binary.BigEndian.PutUint32(dst[offXID:], xid)
	copy(dst[offCHAddr:], mac)
	g := dst[t.uuidOff : t.uuidOff+16]
	copy(g, "rbbench-")
	copy(g[8:], mac)
	g[14], g[15] = 0xbe, 0xef
	return n
}

// answer is what the load generator needs of a reply.
type answer struct {
	xid     uint32
	msgType byte
}

// parseAnswer reads the transaction id and message type of a BOOTREPLY. It
// reports false for anything else (a request, another client's noise, a
// truncated packet).
func parseAnswer(b []byte) (answer, bool) {
	if len(b) < optionsOff || b[offOp] != bootReply || [cookieLen]byte(b[headerLen:optionsOff]) != magicCookie {
		return answer{}, false
	}
	a := answer{xid: binary.BigEndian.Uint32(b[offXID:])}
	for i := optionsOff; i < len(b); {
		code := b[i]
		if code == optEnd {
			break
		}
		if code == optPad {
			i++
			continue
		}
		if i+1 >= len(b) {
			return answer{}, false
		}
		l := int(b[i+1])
		if i+2+l > len(b) {
			return answer{}, false
		}
		if code == optMessageType && l == 1 {
			a.msgType = b[i+2]
		}
		i += 2 + l
	}
	if a.msgType == 0 {
		return answer{}, false
	}
	return a, true
}
