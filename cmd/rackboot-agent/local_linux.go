package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/rackboot/rackboot/imaging"
)

// localUsage is the help of runLocal.
const localUsage = `usage: rackboot-agent -disk FILE [-disk FILE]... [-ca FILE] [-linger DURATION] rackboot.server=URL[,URL]... rackboot.mac=MAC rackboot.token=TOKEN

Outside the installer (not PID 1), rackboot-agent runs one install attempt of
the machine named by the kernel-line parameters (the words the appliance's
iPXE script puts on the installer's line: GET /ipxe?mac=MAC) against disk
image files or block devices given with -disk, on this host's network as it
is: no mounts, no drivers, no DHCP, no reboot. It reports to the appliance as
the installer does, serves its peers with peer distribution on, and exits 0
when the appliance accepted the install, 1 otherwise. Benchmarks run many of
them at once (bench P8); it is also a way to try a plan on a workstation.

`

// runLocal is rackboot-agent outside the installer initramfs (see
// localUsage). It returns the exit status.
func runLocal(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("rackboot-agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		io.WriteString(stderr, localUsage)
		fs.PrintDefaults()
	}
	var disks []string
	fs.Func("disk", "disk image `file` or block device the plan's disk rule selects among (repeatable)", func(s string) error {
		disks = append(disks, s)
		return nil
	})
	ca := fs.String("ca", caFile, "PEM `file` of the appliance's CA, for an https rackboot.server (DATA/tls/ca.pem on the appliance)")
	linger := fs.Duration("linger", 0, "serve peers at most this `long` after done, instead of the plan's linger")
	idle := fs.Duration("peer-idle", peerIdle, "stop serving peers after done once none has asked for this `long`")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if len(disks) == 0 {
		fmt.Fprintln(stderr, "rackboot-agent: at least one -disk is needed outside the installer")
		fs.Usage()
		return 2
	}
	cfg, err := parseCmdline(strings.Join(fs.Args(), " "))
	if err != nil {
		fmt.Fprintf(stderr, "rackboot-agent: %v\n", err)
		return 2
	}
	start := time.Now()
	con := newConsole(stderr, func() time.Duration { return time.Since(start) })
	log := newLogger(con, slog.LevelInfo)
	roots, err := loadCA(cfg.Servers, *ca)
	if err != nil {
		fmt.Fprintf(stderr, "rackboot-agent: %v\n", err)
		return 2
	}
	a := newAgent(con, log, newClient(cfg, roots, log))
	a.disks = func() ([]imaging.Disk, error) { return fileDisks(disks) }
	a.diskWait = 0
	a.peerLinger, a.peerIdle = *linger, *idle

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rctx, cancel := context.WithCancel(ctx)
	go a.ship.run(rctx, reportInterval)
	go a.progress.run(rctx, reportInterval)
	out, err := a.attempt(ctx)
	cancel()
	switch {
	case err != nil:
		con.Printf("rackboot-agent: INSTALL FAILED (phase %s): %v", a.progress.Phase(), err)
		return 1
	case !out.Done:
		con.Printf("rackboot-agent: the appliance did not accept the install: state %s: %s", out.State, out.Reason)
		return 1
	}
	con.Printf("rackboot-agent: install done and verified; appliance state %s", out.State)
	return 0
}

// fileDisks describes disk image files (or block devices) as the disks a
// plan's rule selects among.
func fileDisks(paths []string) ([]imaging.Disk, error) {
	var out []imaging.Disk
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		size, err := f.Seek(0, io.SeekEnd) // a block device's size too
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		out = append(out, imaging.Disk{Name: filepath.Base(p), Path: p, Size: size,
			LogicalSectorSize: 512, PhysicalSectorSize: 512, Model: "file"})
	}
	return out, nil
}
