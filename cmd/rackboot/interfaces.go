package main

import (
	"errors"
	"fmt"
	"net"
)

// bootInterface is a network interface rackboot serves, with the address it
// tells clients to use there.
type bootInterface struct {
	Name      string
	Index     int
	Advertise net.IP
}

// bootInterfaces resolves the configured interface names, or every up,
// non-loopback interface with an IPv4 address when none are named.
func bootInterfaces(names []string, advertise string) ([]bootInterface, error) {
	var ifaces []net.Interface
	if len(names) == 0 {
		all, err := net.Interfaces()
		if err != nil {
			return nil, err
		}
		for _, ifi := range all {
			if ifi.Flags&net.FlagUp != 0 && ifi.Flags&net.FlagLoopback == 0 {
				ifaces = append(ifaces, ifi)
			}
		}
	} else {
		for _, n := range names {
			ifi, err := net.InterfaceByName(n)
			if err != nil {
				return nil, fmt.Errorf("interface %s: %w", n, err)
			}
			if ifi.Flags&net.FlagUp == 0 {
				return nil, fmt.Errorf("interface %s is down", n)
			}
			ifaces = append(ifaces, *ifi)
		}
	}
	var out []bootInterface
	for _, ifi := range ifaces {
		ip := net.ParseIP(advertise)
		if ip == nil {
			ip = firstIPv4(ifi)
		}
		if ip == nil {
			if len(names) > 0 {
				return nil, fmt.Errorf("interface %s has no IPv4 address (set --advertise)", ifi.Name)
			}
			continue
		}
		out = append(out, bootInterface{Name: ifi.Name, Index: ifi.Index, Advertise: ip.To4()})
	}
	if len(out) == 0 {
		return nil, errors.New("no up, non-loopback interface with an IPv4 address: name one with --interface")
	}
	return out, nil
}

func firstIPv4(ifi net.Interface) net.IP {
	addrs, err := ifi.Addrs()
	if err != nil {
		return nil
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil {
			return n.IP.To4()
		}
	}
	return nil
}
