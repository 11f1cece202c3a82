package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/rackboot/rackboot/profiles"
)

// runValidate loads a profiles directory the way the daemon does. It exits 0
// with a one-line summary, or 1 with every problem as file:line: message, so
// that admins can run it in their own CI before an edit reaches the appliance.
func runValidate(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, "usage: rackboot validate DIR") }
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	set, err := profiles.Load(fs.Arg(0))
	if err != nil {
		var list profiles.ErrorList
		if errors.As(err, &list) {
			for _, e := range list {
				fmt.Fprintln(stderr, e.Error())
			}
			fmt.Fprintf(stderr, "%d error(s)\n", len(list))
		} else {
			fmt.Fprintln(stderr, err)
		}
		return 1
	}
	def := "no default installer"
	if set.DefaultInstaller() != nil {
		def = "a default installer"
	}
	fmt.Fprintf(stdout, "ok: %d hosts, %s, in %d files\n", len(set.Hosts()), def, len(set.Files()))
	return 0
}
