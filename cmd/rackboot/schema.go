package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/rackboot/rackboot/profiles"
)

// schemaPath is where the package installs the output of `rackboot
// schema`; it also links /etc/rackboot/profiles/rackboot.schema.json to
// it, where the modelines of the example profiles find it.
const schemaPath = "/usr/share/rackboot/rackboot.schema.json"

// runSchema prints the JSON Schema (draft-07) of profiles files. Saved next
// to the profiles, it lets yaml-language-server (VS Code, Neovim, …) check
// a file as the admin types, with a first line such as the examples' own
//
//	# yaml-language-server: $schema=./rackboot.schema.json
//
// A path relative to the file works in the repository (examples/ holds the
// schema), in /etc/rackboot/profiles (the package's link) and in an
// admin's own copy; an absolute path would work on the appliance only.
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
