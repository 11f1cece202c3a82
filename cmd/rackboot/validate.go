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
func runValidate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print the summary, or the errors, as one JSON object on stdout (see validateJSON)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "usage: rackboot validate DIR [--json]\n\nflags:\n")
		fs.PrintDefaults()
	}
	pos, exit, ok := parseArgs(ctx, fs, args, stdout)
	if !ok {
		return exit
	}
	if len(pos) != 1 {
		fs.Usage()
		return 2
	}
	set, err := profiles.Load(pos[0])
	if *asJSON {
		return printValidateJSON(stdout, stderr, set, err)
	}
	if err != nil {
		printLoadError(stderr, err)
		return 1
	}
	fmt.Fprintln(stdout, summary(set))
	return 0
}

// summary is the one line that describes a valid snapshot.
func summary(set *profiles.Set) string {
	return fmt.Sprintf("ok: %d hosts, %d groups, %d versions, %d layouts in %d files (digest %.12s)",
		set.Len(), len(set.Groups()), len(set.Versions()), len(set.Layouts()), len(set.Files()), set.Digest())
}

// printLoadError prints every problem of a failed Load on its own line, as
// file:line[:column]: message, which editors and CI systems link to the
// file, and a count.
func printLoadError(w io.Writer, err error) {
	var list profiles.ErrorList
	if !errors.As(err, &list) {
		fmt.Fprintln(w, err)
		return
	}
	for _, e := range list {
		fmt.Fprintln(w, e.Error())
	}
	if len(list) == 1 {
		fmt.Fprintln(w, "1 error")
	} else {
		fmt.Fprintf(w, "%d errors\n", len(list))
	}
}
