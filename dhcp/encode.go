package dhcp

import (
	"bytes"
	"net"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

// The loop's fast path. Nearly every datagram a busy proxy receives is a
// PXE DISCOVER or REQUEST that it answers, and such an answer depends on
// the request only through its kind (message type, client architecture,
// iPXE or not) and through the fields Reply copies: htype, xid, flags,
// ciaddr (in an ACK), giaddr, chaddr and options 61, 82 and 97. So the loop
// has Reply encode one answer per kind, once, and for each request copies
// that encoding and patches the copied fields in, instead of decoding the
// request into a dhcpv4.DHCPv4, building the answer and encoding it: about
// 0.1 µs and no allocation instead of 2.4 µs and 47 (BenchmarkHandle),
// which was a third of the server's CPU per answer under load.
//
// Whatever the fast path does not recognise as plainly answerable goes the
// slow way: malformed datagrams, every refusal, repeated options (RFC 3396
// concatenation), a user class without option 175, a REQUEST naming
// another server (or none readable) in option 54, an architecture not in
// the table. It therefore answers only what Reply
// answers, byte for byte as ToBytes would (TestFastPathIdentical); a change
// to what Reply reads from a request must change scan too.

// bootpMinLen is the length ToBytes pads every message to: the BOOTP
// message of RFC 951, which some relays insist on.
const bootpMinLen = 300

// Offsets in a DHCP message (RFC 2131 section 2).
const (
	offHType   = 1
	offHLen    = 2
	offXID     = 4
	offFlags   = 10
	offCIAddr  = 12
	offGIAddr  = 24
	offCHAddr  = 28
	offOptions = 240 // after the magic cookie
)

// request is what the fast path reads from a datagram. The option values
// are slices of the datagram.
type request struct {
	ack    bool // a DHCPREQUEST, answered by an ACK; else a DHCPDISCOVER
	arch   iana.Arch
	ipxe   bool
	hlen   int
	header []byte // the datagram's first offOptions bytes
	// Options the answer copies; nil when absent or empty, as for
	// dhcpv4.Options.Get.
	opt61, opt82, opt97 []byte
}

// mac is the client's hardware address, as Reply copies it.
func (r *request) mac() net.HardwareAddr {
	return net.HardwareAddr(r.header[offCHAddr : offCHAddr+r.hlen])
}

// Option codes the fast path reads, as bits of a set.
const (
	seen53 = 1 << iota
	seen54
	seen60
	seen61
	seen77
	seen82
	seen93
	seen97
	seen175
)

// scan reads b as a request the fast path can answer, or reports false.
// server is the proxy's address (option 54 of a REQUEST must name it).
func scan(b []byte, server net.IP) (r request, ok bool) {
	if len(b) < offOptions || b[0] != byte(dhcpv4.OpcodeBootRequest) ||
		!bytes.Equal(b[offOptions-4:offOptions], []byte{99, 130, 83, 99}) {
		return r, false
	}
	r.header = b[:offOptions]
	r.hlen = min(int(b[offHLen]), 16)

	var seen int
	var mt, class, arch, id []byte
	opts, end := b[offOptions:], false
	for len(opts) > 0 {
		code := opts[0]
		if code == 0 { // pad
			opts = opts[1:]
			continue
		}
		if code == 255 {
			end = true
			break
		}
		if len(opts) < 2 || len(opts) < 2+int(opts[1]) {
			return r, false // truncated: FromBytes refuses it
		}
		v := opts[2 : 2+int(opts[1])]
		opts = opts[2+len(v):]
		var bit int
		switch code {
		case 53:
			bit, mt = seen53, v
		case 54:
			bit, id = seen54, v
		case 60:
			bit, class = seen60, v
		case 61:
			bit, r.opt61 = seen61, nonEmpty(v)
		case 77:
			bit = seen77
		case 82:
			bit, r.opt82 = seen82, nonEmpty(v)
		case 93:
			bit, arch = seen93, v
		case 97:
			bit, r.opt97 = seen97, nonEmpty(v)
		case 175:
			bit = seen175
		default:
			continue
		}
		if seen&bit != 0 {
			return r, false // repeated: concatenated by FromBytes
		}
		seen |= bit
	}
	if !end {
		return r, false // FromBytes requires the End option
	}

	switch {
	case len(mt) == 1 && mt[0] == byte(dhcpv4.MessageTypeDiscover):
	case len(mt) == 1 && mt[0] == byte(dhcpv4.MessageTypeRequest):
		r.ack = true
		if seen&seen54 != 0 && (len(id) != 4 || !net.IP(id).Equal(server)) {
			return r, false
		}
	default:
		return r, false
	}
	if !bytes.HasPrefix(class, []byte(classPXE)) && !bytes.HasPrefix(class, []byte(classHTTP)) {
		return r, false
	}
	if len(arch) < 2 || len(arch)%2 != 0 {
		return r, false
	}
	r.arch = iana.Arch(uint16(arch[0])<<8 | uint16(arch[1]))
	// Option 175 alone tells iPXE. A user class without it needs the
	// decoding of UserClass (raw or RFC 3004), which the slow path does.
	r.ipxe = seen&seen175 != 0
	if !r.ipxe && seen&seen77 != 0 {
		return r, false
	}
	return r, true
}

func nonEmpty(v []byte) []byte {
	if len(v) == 0 {
		return nil
	}
	return v
}

// templateKey is the kind of an answer.
type templateKey struct {
	arch      iana.Arch
	ipxe, ack bool
}

// template is the encoding of one kind of answer, cut where the request's
// options go: a holds the options numbered below 61, b those between 61
// and 97, c those above 97 (option 82 comes last, RFC 3046 section 2.1).
type template struct {
	header  []byte // offOptions bytes, the copied fields zero
	a, b, c []byte
	arch    string // archName, for logs and OnReply
	kind    string // "offer" or "ack"
	path    string // the boot file
}

// templates holds the encoded answers of one Serve loop; not safe for
// concurrent use. It holds only the architectures of the table (at most 28
// kinds), so a client cannot grow it.
type templates struct {
	cfg Config
	m   map[templateKey]*template // nil: Reply refuses that kind
}

func newTemplates(cfg Config) *templates {
	return &templates{cfg: cfg, m: map[templateKey]*template{}}
}

// get returns the template of the request's kind, or nil when the slow
// path must answer.
func (ts *templates) get(r *request) *template {
	k := templateKey{arch: r.arch, ipxe: r.ipxe, ack: r.ack}
	t, ok := ts.m[k]
	if !ok {
		if _, listed := platformOf(r.arch); !listed {
			return nil
		}
		t = newTemplate(k, ts.cfg)
		ts.m[k] = t
	}
	return t
}

// newTemplate has Reply answer a request of kind k whose copied fields are
// all zero or absent, and cuts the encoding. It returns nil if Reply
// refuses, or if the answer carries one of the copied options itself.
func newTemplate(k templateKey, cfg Config) *template {
	mt := dhcpv4.MessageTypeDiscover
	if k.ack {
		mt = dhcpv4.MessageTypeRequest
	}
	zero := net.IPv4zero.To4()
	req := &dhcpv4.DHCPv4{
		OpCode:        dhcpv4.OpcodeBootRequest,
		ClientIPAddr:  zero,
		YourIPAddr:    zero,
		ServerIPAddr:  zero,
		GatewayIPAddr: zero,
		ClientHWAddr:  net.HardwareAddr{},
		Options:       dhcpv4.Options{},
	}
	req.UpdateOption(dhcpv4.OptMessageType(mt))
	req.UpdateOption(dhcpv4.OptClassIdentifier(classPXE))
	req.UpdateOption(dhcpv4.OptClientArch(k.arch))
	if k.ipxe {
		req.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionEtherboot, nil))
	}
	resp, err := Reply(req, true, cfg)
	if err != nil {
		return nil
	}
	enc := resp.ToBytes()
	t := &template{header: enc[:offOptions], arch: archName(k.arch), kind: "offer", path: resp.BootFileNameOption()}
	if k.ack {
		t.kind = "ack"
	}
	for opts := enc[offOptions:]; len(opts) > 0 && opts[0] != 255; {
		code, tlv := opts[0], opts[:2+int(opts[1])]
		opts = opts[len(tlv):]
		switch {
		case code == 61 || code == 82 || code == 97:
			return nil
		case code < 61:
			t.a = append(t.a, tlv...)
		case code < 97:
			t.b = append(t.b, tlv...)
		default:
			t.c = append(t.c, tlv...)
		}
	}
	return t
}

// encode appends the answer to r to dst[:0].
func (t *template) encode(dst []byte, r *request) []byte {
	dst = append(dst[:0], t.header...)
	h := r.header
	dst[offHType] = h[offHType]
	dst[offHLen] = byte(r.hlen)
	copy(dst[offXID:offXID+4], h[offXID:])
	copy(dst[offFlags:offFlags+2], h[offFlags:])
	if r.ack {
		// RFC 2131 table 3: a DHCPACK echoes the request's ciaddr.
		copy(dst[offCIAddr:offCIAddr+4], h[offCIAddr:])
	}
	copy(dst[offGIAddr:offGIAddr+4], h[offGIAddr:])
	copy(dst[offCHAddr:], r.mac())
	dst = append(dst, t.a...)
	dst = appendOption(dst, 61, r.opt61)
	dst = append(dst, t.b...)
	dst = appendOption(dst, 97, r.opt97)
	dst = append(dst, t.c...)
	dst = appendOption(dst, 82, r.opt82)
	dst = append(dst, 255)
	for len(dst) < bootpMinLen {
		dst = append(dst, 0)
	}
	return dst
}

// appendOption appends an option of at most 255 bytes; nothing if v is
// empty, as Reply copies no empty option.
func appendOption(dst []byte, code byte, v []byte) []byte {
	if len(v) == 0 {
		return dst
	}
	dst = append(dst, code, byte(len(v)))
	return append(dst, v...)
}
