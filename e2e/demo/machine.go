package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rackboot/rackboot/e2e/demo/rack"
	"github.com/rackboot/rackboot/e2e/lab"
	"github.com/rackboot/rackboot/e2e/osimage"
	"github.com/rackboot/rackboot/profiles"
)

// machine is one machine of the rack as the demo follows it through its
// two power-ons: the install over the network, then the boot from disk.
type machine struct {
	rack.Machine
	host *profiles.Host // its profile; set by resolve

	install, boot       *lab.VM // set by each power-on
	installEnd, bootEnd rack.Ending
	// installed: the agent said the install was done.
	installed bool
	// report is what the installed OS printed on its console.
	report osimage.Report
	// err is why the machine did not get through, nil when it did.
	err error
}

// resolve finds each machine's host in the profiles. A machine that the
// profiles do not know, or cannot install, would only wait in the demo.
func resolve(ms []*machine, set *profiles.Set) error {
	for _, m := range ms {
		h, ok := set.Lookup(m.MAC)
		switch {
		case !ok:
			return fmt.Errorf("the profiles have no host with MAC %s (%s)", m.MAC, m.Name)
		case h.Installer == nil || h.Version == nil || h.Layout == nil:
			return fmt.Errorf("host %s (%s, %s) lacks an installer, a version or a layout", h.Hostname, m.MAC, h.Source)
		}
		m.host = h
	}
	return nil
}

// label names the machine in progress lines: the lab's name and the
// profile's hostname.
func (m *machine) label() string { return m.Name + " " + m.host.Hostname }

// installTime is from power-on to the agent's "install done".
func (m *machine) installTime() time.Duration { return m.installEnd.Line.At }

// check compares what the installed OS reported with what its profile
// asked for.
func (m *machine) check() error {
	r := m.report
	switch {
	case r.Fail != "":
		return fmt.Errorf("the OS failed: %s", r.Fail)
	case !r.Done:
		return errors.New("the OS did not finish its boot")
	case r.Version != m.host.Version.Name:
		return fmt.Errorf("the OS is %q, the profile says %s", r.Version, m.host.Version.Name)
	case r.Hostname != m.host.Hostname:
		return fmt.Errorf("the OS calls itself %q, the profile says %s", r.Hostname, m.host.Hostname)
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
