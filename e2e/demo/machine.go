package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/rackboot/rackboot/e2e/demo/rack"
	"github.com/rackboot/rackboot/e2e/lab"
	"github.com/rackboot/rackboot/profiles"
)

// machine is one machine of the rack as the demo follows it through its
// two power-ons: the install over the network, then the boot from disk,
// which ends with an SSH login and the machine's answers.
type machine struct {
	rack.Machine
	host *profiles.Host // its profile; set by resolve
	user string         // the profile's user that has the run's key; set by resolve

	install, boot *lab.VM // set by each power-on
	installEnd    rack.Ending
	// installed: the agent said the install was done.
	installed bool
	// login, settled and off are moments of the boot from disk, from its
	// power-on: the SSH login, cloud-init done (the end of `cloud-init
	// status --wait`), QEMU's exit after the demo's poweroff. Zero when
	// they did not happen.
	login, settled, off time.Duration
	// said is what the installed system answered over SSH.
	said session
	// err is why the machine did not get through, nil when it did.
	err error
}

// resolve finds each machine's host in the profiles, and the user that
// logs in with key. A machine that the profiles do not know, cannot
// install or give no address to reach, would only wait in the demo.
func resolve(ms []*machine, set *profiles.Set, key string) error {
	for _, m := range ms {
		h, ok := set.Lookup(m.MAC)
		switch {
		case !ok:
			return fmt.Errorf("the profiles have no host with MAC %s (%s)", m.MAC, m.Name)
		case h.Installer == nil || h.Version == nil || h.Layout == nil:
			return fmt.Errorf("host %s (%s, %s) lacks an installer, a version or a layout", h.Hostname, m.MAC, h.Source)
		case !h.Network.Static():
			return fmt.Errorf("host %s (%s, %s) has no static address for the demo to log in to", h.Hostname, m.MAC, h.Source)
		}
		i := slices.IndexFunc(h.Users, func(u profiles.User) bool { return slices.Contains(u.SSHKeys, key) })
		if i < 0 {
			return fmt.Errorf("host %s (%s, %s) gives no user the run's SSH key", h.Hostname, m.MAC, h.Source)
		}
		m.host, m.user = h, h.Users[i].Name
	}
	return nil
}

// label names the machine in progress lines: the lab's name and the
// profile's hostname.
func (m *machine) label() string { return m.Name + " " + m.host.Hostname }

// address is the machine's static address, where the demo logs in.
func (m *machine) address() string { return m.host.Network.Prefix().Addr().String() }

// installTime is from power-on to the agent's "install done".
func (m *machine) installTime() time.Duration { return m.installEnd.Line.At }

// check compares what the installed system said over SSH with what its
// profile asked for.
func (m *machine) check() error {
	s := m.said
	if err := s.failed(); err != nil {
		return err
	}
	switch {
	case s.hostname() != m.host.Hostname:
		return fmt.Errorf("the machine calls itself %q, the profile says %s", s.hostname(), m.host.Hostname)
	case !slices.Contains(s.addresses(), m.host.Network.Address):
		return fmt.Errorf("the machine has the addresses %q, the profile says %s", s.addresses(), m.host.Network.Address)
	case s.version() != m.host.Version.Name:
		return fmt.Errorf("the machine runs %q, the profile says %s", s.version(), m.host.Version.Name)
	case s.cloudInit() != "done":
		return fmt.Errorf("cloud-init status is %q, not done", s.cloudInit())
	}
	for _, p := range m.host.Layout.Partitions {
		if p.Mount != "" && p.Mount != profiles.MountSwap && !slices.Contains(s.mounts(), p.Mount) {
			return fmt.Errorf("partition %s is not mounted at %s", p.Name, p.Mount)
		}
	}
	return nil
}

// result is the machine's outcome in a few words.
func (m *machine) result() string {
	switch {
	case m.err == nil && m.boot != nil:
		return "ok"
	case m.err == nil:
		return "not booted"
	case errors.Is(m.err, context.Canceled):
		return "interrupted"
	}
	return "FAILED"
}
