package profiles

import (
	"net"
	"slices"
)

// Set is an immutable, validated snapshot of the profiles directory. It is
// safe for concurrent use; a reload builds a new Set rather than changing
// one.
type Set struct {
	hosts            map[[6]byte]*Host
	sorted           []*Host // by MAC
	defaultInstaller *Installer
	files            []string
	versions         []*Version // by channel, then number
	layouts          []*Layout  // by name
	groups           []*Group   // by name
	digest           string
}

// Lookup returns the host with the given MAC address. It is a map lookup
// and does not allocate.
func (s *Set) Lookup(mac net.HardwareAddr) (*Host, bool) {
	if s == nil {
		return nil, false
	}
	k, ok := macArray(mac)
	if !ok {
		return nil, false
	}
	h, ok := s.hosts[k]
	return h, ok
}

// DefaultInstaller returns the installer of a host that nothing but the
// defaults applies to: the defaults' `installer:`, else the defaults'
// version's installer, with the defaults' kernel_args. It is nil when the
// defaults configure none.
func (s *Set) DefaultInstaller() *Installer {
	if s == nil {
		return nil
	}
	return s.defaultInstaller
}

// Hosts returns every host, ordered by MAC address.
func (s *Set) Hosts() []*Host {
	if s == nil {
		return nil
	}
	return slices.Clone(s.sorted)
}

// Len is the number of hosts.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return len(s.sorted)
}

// Files returns the files the snapshot was loaded from.
func (s *Set) Files() []string {
	if s == nil {
		return nil
	}
	return slices.Clone(s.files)
}

// Versions returns the catalog, ordered by channel and then number.
func (s *Set) Versions() []*Version {
	if s == nil {
		return nil
	}
	return slices.Clone(s.versions)
}

// Version returns the version with the given name.
func (s *Set) Version(name string) (*Version, bool) {
	if s == nil {
		return nil, false
	}
	for _, v := range s.versions {
		if v.Name == name {
			return v, true
		}
	}
	return nil, false
}

// Layouts returns every layout, ordered by name.
func (s *Set) Layouts() []*Layout {
	if s == nil {
		return nil
	}
	return slices.Clone(s.layouts)
}

// Groups returns every group, ordered by name.
func (s *Set) Groups() []*Group {
	if s == nil {
		return nil
	}
	return slices.Clone(s.groups)
}

// Digest is the hex SHA-256 of the files' names and contents: two Sets with
// the same Digest were loaded from identical files.
func (s *Set) Digest() string {
	if s == nil {
		return ""
	}
	return s.digest
}
