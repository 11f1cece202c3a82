package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/rackboot/rackboot/e2e/demo/rack"
	"github.com/rackboot/rackboot/e2e/lab"
	"github.com/rackboot/rackboot/e2e/osimage"
)

// installAll gives every machine a blank disk, powers them on together, as
// when a rack's power comes on, and follows the installs live.
func installAll(ctx context.Context, n *lab.Net, rb *lab.Rackboot, w *workDir, ms []*machine,
	timeout time.Duration, say sayFunc, out io.Writer) error {
	for _, m := range ms {
		if err := m.NewDisk(w.dir); err != nil {
			return err
		}
	}
	errs := make([]error, len(ms))
	var wg sync.WaitGroup
	for i, m := range ms {
		wg.Go(func() { m.install, errs[i] = m.PowerOn(ctx, n, w.dir, m.Name+"-install") })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	fmt.Fprintln(out)
	say("install", "%d machines powered on with blank disks; they PXE-boot rackboot's installer. Live: rackboot watch --until-idle", len(ms))
	followInstalls(ctx, n, rb, ms, timeout, out)
	for _, m := range ms {
		switch {
		case errors.Is(m.err, context.Canceled):
			say("install", "%s: interrupted", m.label())
		case m.err != nil:
			say("install", "%s: %v", m.label(), m.err)
		default:
			say("install", "%s: %q at %.1f s; the agent rebooted it (QEMU off at %.1f s)",
				m.label(), m.installEnd.Line.Text, m.installTime().Seconds(), m.installEnd.Off.Seconds())
		}
	}
	return ctx.Err()
}

// showHosts prints `rackboot hosts`: what the appliance now knows.
func showHosts(ctx context.Context, n *lab.Net, rb *lab.Rackboot, out io.Writer) {
	fmt.Fprintln(out, "\n$ rackboot hosts")
	cmd := rb.Command(n.Cli, "hosts")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil && ctx.Err() == nil {
		fmt.Fprintf(out, "demo: rackboot hosts: %v\n", err)
	}
}

// bootAll powers the installed machines on again, with the same disks:
// each PXE-boots, rackboot's script says it is installed, and the firmware
// boots the disk. The installed OS prints what it was given and powers
// off.
func bootAll(ctx context.Context, n *lab.Net, w *workDir, ms []*machine, timeout time.Duration, say sayFunc, out io.Writer) {
	fmt.Fprintln(out)
	say("boot", "powering the installed machines on again: rackboot answers each one's PXE boot with \"boot from your disk\"")
	var wg sync.WaitGroup
	var mu sync.Mutex // one machine's lines at a time
	for _, m := range ms {
		if m.err != nil {
			continue
		}
		wg.Go(func() {
			m.boot, m.err = m.PowerOn(ctx, n, w.dir, m.Name+"-boot")
			if m.err == nil {
				m.report, m.bootEnd, m.err = rack.WaitOS(ctx, m.boot, timeout)
			}
			if m.err == nil {
				m.err = m.check()
			}
			m.err = interrupted(ctx, m.err)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(m.err, context.Canceled):
				say("boot", "%s: interrupted", m.label())
				return
			case m.err != nil:
				say("boot", "%s: %v", m.label(), m.err)
				return
			}
			up, _, _ := m.boot.Find("^" + osimage.MarkerOS)
			say("boot", "%s: booted from its disk; %.1f s after power-on its OS said:", m.label(), up.At.Seconds())
			for _, l := range m.boot.Lines() {
				if strings.HasPrefix(l.Text, "RACKBOOT_DEMO_") {
					say("", "  %s", l.Text)
				}
			}
		})
	}
	wg.Wait()
}

// interrupted marks err as the interruption's doing when ctx ended: a
// Ctrl-C on the terminal reaches QEMU too, whose machine then "stopped"
// before its last line.
func interrupted(ctx context.Context, err error) error {
	if err == nil || ctx.Err() == nil || errors.Is(err, context.Canceled) {
		return err
	}
	return fmt.Errorf("%w (%v)", context.Canceled, err)
}
