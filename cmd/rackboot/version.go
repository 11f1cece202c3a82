package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// versionInfo is what `rackboot version` prints: the module version and the
// VCS state the Go toolchain stamped into the binary (empty when built
// outside a checkout, or with -buildvcs=false), and the Go version.
type versionInfo struct {
	Version  string `json:"version"`
	Revision string `json:"revision,omitempty"`
	Time     string `json:"time,omitempty"` // the commit's, RFC 3339
	Modified bool   `json:"modified"`       // built from a work tree with changes
	Go       string `json:"go"`
}

func readVersionInfo() versionInfo {
	b := versionInfo{Version: "(devel)", Go: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	if bi.Main.Version != "" {
		b.Version = bi.Main.Version
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Revision = s.Value
		case "vcs.time":
			b.Time = s.Value
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	return b
}

func (b versionInfo) String() string {
	s := "rackboot " + b.Version
	if b.Revision != "" {
		s += " " + b.Revision
		if b.Modified {
			s += " (modified)"
		}
	}
	if b.Time != "" {
		s += " " + b.Time
	}
	return s + " " + b.Go
}

// runVersion implements `rackboot version` and `rackboot --version`.
func runVersion(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print JSON: version, revision, time, modified, go")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "usage: rackboot version [--json]\n\nflags:\n")
		fs.PrintDefaults()
	}
	pos, exit, ok := parseArgs(ctx, fs, args, stdout)
	if !ok {
		return exit
	}
	if len(pos) != 0 {
		fs.Usage()
		return 2
	}
	b := readVersionInfo()
	if !*asJSON {
		fmt.Fprintln(stdout, b)
		return 0
	}
	j, err := json.MarshalIndent(b, "", "  ")
	if err == nil {
		_, err = fmt.Fprintf(stdout, "%s\n", j)
	}
	if err != nil {
		fmt.Fprintf(stderr, "rackboot version: %v\n", err)
		return 1
	}
	return 0
}
