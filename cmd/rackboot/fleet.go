package main

import (
	"log/slog"
	"net"
	"sync/atomic"

	"github.com/rackboot/rackboot/profiles"
)

// fleet holds the current profiles snapshot. Servers read it on every
// request; a reload swaps the whole snapshot at once, so a request sees
// either the old fleet or the new one, never a mix.
type fleet struct {
	dir string
	log *slog.Logger
	cur atomic.Pointer[profiles.Set]
}

// reload loads the directory again. On error the old snapshot keeps serving.
func (f *fleet) reload() error {
	set, err := profiles.Load(f.dir)
	if err != nil {
		return err
	}
	f.cur.Store(set)
	f.log.Info("profiles loaded", "path", f.dir, "hosts", len(set.Hosts()), "files", len(set.Files()))
	return nil
}

func (f *fleet) Lookup(mac net.HardwareAddr) (*profiles.Host, bool) { return f.cur.Load().Lookup(mac) }

func (f *fleet) DefaultInstaller() *profiles.Installer { return f.cur.Load().DefaultInstaller() }

// Known reports whether mac is a host of the profiles.
func (f *fleet) Known(mac net.HardwareAddr) bool {
	_, ok := f.cur.Load().Lookup(mac)
	return ok
}
