// Command rackboot is the rackboot appliance: the daemon (`rackboot serve`)
// and the admin's command-line tools, in one binary.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `usage: rackboot <command> [flags]

commands:
  serve      run the appliance: proxy-DHCP, TFTP, iPXE scripts and artifacts over HTTP
  validate   check a profiles directory and print a summary, or every error as file:line
  render     show what rackboot would do for one machine: profile, DHCP answer, script, install plan
  initrd     build the installer initramfs from rackboot-agent, a kernel's modules and mkfs.xfs
  setup      first run: the installer from this host's kernel into the artifacts; with --image, a version in the catalog
  image add  import an OS image into the artifacts' chunk store, write its index, print its catalog entry
  schema     print the JSON Schema of the profiles YAML (for editors)
  version    print the version, the VCS revision and the Go version (also --version)

fleet (talk to a running daemon: --server URL or $RACKBOOT_SERVER; admin token
from --data DIR/admin.token or $RACKBOOT_TOKEN):
  hosts      list machines: state, installed version, attempt (--version-below N: not patched)
  versions   how many machines run each version, and which
  history    every install attempt of a machine
  reinstall  mark machines pending: they install again at their next PXE boot
             (--power-cycle: now, through their BMCs)
  power      status, on, off or cycle machines through their BMCs (--netboot: PXE once)
  rollout start   move a selection to a version in waves through the BMCs, canary first,
                  halting by itself when a wave fails; survives a daemon restart
  rollout status  every rollout, or one: each wave's hosts and results, the latest events
  rollout pause   let the current wave finish, start no next one
  rollout resume  go on; after a halt, retry the halted wave's failed hosts first
  rollout abort   stop for good: no further wave
  logs       print (-f: follow) the agent's log of a machine's latest attempt
  watch      live progress of every installing machine
  appliances  the appliances sharing the store: their APIs, profiles, which one leads

Run "rackboot <command> -h" for a command's flags.
`

// commands maps a sub-command to its implementation. Each one parses its own
// flags and returns the process exit code.
var commands = map[string]func(ctx context.Context, args []string, stdout, stderr io.Writer) int{
	"serve":    runServe,
	"validate": runValidate,
	"render":   runRender,
	"schema":   runSchema,
	"initrd":   runInitrd,
	"image":    runImage,
	"setup":    runSetup,
	"version":  runVersion,

	"hosts":     runHosts,
	"versions":  runVersions,
	"history":   runHistory,
	"reinstall": runReinstall,
	"power":     runPower,
	"rollout":   runRollout,
	"logs":      runLogs,
	"watch":     runWatch,

	"appliances": runAppliances,
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	if os.Args[1] == "--version" || os.Args[1] == "-version" {
		os.Args[1] = "version"
	}
	cmd, ok := commands[os.Args[1]]
	if !ok {
		cmd, ok = generators[os.Args[1]]
	}
	if !ok {
		if a := os.Args[1]; a == "-h" || a == "--help" || a == "help" {
			fmt.Print(usage)
			os.Exit(0)
		}
		fmt.Fprintf(os.Stderr, "rackboot: unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cmd(ctx, os.Args[2:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
