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
//
// With --artifacts it also checks, as serve does in the background, that
// every image and installer file the profiles name is in that directory
// and that each image is what the catalog's sha256 says (catalogCheck):
// each problem is printed as file:line of the version, and the exit is 1.
// With --json the same is one JSON object on stdout (validateJSON).
func runValidate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	artifactsDir := fs.String("artifacts", "", "also check the catalog's images and installer files in this artifacts `dir`ectory (digests too)")
	asJSON := fs.Bool("json", false, "print the summary, or the errors, as one JSON object on stdout")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: rackboot validate [--artifacts DIR] [--json] PROFILES")
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
	if err != nil {
		if *asJSON {
			return printValidateJSON(stdout, stderr, set, err, "", nil)
		}
		printLoadError(stderr, err)
		return 1
	}
	var st *catalogStatus
	if *artifactsDir != "" {
		s := newCatalogCheck(*artifactsDir, nil).Check(ctx, set)
		if ctx.Err() != nil {
			return 1
		}
		st = &s
	}
	if *asJSON {
		return printValidateJSON(stdout, stderr, set, nil, *artifactsDir, st)
	}
	if st == nil {
		fmt.Fprintln(stdout, summary(set))
		return 0
	}
	if len(st.Problems) > 0 {
		for _, p := range st.Problems {
			fmt.Fprintln(stderr, p)
		}
		fmt.Fprintf(stderr, "%d of %d versions cannot be installed from %s: serve holds their hosts until this is fixed\n", st.Failed, st.Failed+st.OK, *artifactsDir)
		return 1
	}
	fmt.Fprintf(stdout, "%s; artifacts ok: %d versions\n", summary(set), st.OK)
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
