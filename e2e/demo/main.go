// Command demo is rackboot's main job on an embedded default: three
// machines with blank disks are powered on at once in a private virtual
// lab, and rackboot installs a real Debian 12 on them over the network:
// proxy-DHCP, TFTP for UEFI firmware, the per-machine iPXE script, the
// installer kernel and the rackboot-agent initramfs, the plan, the
// whole-disk image and the config drive. `rackboot watch` shows the
// installs live. Then the machines are powered on again: rackboot tells
// each to boot its disk, GRUB boots Debian, cloud-init configures it from
// the config drive, and the demo logs in to each over SSH, as the
// profile's user with a key made for the run, and shows what it says:
// hostname, addresses, OS, disk usage of / and of the preserved data
// partition, cloud-init's status. A machine that cannot be logged in to,
// whose cloud-init is not done or that is not what its profile says
// fails the demo. A table says what each machine ended up with and
// when each step happened. The rack is package rack's Debian rack: a
// BIOS machine with a virtio NIC, a UEFI one with a virtio NIC, a UEFI
// one with an Intel e1000, with static addresses on the lab's segment.
//
// Run it with `bash e2e/demo.sh` (which installs the Debian packages it
// needs), or as root:
//
//	go run ./e2e/demo [--keep] [--timeout 12m]
//
// What it builds lives in one work directory, printed at the start and
// removed at the end unless --keep: rackboot and its agent built from this
// checkout, the agent's initramfs, the profiles, the run's SSH key, the
// machines' disks, every log and serial console. The lab (network
// namespaces, the bridge, the site's DHCP server, rackboot, QEMU) is
// removed too, also on Ctrl-C or SIGTERM; a second Ctrl-C quits at once,
// and the next run sweeps what that left. Only lab's cache stays (see
// lab.DefaultCacheDir): the kernel and the Debian image, which the first
// run builds with mmdebstrap from the Debian mirror (5 to 8 minutes) and
// later runs take from there once the mirror says its packages are still
// current.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// defaultTimeout bounds each power-on. Under TCG, three Debian machines
// on two cores take 2 to 5 minutes from power-on to cloud-init done, more
// when other QEMU machines share the cores (DEBIAN.md); the end-to-end
// suite gives a boot 10 minutes to the SSH login.
const defaultTimeout = 12 * time.Minute

// options are the command-line flags.
type options struct {
	keep    bool          // keep the work directory
	timeout time.Duration // per power-on: the install; the boot from disk to cloud-init done
}

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// Exit statuses.
const (
	exitOK          = 0
	exitFailed      = 1 // a machine did not get through, or the lab could not be built
	exitUsage       = 2
	exitInterrupted = 130 // 128 + SIGINT, as shells report it
)

// run is the whole command; it returns the exit status once every cleanup
// has run.
func run(args []string, out, errOut io.Writer) int {
	opts, err := parseFlags(args, errOut)
	if err != nil {
		return exitUsage
	}
	if err := dieWithParent(); err != nil {
		fmt.Fprintf(errOut, "demo: %v\n", err)
	}
	ctx, stop := interruptible(errOut)
	defer stop()
	err = demo(ctx, opts, out)
	switch {
	case err == nil:
		return exitOK
	case ctx.Err() != nil:
		fmt.Fprintf(errOut, "demo: interrupted (%v)\n", context.Cause(ctx))
		return exitInterrupted
	default:
		fmt.Fprintf(errOut, "demo: %v\n", err)
		return exitFailed
	}
}

func parseFlags(args []string, errOut io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(errOut)
	fs.BoolVar(&o.keep, "keep", false, "keep the work directory (logs, serial consoles, profiles) instead of removing it")
	fs.DurationVar(&o.timeout, "timeout", defaultTimeout,
		"how long each power-on of a machine may take: the install; the boot from disk to the SSH login and cloud-init done")
	fs.Usage = func() {
		fmt.Fprintln(errOut, "usage: demo [--keep] [--timeout D]   (as root; see bash e2e/demo.sh)")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(errOut, "demo: unexpected arguments %q\n", fs.Args())
		fs.Usage()
		return o, errors.New("usage")
	}
	if o.timeout <= 0 {
		fmt.Fprintln(errOut, "demo: --timeout must be positive")
		return o, errors.New("usage")
	}
	return o, nil
}

// interruptible returns a context cancelled by the first SIGINT or SIGTERM,
// so that the deferred cleanups run. A second signal quits at once: the
// lab's processes die with this one (PR_SET_PDEATHSIG) and the namespaces
// stay behind for the next run's sweep.
func interruptible(errOut io.Writer) (context.Context, context.CancelFunc) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// A channel of our own sees every signal too, including the first,
	// which NotifyContext turns into the cancellation.
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		for n := 0; ; n++ {
			select {
			case <-sig:
			case <-done:
				return
			}
			if n == 0 {
				fmt.Fprintln(errOut, "\ndemo: interrupted: cleaning up (interrupt again to quit at once)")
				continue
			}
			fmt.Fprintln(errOut, "demo: quitting without cleanup: the next run removes the lab's namespaces; the work directory stays")
			os.Exit(exitInterrupted)
		}
	}()
	return ctx, func() {
		signal.Stop(sig)
		close(done)
		stop()
	}
}
