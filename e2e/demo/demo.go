package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"

	"github.com/rackboot/rackboot/e2e/demo/rack"
	"github.com/rackboot/rackboot/e2e/lab"
)

// sayFunc prints one step of the demo: a short name and what happens.
type sayFunc func(step, format string, args ...any)

// demo builds everything, installs the rack, boots it from disk, logs in
// to each machine and reports. Every step that creates something defers
// its removal, so an error or an interrupt at any point leaves nothing
// behind but lab's cache (the kernel, the Debian image).
func demo(ctx context.Context, opts options, out io.Writer) (err error) {
	say := sayFunc(func(step, format string, args ...any) {
		fmt.Fprintf(out, "%-10s %s\n", step, fmt.Sprintf(format, args...))
	})
	var ms []*machine
	for _, m := range rack.DebianMachines() {
		ms = append(ms, &machine{Machine: m})
	}
	say("demo", "rackboot installs Debian 12 on %d machines over the network, at once; they boot it from their disks, "+
		"and the demo logs in to each over SSH; all in a private lab", len(ms))
	if errs := rack.CheckDebianHost(); len(errs) > 0 {
		return hostError(errs)
	}
	sweep(say)

	w, err := newWorkDir()
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, cleanWorkDir(w, opts.keep, say)) }()
	say("work dir", "%s (everything the demo builds; removed at the end unless --keep)", w.dir)

	built, err := rack.Build(ctx, rack.BuildConfig{
		Dir:    w.dir,
		Debian: true,
		Log:    slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{ReplaceAttr: dropTimeAndLevel})),
		Step:   func(what string) { say("build", "%s", what) },
	})
	if err != nil {
		return err
	}
	im := built.Images[rack.DebianVersion]
	say("artifacts", "%s: kernel %s (Linux %s), agent initramfs %s (%s)", w.path("artifacts"),
		rack.KernelFile, built.Kernel.KernelVersion, rack.InitrdFile, mib(built.InitrdSize))
	say("", "%s: %s, a %s whole-disk image of Debian 12 (Linux %s, %d packages); sha256 %s",
		rack.ImageFile(im.Version), mib(im.Size), mib(im.UncompressedSize), im.Kernel, len(im.Packages), im.SHA256)

	key, err := lab.NewSSHKey("rackboot-demo@lab")
	if err != nil {
		return err
	}
	if err := key.WritePrivate(w.key()); err != nil {
		return err
	}
	set, err := rack.WriteDebianProfiles(w.profiles(), im, key.Authorized)
	if err != nil {
		return err
	}
	if err := resolve(ms, set, key.Authorized); err != nil {
		return fmt.Errorf("the Debian fleet: %w", err)
	}
	say("ssh key", "a new ed25519 key for this run; the profiles give its public half to the user %s", ms[0].user)
	if opts.keep {
		say("", "its private half: %s (kept with the work dir: --keep)", w.key())
	}
	say("profiles", "%s: %d hosts with static addresses, %s with its sha256, a preserved data partition, the run's key",
		filepath.Join(w.profiles(), rack.DebianFleetFile), set.Len(), im.Version)

	n, err := lab.NewNet(ctx, lab.NetConfig{})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, closeLab(n, say)) }()
	if err := n.PinBridgeAddress(ctx); err != nil {
		return err
	}
	say("lab", "namespaces %s, %s, %s; bridge %s %s/%d", n.Srv, n.Site, n.Cli, lab.Bridge, lab.ServerIP, lab.PrefixLen)
	if _, err := n.StartSiteDHCP(w.dir); err != nil {
		return err
	}
	say("site dhcp", "busybox udhcpd on %s: addresses %s-%s, nothing about PXE", lab.SiteIP, lab.SiteRangeStart, lab.SiteRangeEnd)
	rb, err := n.StartRackboot(ctx, lab.RackbootConfig{
		Binary: built.Rackboot, Profiles: w.profiles(), Data: w.data(), Artifacts: built.Artifacts, Log: w.serverLog(),
		Args: rack.ServeArgs,
	})
	if err != nil {
		return err
	}
	say("rackboot", "rackboot serve on %s %s: proxy-DHCP 67+4011, TFTP 69, HTTP %s, APIs over HTTPS %s; log %s",
		lab.Bridge, lab.ServerIP, rb.URL(), rb.APIURL(), w.serverLog())
	for _, m := range ms {
		say("machine", "%-5s %-8s %-27s %2d GiB disk  %s, layout %s, %s",
			m.Name, m.host.Hostname, m.Boot(), m.DiskSize>>30, m.host.Version.Name, m.host.Layout.Name, m.host.Network.Address)
	}
	defer closeVMs(ms, out)

	if err := installAll(ctx, n, rb, w, ms, opts.timeout, say, out); err != nil {
		return err
	}
	showHosts(ctx, n, rb, out)
	bootAll(ctx, n, w, ms, key, opts.timeout, say, out)
	if err := report(out, ms, w.serverLog()); err != nil {
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
		return fmt.Errorf("did not get through: %s (--keep keeps every log and serial console)", strings.Join(failed, ", "))
	}
	fmt.Fprintf(out, "\nall %d machines installed Debian 12 over the network from rackboot, booted it from their disks "+
		"and answered over SSH as their profiles say\n", len(ms))
	return nil
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
func hostError(errs []error) error {
	var b strings.Builder
	b.WriteString("this machine cannot run the demo:\n")
	for _, e := range errs {
		fmt.Fprintf(&b, "  - %v\n", e)
	}
	b.WriteString("The demo needs root (network namespaces, QEMU taps, ports 67 and 69; mmdebstrap's chroot), Go,\n" +
		"and Debian's qemu-system-x86 ipxe ipxe-qemu ovmf busybox-static kmod iproute2 packages for the lab\n" +
		"and mmdebstrap e2fsprogs dosfstools mtools for the Debian image:\n" +
		"`sudo bash e2e/demo.sh` installs them and runs the demo.")
	return errors.New(b.String())
}

// closeVMs powers the machines off and removes their taps.
func closeVMs(ms []*machine, out io.Writer) {
	for _, m := range ms {
		for _, vm := range []*lab.VM{m.install, m.boot} {
			if vm == nil {
				continue
			}
			if err := vm.Close(); err != nil {
				fmt.Fprintf(out, "demo: closing %s: %v\n", vm.Name(), err)
			}
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
	say("cleanup", "work dir %s removed, the run's SSH key with it; the lab's kernel and the Debian image stay cached in %s",
		w.dir, lab.DefaultCacheDir())
	return nil
}

// dropTimeAndLevel keeps the builders' log lines short: the demo's own
// lines carry no time either.
func dropTimeAndLevel(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 && (a.Key == slog.TimeKey || a.Key == slog.LevelKey) {
		return slog.Attr{}
	}
	return a
}

// mib formats a size for people.
func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
