package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/rackboot/rackboot/profiles"
)

// schemaPath is where the package installs the output of `rackboot
// schema`, and where the modelines of the example profiles point: an
// absolute path works from /etc/rackboot/profiles and from any copy.
const schemaPath = "/usr/share/rackboot/rackboot.schema.json"

// runSchema prints the JSON Schema of profiles files. Saved next to the
// profiles, it lets yaml-language-server (VS Code, Neovim, …) check a file
// as the admin types, with a first line such as
//
//	# yaml-language-server: $schema=./rackboot.schema.json
func runSchema(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("schema", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(fs.Output(), "usage: rackboot schema > rackboot.schema.json") }
	pos, exit, ok := parseArgs(ctx, fs, args, stdout)
	if !ok {
		return exit
	}
	if len(pos) != 0 {
		fs.Usage()
		return 2
	}
	b, err := profiles.Schema()
	if err != nil {
		fmt.Fprintf(stderr, "rackboot schema: %v\n", err)
		return 1
	}
	if _, err := stdout.Write(b); err != nil {
		fmt.Fprintf(stderr, "rackboot schema: %v\n", err)
		return 1
	}
	return 0
}
