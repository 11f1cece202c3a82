package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/rackboot/rackboot/e2e/lab"
)

// offWait bounds the time from `systemctl poweroff` to QEMU's exit.
const offWait = time.Minute

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
// boots the disk. Then the demo logs in to each over SSH with the run's
// key, shows what it answers, and powers it off.
func bootAll(ctx context.Context, n *lab.Net, w *workDir, ms []*machine, key *lab.SSHKey, timeout time.Duration,
	say sayFunc, out io.Writer) {
	fmt.Fprintln(out)
	say("boot", "powering the installed machines on again: rackboot answers each one's PXE boot with \"boot from your disk\"; "+
		"then ssh from the lab's client namespace with the run's key")
	var wg sync.WaitGroup
	var mu sync.Mutex // one machine's lines at a time
	for _, m := range ms {
		if m.err != nil {
			continue
		}
		wg.Go(func() {
			m.err = interrupted(ctx, m.bootFromDisk(ctx, n, w, key, timeout))
			mu.Lock()
			defer mu.Unlock()
			m.show(say)
		})
	}
	wg.Wait()
}

// bootFromDisk powers m on, logs in over SSH once its SSH server answers,
// waits for cloud-init's last stage, asks the machine what it became and
// checks that against its profile; then powers it off. timeout bounds
// all of it but the power-off, from power-on.
func (m *machine) bootFromDisk(ctx context.Context, n *lab.Net, w *workDir, key *lab.SSHKey, timeout time.Duration) error {
	var err error
	if m.boot, err = m.PowerOn(ctx, n, w.dir, m.Name+"-boot"); err != nil {
		return err
	}
	vm := m.boot
	deadline := vm.Started().Add(timeout)
	c, err := n.SSH(ctx, n.Cli, net.JoinHostPort(m.address(), "22"), m.user, key, time.Until(deadline))
	if err != nil {
		return fmt.Errorf("%w\nlast console lines (%s):\n%s", err, vm.SerialLog(), vm.Tail(25))
	}
	defer c.Close()
	// lab.Run cannot be cancelled; closing the client ends its session.
	defer context.AfterFunc(ctx, func() { c.Close() })()
	m.login = time.Since(vm.Started())
	// Its exit status is cloud-init's verdict, or timeout(1)'s: the
	// status cmdCloudInit shows says which.
	_, _ = lab.Run(c, waitCloudInit(time.Until(deadline)))
	m.settled = time.Since(vm.Started())
	m.said = ask(c, commands(m.host))
	checked := m.check()

	// The answer never comes: sshd goes down with the machine.
	go lab.Run(c, "sudo -n systemctl poweroff")
	select {
	case <-vm.Done():
		m.off = time.Since(vm.Started())
	case <-ctx.Done():
		return errors.Join(checked, ctx.Err())
	case <-time.After(offWait):
	}
	return checked
}

// show prints what became of m's boot from disk: the SSH session, or why
// there was none.
func (m *machine) show(say sayFunc) {
	switch {
	case errors.Is(m.err, context.Canceled):
		say("boot", "%s: interrupted", m.label())
		return
	case m.login == 0:
		say("boot", "%s: %v", m.label(), m.err)
		return
	}
	say("ssh", "%s: booted from its disk; %s@%s logged in with the run's key %.1f s after power-on, cloud-init finished at %.1f s:",
		m.label(), m.user, m.address(), m.login.Seconds(), m.settled.Seconds())
	for _, e := range m.said {
		say("", "  $ %s", e.cmd)
		for _, line := range strings.Split(strings.TrimRight(e.out, "\n"), "\n") {
			say("", "  %s", strings.TrimRight(line, " "))
		}
	}
	if m.err != nil {
		say("ssh", "%s: %v", m.label(), m.err)
	}
	if m.off == 0 {
		say("ssh", "%s: still on %v after `systemctl poweroff`; the cleanup stops it", m.label(), offWait)
	}
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
