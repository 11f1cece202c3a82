package dhcp

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// Reasons for silence. Reply wraps them with the detail of the request, so
// test them with errors.Is.
var (
	// ErrMessageType: not a DHCPDISCOVER or DHCPREQUEST from a client.
	ErrMessageType = errors.New("dhcp: not a DHCPDISCOVER or DHCPREQUEST")
	// ErrNotPXE: the client is not network-boot firmware. Most DHCP traffic
	// on a segment is of this kind; it belongs to the site's DHCP server.
	ErrNotPXE = errors.New("dhcp: not a PXE client")
	// ErrUnknownHost: the client is not in the profiles and Discovery is off.
	ErrUnknownHost = errors.New("dhcp: unknown host and discovery is off")
	// ErrUnsupportedArch: there is no boot file for the client's
	// architecture, because the table does not list it or the config leaves
	// its iPXE binary empty.
	ErrUnsupportedArch = errors.New("dhcp: no boot file for the client architecture")
	// ErrOtherServer: a DHCPREQUEST whose server identifier (option 54)
	// names another server: the client is taking the site server's lease
	// (RFC 2131 section 4.3.2). An ACK from us there would race the site's
	// ACK, and a ROM that takes the first ACK would end up with no address.
	ErrOtherServer = errors.New("dhcp: request addressed to another server")
)

// Vendor classes (option 60). A PXE client's class starts with "PXEClient"
// (PXE specification 2.1, e.g. "PXEClient:Arch:00007:UNDI:003016"), a UEFI
// HTTP boot client's with "HTTPClient" (UEFI 2.5 section 24.7). Both expect
// the bare prefix back in the answer.
const (
	classPXE  = "PXEClient"
	classHTTP = "HTTPClient"
)

// maxFileField is the size of the BOOTP file header field (RFC 951) less the
// terminating NUL.
const maxFileField = 127

// Reply decides the proxy's answer to req: a DHCPOFFER to a DHCPDISCOVER, a
// DHCPACK to a DHCPREQUEST, or nil and the reason for silence (one of the
// Err values above, wrapped, or an error about cfg). known says whether the
// client's MAC address is in the profiles.
//
// Reply is pure: it reads nothing but its arguments, does not modify req and
// is safe for concurrent use.
//
// Serve's fast path (encode.go) relies on the answer depending on req only
// through op, the message type, option 54, the vendor class, the first
// architecture, iPXE or not, htype, xid, flags, ciaddr, giaddr, chaddr and
// options 61, 82 and 97. Reading anything else from req means changing
// scan too; TestFastPathIdentical and FuzzFastPath compare the two paths.
func Reply(req *dhcpv4.DHCPv4, known bool, cfg Config) (*dhcpv4.DHCPv4, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}

	var answer dhcpv4.MessageType
	switch mt := req.MessageType(); {
	case req.OpCode != dhcpv4.OpcodeBootRequest:
		return nil, fmt.Errorf("%w: op code %v", ErrMessageType, req.OpCode)
	case mt == dhcpv4.MessageTypeDiscover:
		answer = dhcpv4.MessageTypeOffer
	case mt == dhcpv4.MessageTypeRequest:
		if id := req.ServerIdentifier(); id != nil && !id.Equal(cfg.ServerIP) {
			return nil, fmt.Errorf("%w: %v", ErrOtherServer, id)
		}
		answer = dhcpv4.MessageTypeAck
	default:
		return nil, fmt.Errorf("%w: message type %v", ErrMessageType, mt)
	}

	class := req.ClassIdentifier()
	if !strings.HasPrefix(class, classPXE) && !strings.HasPrefix(class, classHTTP) {
		return nil, fmt.Errorf("%w: vendor class %q", ErrNotPXE, class)
	}
	arch, ok := clientArch(req)
	if !ok {
		return nil, fmt.Errorf("%w: no client architecture (option 93)", ErrNotPXE)
	}
	if !known && !cfg.Discovery {
		return nil, ErrUnknownHost
	}

	p, listed := platformOf(arch)
	var file string
	switch {
	case isIPXE(req):
		// Loop breaking: iPXE is already running, so it gets the script,
		// whatever its architecture. Another iPXE binary would chain-load
		// forever.
		file = httpURL(cfg, "/boot.ipxe")
	case !listed:
		return nil, fmt.Errorf("%w: %s is not in the table", ErrUnsupportedArch, archName(arch))
	case p.file(cfg) == "":
		return nil, fmt.Errorf("%w: no iPXE binary for %s", ErrUnsupportedArch, p.name)
	case p.http:
		file = httpURL(cfg, "/nbp/"+p.file(cfg))
	default:
		file = p.file(cfg)
	}

	server := slices.Clone(cfg.ServerIP.To4())
	resp := &dhcpv4.DHCPv4{
		OpCode:         dhcpv4.OpcodeBootReply,
		HWType:         req.HWType,
		TransactionID:  req.TransactionID,
		Flags:          req.Flags,
		ClientIPAddr:   net.IP{0, 0, 0, 0},
		YourIPAddr:     net.IP{0, 0, 0, 0}, // a proxy never offers an address
		ServerIPAddr:   server,
		GatewayIPAddr:  slices.Clone(req.GatewayIPAddr),
		ClientHWAddr:   slices.Clone(req.ClientHWAddr),
		ServerHostName: server.String(),
		Options:        dhcpv4.Options{},
	}
	if answer == dhcpv4.MessageTypeAck && req.ClientIPAddr != nil {
		// RFC 2131 table 3: a DHCPACK echoes the request's ciaddr.
		resp.ClientIPAddr = slices.Clone(req.ClientIPAddr)
	}
	if len(file) <= maxFileField {
		resp.BootFileName = file
	}

	resp.UpdateOption(dhcpv4.OptMessageType(answer))
	resp.UpdateOption(dhcpv4.OptServerIdentifier(server))
	if p.http {
		resp.UpdateOption(dhcpv4.OptClassIdentifier(classHTTP))
	} else {
		resp.UpdateOption(dhcpv4.OptClassIdentifier(classPXE))
	}
	resp.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionVendorSpecificInformation, pxeVendorOptions()))
	resp.UpdateOption(dhcpv4.OptBootFileName(file))
	for _, code := range []dhcpv4.OptionCode{
		// The client's UUID/GUID (RFC 4578 section 2.3): PXE clients may
		// discard answers that do not echo it.
		dhcpv4.OptionClientMachineIdentifier,
		// RFC 3046 section 2.2: a relay's agent information comes back.
		dhcpv4.OptionRelayAgentInformation,
		// RFC 6842: so does the client identifier.
		dhcpv4.OptionClientIdentifier,
	} {
		if v := req.Options.Get(code); v != nil {
			resp.UpdateOption(dhcpv4.OptGeneric(code, slices.Clone(v)))
		}
	}
	return resp, nil
}

// isIPXE reports whether the client is iPXE: it sends user class "iPXE"
// (option 77, raw or RFC 3004 encoded, which UserClass decodes both) or
// option 175, the Etherboot/iPXE encapsulated options, which only iPXE sends.
func isIPXE(req *dhcpv4.DHCPv4) bool {
	return req.Options.Has(dhcpv4.OptionEtherboot) || slices.Contains(req.UserClass(), "iPXE")
}

// pxeVendorOptions is option 43 of every answer: PXE specification 2.1,
// table 2-1, sub-option 6 PXE_DISCOVERY_CONTROL with bit 3 set ("download
// the boot file of this offer; no boot server discovery, no menu"), then the
// End sub-option. Without it PXE ROMs look for boot servers and menus.
func pxeVendorOptions() []byte {
	return []byte{6, 1, 8, 255}
}

// httpURL is the URL of path on the appliance's HTTP server.
func httpURL(cfg Config, path string) string {
	u := url.URL{
		Scheme: "http",
		Host:   net.JoinHostPort(cfg.ServerIP.To4().String(), strconv.Itoa(cfg.HTTPPort)),
		Path:   path,
	}
	return u.String()
}
