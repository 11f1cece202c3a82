package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/rackboot/rackboot/e2e/lab"
)

// sayFunc prints one step of the setup: a short name and what it did.
type sayFunc func(step, format string, args ...any)

// demo builds the lab, boots the rack and reports. Every step that creates
// something defers its removal, so an error or an interrupt at any point
// leaves nothing behind but the kernel cache.
func demo(ctx context.Context, opts options, out io.Writer) (err error) {
	say := sayFunc(func(step, format string, args ...any) {
		fmt.Fprintf(out, "%-10s %s\n", step, fmt.Sprintf(format, args...))
	})
	ms := rack()
	say("demo", "%d machines of the example fleet boot over the network from rackboot, at once, in a private lab", len(ms))
	if err := lab.CheckHost(); err != nil {
		return hostError(err)
	}
	sweep(say)

	w, err := newWorkDir()
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, cleanWorkDir(w, opts.keep, say)) }()
	say("work dir", "%s (everything the demo builds; removed at the end unless --keep)", w.dir)

	say("build", "go build ./cmd/rackboot")
	if err := w.buildRackboot(ctx); err != nil {
		return err
	}
	set, err := w.writeProfiles()
	if err != nil {
		return err
	}
	if err := resolve(ms, set); err != nil {
		return fmt.Errorf("the example fleet: %w", err)
	}
	say("profiles", "%s: %d hosts in %d files, from the embedded examples", w.profiles(), set.Len(), len(set.Files()))
	say("artifacts", "kernel and marker initramfs from the lab's cache %s (kept: it is a cache)", lab.DefaultCacheDir())
	arts, err := w.installArtifacts(ctx, ms, slog.New(slog.NewTextHandler(out, nil)))
	if err != nil {
		return err
	}
	say("", "%s: Debian kernel %s as %s, initramfs as %s", w.artifacts(), arts.KernelVersion, lab.KernelName, lab.InitrdName)

	n, err := lab.NewNet(ctx, lab.NetConfig{})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, closeLab(n, say)) }()
	say("lab", "namespaces %s, %s, %s; bridge %s %s/%d", n.Srv, n.Site, n.Cli, lab.Bridge, lab.ServerIP, lab.PrefixLen)
	if _, err := n.StartSiteDHCP(w.dir); err != nil {
		return err
	}
	say("site dhcp", "busybox udhcpd on %s: addresses %s-%s, nothing about PXE", lab.SiteIP, lab.SiteRangeStart, lab.SiteRangeEnd)
	if _, err := startRackboot(ctx, n, w); err != nil {
		return err
	}
	say("rackboot", "serving on %s %s: proxyDHCP 67+4011, TFTP 69, HTTP %s, null IPv6 RA; log %s",
		lab.Bridge, lab.ServerIP, httpPort, w.serverLog())

	return boot(ctx, ms, n, w, opts.timeout, out)
}

// boot powers the machines on together, follows them until they booted or
// timed out, and prints the table.
func boot(ctx context.Context, ms []*machine, n *lab.Net, w *workDir, timeout time.Duration, out io.Writer) error {
	fmt.Fprintln(out)
	start := time.Now()
	defer closeVMs(ms, out)
	if err := powerOn(ctx, ms, n, w.dir); err != nil {
		return err
	}
	p := newProgress(out, start, ms, w.serverLog())
	p.showPowerOn()
	p.follow(ctx, timeout)
	if err := report(out, p); err != nil {
		return err
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var failed []string
	for _, m := range ms {
		if m.err != nil {
			failed = append(failed, m.label())
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("not booted within %v: %s (--keep keeps every log and serial console)",
			timeout, strings.Join(failed, ", "))
	}
	fmt.Fprintf(out, "\nall %d machines booted the installer their profiles name, served by rackboot\n", len(ms))
	return nil
}

// powerOn starts every machine at the same time, as when a rack's power
// comes on.
func powerOn(ctx context.Context, ms []*machine, n *lab.Net, dir string) error {
	errs := make([]error, len(ms))
	var wg sync.WaitGroup
	for i, m := range ms {
		wg.Go(func() { errs[i] = m.powerOn(ctx, n, dir) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// sweep removes the namespaces of earlier runs that were killed before
// they could clean up.
func sweep(say sayFunc) {
	swept, err := lab.Sweep("")
	if err != nil {
		say("sweep", "removing stale lab namespaces: %v", err)
	}
	if len(swept) > 0 {
		say("sweep", "removed the namespaces a killed run left: %s", strings.Join(swept, " "))
	}
}

// hostError explains what this machine lacks, one item per line, and how
// to get it.
func hostError(err error) error {
	items := []error{err}
	if j, ok := errors.Unwrap(err).(interface{ Unwrap() []error }); ok {
		items = j.Unwrap() // lab.CheckHost joins one error per missing thing
	}
	var b strings.Builder
	b.WriteString("this machine cannot run the lab:\n")
	for _, e := range items {
		fmt.Fprintf(&b, "  - %v\n", e)
	}
	b.WriteString("The demo needs root (network namespaces, QEMU taps, ports 67 and 69) and Debian's\n" +
		"qemu-system-x86 ipxe ipxe-qemu ovmf busybox-static kmod iproute2 packages:\n" +
		"`sudo bash e2e/demo.sh` installs them and runs the demo.")
	return errors.New(b.String())
}

// closeVMs powers the machines off and removes their taps.
func closeVMs(ms []*machine, out io.Writer) {
	for _, m := range ms {
		if m.vm == nil {
			continue
		}
		if err := m.vm.Close(); err != nil {
			fmt.Fprintf(out, "demo: closing %s: %v\n", m.name, err)
		}
	}
}

// closeLab stops rackboot and udhcpd and deletes the namespaces.
func closeLab(n *lab.Net, say sayFunc) error {
	if err := n.Close(); err != nil {
		return fmt.Errorf("removing the lab: %w", err)
	}
	say("cleanup", "VMs, rackboot and udhcpd stopped; namespaces %s-{srv,site,cli} deleted", strings.TrimSuffix(n.Srv, "-srv"))
	return nil
}

// cleanWorkDir removes the work directory, or says where it stays.
func cleanWorkDir(w *workDir, keep bool, say sayFunc) error {
	if keep {
		say("cleanup", "work dir kept (--keep): %s", w.dir)
		return nil
	}
	if err := w.remove(); err != nil {
		return err
	}
	say("cleanup", "work dir %s removed", w.dir)
	return nil
}
