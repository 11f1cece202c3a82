package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/rackboot/rackboot/initrd"
)

// runInitrd implements `rackboot initrd`: it builds the installer initramfs
// from the static agent, a distribution kernel's modules and the build
// host's programs the agent runs (--tools; by default mkfs.xfs when the
// host has it), written atomically so that a daemon serving the file never
// serves half of it.
func runInitrd(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("initrd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	agent := fs.String("agent", "", "the static rackboot-agent `binary` (default: rackboot-agent beside this program, else "+packagedAgent+")")
	modules := fs.String("modules", "", "the kernel's modules `directory` (lib/modules/VERSION of the unpacked kernel package); empty: no modules")
	names := fs.String("include", "", "comma-separated module `names` (default: virtio, nvme, ahci, e1000, igb, ixgbe, i40e, mlx5 …)")
	tools := fs.String("tools", "", "comma-separated `programs` of this host to carry with their libraries, names (looked up in PATH, /usr/sbin, /sbin) or absolute paths; empty: none (default: mkfs.xfs if this host has it)")
	comp := fs.String("compression", "gzip", "gzip or zstd")
	out := fs.String("o", "", "output `file` (e.g. ARTIFACTS/agent.cpio.gz)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: rackboot initrd -o FILE [--agent BIN] [--modules DIR] [--include m1,m2] [--tools p1,p2] [--compression gzip|zstd]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *out == "" || fs.NArg() != 0 {
		fs.Usage()
		return 2
	}
	if *agent == "" {
		a, err := findAgent(agentCandidates())
		if err != nil {
			fmt.Fprintf(stderr, "rackboot initrd: %v\n", err)
			return 1
		}
		*agent = a
	}
	if err := initrd.CheckStatic(*agent); err != nil {
		fmt.Fprintf(stderr, "rackboot initrd: %v\n", err)
		return 1
	}
	cfg := initrd.Config{Agent: *agent, ModulesDir: *modules, Compression: *comp}
	if *names != "" {
		cfg.Modules = strings.Split(*names, ",")
	}
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "tools" {
			cfg.Tools = []string{} // given, even empty: exactly these
			if *tools != "" {
				cfg.Tools = strings.Split(*tools, ",")
			}
		}
	})
	rep, err := writeAtomic(*out, func(w io.Writer) (initrd.Report, error) { return initrd.Build(w, cfg) })
	if err != nil {
		fmt.Fprintf(stderr, "rackboot initrd: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: %d files, %d modules, %d tools, %d bytes before compression\n",
		*out, rep.Files, len(rep.Modules), len(rep.Tools), rep.Bytes)
	if len(rep.Missing) > 0 {
		fmt.Fprintf(stdout, "not in this kernel (skipped): %s\n", strings.Join(rep.Missing, ", "))
	}
	if len(rep.Tools) > 0 {
		fmt.Fprintf(stdout, "tools: %s\n", strings.Join(rep.Tools, ", "))
		fmt.Fprintf(stdout, "their libraries: %s\n", strings.Join(rep.Libraries, ", "))
	}
	for _, t := range rep.MissingTools {
		fmt.Fprintf(stdout, "not on this host (skipped): %s", t)
		if t == "mkfs.xfs" {
			fmt.Fprint(stdout, "; this installer refuses layouts with filesystem xfs (install xfsprogs and build again)")
		}
		fmt.Fprintln(stdout)
	}
	return 0
}

// writeAtomic writes name through a temporary file in the same directory
// and renames it into place once complete and synced.
func writeAtomic[T any](name string, write func(io.Writer) (T, error)) (T, error) {
	var zero T
	tmp, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".*")
	if err != nil {
		return zero, err
	}
	defer os.Remove(tmp.Name())
	v, err := write(tmp)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), name)
	}
	if err != nil {
		return zero, err
	}
	return v, nil
}
