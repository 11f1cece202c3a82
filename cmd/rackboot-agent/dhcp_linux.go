package main

import (
	"context"
	"fmt"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
)

// vendorClass names the agent in its DHCP requests (option 60), so a
// site's DHCP log tells the installer from the installed OS. It is not
// "PXEClient": rackboot's proxyDHCP must ignore the agent.
const vendorClass = "rackboot-agent"

// requestLease runs one DISCOVER-OFFER-REQUEST-ACK exchange on c.
//
// A PXE network may also hold a proxyDHCP server (rackboot itself, or
// another): its OFFERs carry boot options but no address (yiaddr
// 0.0.0.0, RFC 4578 and PXE 2.1). nclient4's DiscoverOffer takes the
// first OFFER of any kind, so the agent waits for one with an address.
func requestLease(ctx context.Context, c *nclient4.Client) (*nclient4.Lease, error) {
	mods := []dhcpv4.Modifier{
		dhcpv4.WithOption(dhcpv4.OptMaxMessageSize(nclient4.MaxMessageSize)),
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier(vendorClass)),
		dhcpv4.WithRequestedOptions(dhcpv4.OptionSubnetMask, dhcpv4.OptionRouter,
			dhcpv4.OptionDomainNameServer, dhcpv4.OptionDomainName,
			dhcpv4.OptionInterfaceMTU, dhcpv4.OptionDNSDomainSearchList),
	}
	discover, err := dhcpv4.NewDiscovery(c.InterfaceAddr(), mods...)
	if err != nil {
		return nil, fmt.Errorf("dhcp: %w", err)
	}
	offer, err := c.SendAndRead(ctx, c.RemoteAddr(), discover, func(m *dhcpv4.DHCPv4) bool {
		return m.MessageType() == dhcpv4.MessageTypeOffer && !m.YourIPAddr.IsUnspecified() && m.YourIPAddr.To4() != nil
	})
	if err != nil {
		return nil, fmt.Errorf("dhcp: no offer: %w", err)
	}
	lease, err := c.RequestFromOffer(ctx, offer, mods[1:]...)
	if err != nil {
		return nil, fmt.Errorf("dhcp: request of %v from %v: %w", offer.YourIPAddr, offer.ServerIdentifier(), err)
	}
	return lease, nil
}
