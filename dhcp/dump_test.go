package dhcp

import (
	"fmt"
	"net"
	"strings"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// dumpRequest renders the facts of a request the decision looks at, on one
// line.
func dumpRequest(req *dhcpv4.DHCPv4) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%v %v chaddr=%v", req.OpCode, req.MessageType(), req.ClientHWAddr)
	if !req.ClientIPAddr.IsUnspecified() {
		fmt.Fprintf(&b, " ciaddr=%v", req.ClientIPAddr)
	}
	if !req.GatewayIPAddr.IsUnspecified() {
		fmt.Fprintf(&b, " giaddr=%v", req.GatewayIPAddr)
	}
	for _, code := range []uint8{60, 77, 93, 97, 175} {
		if v := req.Options.Get(dhcpv4.GenericOptionCode(code)); v != nil {
			fmt.Fprintf(&b, " %s=%s", optionName(code), optionValue(code, v))
		}
	}
	return b.String()
}

// dumpReply renders a reply as it goes on the wire: header fields, then
// options in code order, decoded where the proxy sets them.
func dumpReply(resp *dhcpv4.DHCPv4) string {
	wire, err := dhcpv4.FromBytes(resp.ToBytes())
	if err != nil {
		return fmt.Sprintf("  unparsable on the wire: %v\n", err)
	}
	var b strings.Builder
	row := func(k string, v any) { fmt.Fprintf(&b, "  %-22s %v\n", k, v) }
	row("op", wire.OpCode)
	row("htype", wire.HWType)
	row("hops", wire.HopCount)
	row("xid", wire.TransactionID)
	row("flags", wire.FlagsToString())
	row("ciaddr", wire.ClientIPAddr)
	row("yiaddr", wire.YourIPAddr)
	row("siaddr (next-server)", wire.ServerIPAddr)
	row("giaddr", wire.GatewayIPAddr)
	row("chaddr", wire.ClientHWAddr)
	row("sname", fmt.Sprintf("%q", wire.ServerHostName))
	row("file", fmt.Sprintf("%q", wire.BootFileName))
	for code := 1; code < 255; code++ {
		v := wire.Options.Get(dhcpv4.GenericOptionCode(code))
		if v == nil {
			continue
		}
		row(fmt.Sprintf("opt %d %s", code, optionName(uint8(code))), optionValue(uint8(code), v))
	}
	return b.String()
}

func optionName(code uint8) string {
	switch code {
	case 43:
		return "vendor"
	case 53:
		return "msg-type"
	case 54:
		return "server-id"
	case 60:
		return "class"
	case 61:
		return "client-id"
	case 67:
		return "bootfile"
	case 77:
		return "user-class"
	case 82:
		return "relay-info"
	case 93:
		return "arch"
	case 94:
		return "nic-id"
	case 97:
		return "uuid"
	case 175:
		return "ipxe"
	}
	return "?"
}

func optionValue(code uint8, v []byte) string {
	switch code {
	case 53:
		if len(v) == 1 {
			return dhcpv4.MessageType(v[0]).String()
		}
	case 54:
		if len(v) == 4 {
			return net.IP(v).String()
		}
	case 60, 67:
		return fmt.Sprintf("%q", v)
	case 77:
		var s dhcpv4.Strings
		if s.FromBytes(v) == nil {
			return fmt.Sprintf("rfc3004%q", []string(s))
		}
		return fmt.Sprintf("raw%q", v)
	case 93:
		var a []uint16
		for i := 0; i+1 < len(v); i += 2 {
			a = append(a, uint16(v[i])<<8|uint16(v[i+1]))
		}
		return fmt.Sprint(a)
	}
	return fmt.Sprintf("% x", v)
}
