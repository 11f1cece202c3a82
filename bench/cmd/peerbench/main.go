// Command peerbench is the Go side of P8 (issue 15, peer distribution):
// N real rackboot-agent processes, each in its own network namespace,
// install one chunked image at once from an appliance whose link is
// rate-limited. bench/run.sh builds the network, starts the appliance and
// the agents; peerbench makes the image and watches the wave:
//
//	peerbench mkdisk -size-mib 256 disk.img        # a whole-disk GPT image that chunks like an OS's
//	peerbench wait -server URL -ca CA -token-file F -macs FILE -start T0 [-pids-file F] -tag k=v ...
//
// wait polls the admin API until every machine of -macs has ended its
// attempt (installed, or failed) or every agent process of -pids-file has
// exited, then reads each machine's history and writes one result record
// (bench/internal/result) on stdout: how many installed, the wall time
// from -start to the last recorded success, the per-install durations,
// and the bytes the agents reported fetched (and from peers, when the
// appliance records it).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/rackboot/rackboot/bench/internal/result"
)

const usage = "usage: peerbench mkdisk|wait [flags] (see -h of each)"

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "peerbench: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		return errors.New(usage)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd, args := args[0], args[1:]
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	tags := result.Tags{}
	fs.Var(tags, "tag", "`key=value` tag of the record (repeatable)")
	switch cmd {
	case "mkdisk":
		return mkdisk(fs, args)
	case "wait":
		return wait(ctx, fs, args, tags)
	}
	return fmt.Errorf("unknown subcommand %q\n%s", cmd, usage)
}
