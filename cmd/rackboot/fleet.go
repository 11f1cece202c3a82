package main

import (
	"net"

	"github.com/rackboot/rackboot/profiles"
)

// fleet adapts the profiles watcher to the servers' small interfaces. The
// watcher swaps whole snapshots, so each call sees one whole fleet.
type fleet struct {
	*profiles.Watcher
}

// Known reports whether mac is a host of the current profiles.
func (f fleet) Known(mac net.HardwareAddr) bool {
	_, ok := f.Current().Lookup(mac)
	return ok
}

// Hosts returns every host of the current profiles.
func (f fleet) Hosts() []*profiles.Host { return f.Current().Hosts() }

// Version returns a version of the current catalog.
func (f fleet) Version(name string) (*profiles.Version, bool) { return f.Current().Version(name) }
