//go:build linux

// Command rackboot-agent is /init of rackboot's installer initramfs. As
// PID 1 it mounts the kernel's file systems, attaches the console, loads
// the drivers listed by `rackboot initrd`, brings up the boot NIC named on
// the kernel command line with DHCP, fetches the machine's install plan
// from the appliance with its one-attempt token, runs imaging's installer
// on it while reporting progress and log lines, reports done or failed,
// and reboots (or powers off, with rackboot.after=poweroff).
//
// Kernel command line, as rackboot's iPXE script writes it:
//
//	rackboot.server=http://IP:PORT rackboot.mac=MAC rackboot.token=TOKEN [rackboot.after=poweroff]
//
// rackboot.server= may list several appliances of one fleet, comma-separated,
// the serving one first: the agent goes on with the next when the one it
// talks to fails (failover.go).
//
// Whatever fails, the machine reboots after showing the error: the
// appliance counts the failed attempt, and the next network boot retries.
//
// Not PID 1, with arguments, it runs one attempt against disk image
// files on the host's network as it is (local_linux.go, rackboot-agent -h).
package main

import (
	"fmt"
	"os"
)

func main() {
	if os.Getpid() != 1 {
		if len(os.Args) > 1 {
			os.Exit(runLocal(os.Args[1:], os.Stderr))
		}
		fmt.Fprintln(os.Stderr, "rackboot-agent is /init of rackboot's installer initramfs (build one with rackboot initrd); outside it, it installs onto disk image files: rackboot-agent -h")
		os.Exit(2)
	}
	cerr := attachConsole()
	// End the line the kernel or firmware left open ("Probing EDD... ok"
	// has no newline), so the agent's lines start lines of their own.
	os.Stdout.WriteString("\n")
	con := newConsole(os.Stdout, uptime)
	after := boot(con, cerr)
	powerAction(con, after)
}
