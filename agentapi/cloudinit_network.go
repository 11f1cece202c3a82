package agentapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// Network is the configuration of the interface with the given MAC.
type Network struct {
	// MAC is the boot interface's address, in lower case: the kernel's
	// name for it (eth0, enp1s0, …) is not known to the appliance.
	MAC string
	// Address is a static address with its prefix length ("10.0.1.11/24");
	// empty means DHCP.
	Address string
	// Gateway is the default route's next hop, for a static address.
	Gateway string
	DNS     []string
	Search  []string
}

// BootInterface is the name the installed system gives the interface with
// the boot MAC. The appliance does not know the kernel's name for it, and
// every cloud-init renderer needs a name: ifupdown's stanzas and networkd's
// [Match] are written for one. So the network configuration matches the
// MAC and renames the interface to this name (network-config v2
// `set-name`, network_data.json link `name`): cloud-init renames it before
// the network comes up, and the ENI renderer adds a udev rule, netplan a
// .link file, that do the same. A name outside the kernel's (eth*) and
// udev's (en*, wl*) schemes can never be taken by another interface.
const BootInterface = "boot0"

// networkConfig is network config version 2 (the netplan format that
// cloud-init reads from the NoCloud network-config file).
type networkConfig struct {
	Version   int                 `yaml:"version"`
	Ethernets map[string]ethernet `yaml:"ethernets"`
}

type ethernet struct {
	Match   map[string]string `yaml:"match"`
	SetName string            `yaml:"set-name"`
	DHCP4   bool              `yaml:"dhcp4,omitempty"`
	// Addresses and the gateway: gateway4/gateway6 rather than a default
	// route under routes, because cloud-init 22.4's ENI renderer writes
	// routes as `post-up route add … || true`, which needs net-tools and
	// fails silently without it, and a gateway as ifupdown's own
	// `gateway` option.
	Addresses   []string     `yaml:"addresses,omitempty"`
	Gateway4    string       `yaml:"gateway4,omitempty"`
	Gateway6    string       `yaml:"gateway6,omitempty"`
	Nameservers *nameservers `yaml:"nameservers,omitempty"`
}

type nameservers struct {
	Addresses []string `yaml:"addresses,omitempty"`
	Search    []string `yaml:"search,omitempty"`
}

// check validates n and returns its static address, if any.
func (n *Network) check() (netip.Prefix, error) {
	if n.MAC == "" {
		return netip.Prefix{}, errors.New("agentapi: nocloud network: missing MAC")
	}
	if _, err := net.ParseMAC(n.MAC); err != nil {
		return netip.Prefix{}, fmt.Errorf("agentapi: nocloud network: MAC %q: %w", n.MAC, err)
	}
	if n.Address == "" {
		return netip.Prefix{}, nil
	}
	p, err := netip.ParsePrefix(n.Address)
	if err != nil {
		return p, fmt.Errorf("agentapi: nocloud network: address %q: %w", n.Address, err)
	}
	if n.Gateway != "" {
		gw, err := netip.ParseAddr(n.Gateway)
		if err != nil || gw.Is4() != p.Addr().Is4() {
			return p, fmt.Errorf("agentapi: nocloud network: gateway %q for address %s", n.Gateway, n.Address)
		}
	}
	return p, nil
}

// mac is the MAC in lower case: cloud-init compares MACs case-sensitively
// in places, and the kernel shows them in lower case.
func (n *Network) mac() string { return strings.ToLower(n.MAC) }

func (n *Network) render() (string, error) {
	p, err := n.check()
	if err != nil {
		return "", err
	}
	e := ethernet{Match: map[string]string{"macaddress": n.mac()}, SetName: BootInterface}
	switch {
	case n.Address == "":
		e.DHCP4 = true
	case p.Addr().Is4():
		e.Addresses, e.Gateway4 = []string{n.Address}, n.Gateway
	default:
		e.Addresses, e.Gateway6 = []string{n.Address}, n.Gateway
	}
	if len(n.DNS) > 0 || len(n.Search) > 0 {
		e.Nameservers = &nameservers{Addresses: n.DNS, Search: n.Search}
	}
	s, err := marshalYAML("", networkConfig{Version: 2, Ethernets: map[string]ethernet{BootInterface: e}})
	if err != nil {
		return "", fmt.Errorf("agentapi: nocloud network-config: %w", err)
	}
	return s, nil
}

// networkData is OpenStack's network_data.json: links (interfaces),
// networks (addresses on a link) and services (DNS).
type networkData struct {
	Links    []osLink    `json:"links"`
	Networks []osNetwork `json:"networks"`
	Services []osService `json:"services"`
}

type osLink struct {
	ID string `json:"id"`
	// Name is not in OpenStack's schema; cloud-init names the interface
	// by it (instead of looking the MAC up among the running system's
	// interfaces) and renames it, as set-name does.
	Name string `json:"name"`
	Type string `json:"type"`
	MAC  string `json:"ethernet_mac_address"`
}

// osNetwork is one network. Nova describes the default route as a route
// to 0.0.0.0/0; this writes `gateway`, which cloud-init reads too and its
// ENI renderer writes as ifupdown's own option (see ethernet). The
// dns_nameservers and dns_search of a network are cloud-init's: Nova's
// schema has the name servers as services only, and no search domains.
type osNetwork struct {
	ID             string   `json:"id"`
	Link           string   `json:"link"`
	Type           string   `json:"type"`
	IPAddress      string   `json:"ip_address,omitempty"`
	Netmask        string   `json:"netmask,omitempty"`
	Gateway        string   `json:"gateway,omitempty"`
	DNSNameservers []string `json:"dns_nameservers,omitempty"`
	DNSSearch      []string `json:"dns_search,omitempty"`
}

type osService struct {
	Type    string `json:"type"`
	Address string `json:"address"`
	// Search is cloud-init's too: it turns a dns service into a name
	// server entry whatever its keys, and its networkd renderer gives a
	// DHCP interface the search domains of those entries only.
	Search []string `json:"search,omitempty"`
}

func (n *Network) renderOpenStack() (string, error) {
	p, err := n.check()
	if err != nil {
		return "", err
	}
	nw := osNetwork{ID: "network0", Link: BootInterface, Type: "ipv4_dhcp", DNSNameservers: n.DNS, DNSSearch: n.Search}
	if n.Address != "" {
		nw.Type, nw.IPAddress, nw.Gateway = "ipv4", p.Addr().String(), n.Gateway
		bits := 32
		if !p.Addr().Is4() {
			nw.Type, bits = "ipv6", 128
		}
		nw.Netmask = net.IP(net.CIDRMask(p.Bits(), bits)).String()
	}
	nd := networkData{
		Links:    []osLink{{ID: BootInterface, Name: BootInterface, Type: "phy", MAC: n.mac()}},
		Networks: []osNetwork{nw},
		Services: []osService{},
	}
	for i, a := range n.DNS {
		svc := osService{Type: "dns", Address: a}
		if i == 0 {
			// Once: cloud-init appends the search list of every entry.
			svc.Search = n.Search
		}
		nd.Services = append(nd.Services, svc)
	}
	return marshalJSON(nd)
}

// marshalJSON is v as indented JSON with a final newline, for people who
// read the drive.
func marshalJSON(v any) (string, error) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return "", err
	}
	return string(b) + "\n", nil
}
