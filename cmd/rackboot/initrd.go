package main

import (
	"context"
	"encoding/json"
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
func runInitrd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("initrd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	agent := fs.String("agent", "", "the static rackboot-agent `binary` (default: rackboot-agent beside this program, else "+packagedAgent+")")
	modules := fs.String("modules", "", "the kernel's modules `directory` (lib/modules/VERSION of the unpacked kernel package); empty: no modules")
	names := fs.String("include", "", "comma-separated module `names` (default: virtio, nvme, ahci, e1000, igb, ixgbe, i40e, mlx5 …)")
	tools := fs.String("tools", "", "comma-separated `programs` of this host to carry with their libraries, names (looked up in PATH, /usr/sbin, /sbin) or absolute paths; empty: none (default: mkfs.xfs if this host has it)")
	comp := fs.String("compression", "gzip", "gzip or zstd")
	out := fs.String("o", "", "output `file` (e.g. ARTIFACTS/agent.cpio.gz)")
	asJSON := fs.Bool("json", false, "print the report as JSON (initrdReport)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: rackboot initrd -o FILE [--agent BIN] [--modules DIR] [--include m1,m2] [--tools p1,p2] [--compression gzip|zstd] [--json]")
		fs.PrintDefaults()
	}
	pos, exit, ok := parseArgs(ctx, fs, args, stdout)
	if !ok {
		return exit
	}
	if *out == "" || len(pos) != 0 {
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
	if *asJSON {
		b, err := json.MarshalIndent(newInitrdReport(*out, rep), "", "  ")
		if err == nil {
			_, err = fmt.Fprintf(stdout, "%s\n", b)
		}
		if err != nil {
			fmt.Fprintf(stderr, "rackboot initrd: %v\n", err)
			return 1
		}
		return 0
	}
	fmt.Fprint(stdout, initrdText(*out, rep))
	return 0
}

// initrdReport is what `rackboot initrd --json` prints: the facts of the
// text, with the lists whole.
type initrdReport struct {
	Output       string   `json:"output"`
	Files        int      `json:"files"`
	Bytes        int64    `json:"bytes"` // before compression
	Modules      []string `json:"modules"`
	Missing      []string `json:"missing_modules"`
	Tools        []string `json:"tools"`
	Libraries    []string `json:"libraries"`
	MissingTools []string `json:"missing_tools"`
}

func newInitrdReport(out string, rep initrd.Report) initrdReport {
	orEmpty := func(l []string) []string {
		if l == nil {
			return []string{}
		}
		return l
	}
	return initrdReport{Output: out, Files: rep.Files, Bytes: rep.Bytes, Modules: orEmpty(rep.Modules), Missing: orEmpty(rep.Missing),
		Tools: orEmpty(rep.Tools), Libraries: orEmpty(rep.Libraries), MissingTools: orEmpty(rep.MissingTools)}
}

// initrdText is the report of a build in words.
func initrdText(out string, rep initrd.Report) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d files, %d modules, %d tools, %d bytes before compression\n",
		out, rep.Files, len(rep.Modules), len(rep.Tools), rep.Bytes)
	if len(rep.Missing) > 0 {
		fmt.Fprintf(&b, "not in this kernel (skipped): %s\n", strings.Join(rep.Missing, ", "))
	}
	if len(rep.Tools) > 0 {
		fmt.Fprintf(&b, "tools: %s\n", strings.Join(rep.Tools, ", "))
		fmt.Fprintf(&b, "their libraries: %s\n", strings.Join(rep.Libraries, ", "))
	}
	for _, t := range rep.MissingTools {
		fmt.Fprintf(&b, "not on this host (skipped): %s", t)
		if t == "mkfs.xfs" {
			b.WriteString("; this installer refuses layouts with filesystem xfs (install xfsprogs and build again)")
		}
		b.WriteString("\n")
	}
	return b.String()
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
