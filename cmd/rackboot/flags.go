package main

// Every verb defines its flags on a *flag.FlagSet and parses them with
// parseArgs. That one helper is what makes `-h` print the usage to stdout
// and exit 0 on every verb, and what lets `rackboot manpage` and
// `rackboot completion` read each verb's flags without running it: with a
// describer in the context (describe), parseArgs records the flag set and
// its usage text and stops the verb as if -h had been given. This costs
// each verb nothing but calling parseArgs with its context, where a
// registry of flag constructors would have split every verb in two.

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
)

// describer collects the flag set of the verb run with it in the context.
type describer struct {
	fs    *flag.FlagSet
	usage string // what fs.Usage prints
}

type describeKey struct{}

// describe runs the verb with args in describe mode and returns its flag
// set and usage text; nil if the verb never reached parseArgs.
func describe(run func(ctx context.Context, args []string, stdout, stderr io.Writer) int, args []string) *describer {
	d := &describer{}
	ctx := context.WithValue(context.Background(), describeKey{}, d)
	run(ctx, args, io.Discard, io.Discard)
	if d.fs == nil {
		return nil
	}
	return d
}

// parseArgs parses args, allowing flags after positional arguments
// ("rackboot history MAC --json"), which the flag package alone stops at.
// It returns the positional arguments and ok; when ok is false the verb
// returns exit at once: 0 after -h or --help (the usage went to stdout) or
// in describe mode, 2 after a flag error (printed with the usage to the
// flag set's output, stderr).
func parseArgs(ctx context.Context, fs *flag.FlagSet, args []string, stdout io.Writer) (pos []string, exit int, ok bool) {
	usage := fs.Usage
	if usage == nil {
		usage = fs.PrintDefaults
	}
	if d, _ := ctx.Value(describeKey{}).(*describer); d != nil {
		var b bytes.Buffer
		out := fs.Output()
		fs.SetOutput(&b)
		usage()
		fs.SetOutput(out)
		d.fs, d.usage = fs, b.String()
		return nil, 0, false
	}
	// The flag package prints the usage on -h as on an error, to the same
	// output; help is asked for, and goes to stdout.
	fs.Usage = func() {}
	defer func() { fs.Usage = usage }()
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				out := fs.Output()
				fs.SetOutput(stdout)
				usage()
				fs.SetOutput(out)
				return nil, 0, false
			}
			usage()
			return nil, 2, false
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, 0, true
		}
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			return append(pos, rest...), 0, true
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
}
