// Command chunkbench is rackboot's side of P9 (issue 14): chunked images
// against casync on the same v1 → v2 pair, and a fresh install from chunks
// against today's zstd stream. Each subcommand does one step, so that
// bench/run.sh can interleave them with casync's and time both alike:
//
//	chunkbench mkpair -size-mib 64 v1.img v2.img            # a synthetic pair (smoke.sh)
//	chunkbench import -store DIR -index v2.idx v2.img        # chunkstore.Import
//	chunkbench serve -dir DIR -ready FILE                    # HTTP that counts what it sends
//	chunkbench assemble -index URL [-seed URL] -store URL -target FILE [-size N]
//	chunkbench stream -url URL -sha256 HEX -target FILE [-direct]
//
// import, assemble and stream write one result record (bench/internal/
// result) on stdout: what the imaging package reports and how long it
// took. serve runs until SIGTERM or SIGINT, then prints "REQUESTS BYTES":
// the requests it answered and the body bytes it sent, which is how the
// bench counts what each tool fetched, with the same server for both.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/rackboot/rackboot/bench/internal/result"
)

const usage = "usage: chunkbench mkpair|import|serve|assemble|stream [flags] (see -h of each)"

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "chunkbench: %v\n", err)
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
	st := &step{tags: result.Tags{}, out: os.Stdout}
	fs.Var(st.tags, "tag", "`key=value` tag of the record (repeatable)")
	fs.StringVar(&st.cpuprofile, "cpuprofile", "", "write a CPU profile of the step to `file`")
	defer st.stopProfile()
	switch cmd {
	case "mkpair":
		return mkpair(fs, args)
	case "import":
		return importImage(ctx, fs, args, st)
	case "serve":
		return serve(ctx, fs, args)
	case "assemble":
		return assemble(ctx, fs, args, st)
	case "stream":
		return stream(ctx, fs, args, st)
	}
	return fmt.Errorf("unknown subcommand %q\n%s", cmd, usage)
}

// step is what every subcommand shares: the record's tags and the
// profile.
type step struct {
	tags       result.Tags
	out        io.Writer // where the record goes
	cpuprofile string
	profiling  bool
}

// startProfile starts the -cpuprofile, if any, once the flags are parsed,
// so the profile holds the measured work only.
func (s *step) startProfile() error {
	if s.cpuprofile == "" {
		return nil
	}
	f, err := os.Create(s.cpuprofile)
	if err != nil {
		return err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		return err
	}
	s.profiling = true
	return nil
}

func (s *step) stopProfile() {
	if s.profiling {
		pprof.StopCPUProfile()
	}
}

// write prints one result record.
func (s *step) write(m map[string]float64) error {
	return result.Write(s.out, result.Record{Tags: s.tags, Metrics: m})
}
