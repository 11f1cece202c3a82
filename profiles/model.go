package profiles

import (
	"net"
	"sort"
)

// Installer is what a machine boots to be installed: a kernel, an initramfs
// and extra kernel command-line arguments. Kernel and Initrd are either paths
// relative to the appliance's artifacts directory or absolute http(s) URLs.
type Installer struct {
	Kernel  string `yaml:"kernel"`
	Initrd  string `yaml:"initrd"`
	Cmdline string `yaml:"cmdline,omitempty"`
}

// Host is one machine of the fleet, after defaults were applied.
type Host struct {
	MAC      net.HardwareAddr
	Hostname string
	// Installer is the host's own installer or, when it names none, the
	// default one. It is nil when neither is configured.
	Installer *Installer
	// Source is "file:line" of the host's entry, for messages.
	Source string
}

// Set is an immutable, validated snapshot of the profiles directory. It is
// safe for concurrent use.
type Set struct {
	hosts            map[string]*Host
	defaultInstaller *Installer
	files            []string
}

// Lookup returns the host with the given MAC address. It is a map lookup.
func (s *Set) Lookup(mac net.HardwareAddr) (*Host, bool) {
	if s == nil {
		return nil, false
	}
	h, ok := s.hosts[MACKey(mac)]
	return h, ok
}

// DefaultInstaller returns the fleet-wide installer, or nil.
func (s *Set) DefaultInstaller() *Installer {
	if s == nil {
		return nil
	}
	return s.defaultInstaller
}

// Hosts returns every host, ordered by MAC address.
func (s *Set) Hosts() []*Host {
	out := make([]*Host, 0, len(s.hosts))
	for _, h := range s.hosts {
		out = append(out, h)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].MAC.String() < out[j].MAC.String() })
	return out
}

// Files returns the files the snapshot was loaded from.
func (s *Set) Files() []string { return append([]string(nil), s.files...) }
