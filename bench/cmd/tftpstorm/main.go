// Command tftpstorm is a TFTP boot storm: N clients, each on its own UDP
// socket (its own transfer ID), all released by one barrier, each fetching
// a file at the given blksize and checking it byte for byte (SHA-256)
// against a reference copy. It writes one result record: wall time from the
// barrier to the last completion, aggregate MB/s, failures, per-transfer
// p50 and max, and client retransmissions.
//
// With -loss, every client loses that fraction of its packets in each
// direction (see package tftpc): the kernel here has no netem.
//
//	tftpstorm -server 192.168.77.1:69 -n 200 -files ipxe.efi -blksize 1468 -ref DIR [-loss 0.01] -tag server=hpa
package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rackboot/rackboot/bench/internal/result"
	"github.com/rackboot/rackboot/bench/internal/tftpc"
)

type config struct {
	server   netip.AddrPort
	n        int
	files    []string
	ref      map[string][sha256.Size]byte
	opt      tftpc.Options
	deadline time.Duration
}

func main() {
	tags := result.Tags{}
	var (
		c          config
		server     = flag.String("server", "192.168.77.1:69", "TFTP server `ip:port`")
		files      = flag.String("files", "undionly.kpxe", "comma-separated `names`; client i fetches the (i mod n)-th")
		ref        = flag.String("ref", "", "`dir`ectory holding reference copies of the files (required: every download is verified)")
		requireAll = flag.Bool("require-all", false, "exit 1 unless every transfer completed and verified")
		seed       = flag.Uint64("seed", 1, "seed of the loss injection (client i uses seed+i)")
	)
	flag.IntVar(&c.n, "n", 50, "concurrent clients")
	flag.IntVar(&c.opt.BlockSize, "blksize", 1468, "blksize option to ask for (0: none, plain 512-byte blocks)")
	flag.Float64Var(&c.opt.Loss, "loss", 0, "fraction of packets lost in each direction, e.g. 0.01")
	flag.DurationVar(&c.opt.Timeout, "timeout", time.Second, "client retransmission timeout")
	flag.IntVar(&c.opt.Retries, "retries", 5, "timeouts in a row before a client gives up")
	flag.DurationVar(&c.deadline, "deadline", 5*time.Minute, "the whole storm's time limit")
	flag.Var(tags, "tag", "`key=value` added to the result record (repeatable)")
	flag.Parse()

	fail := func(err error) {
		fmt.Fprintf(os.Stderr, "tftpstorm: %v\n", err)
		os.Exit(2)
	}
	var err error
	if c.server, err = netip.ParseAddrPort(*server); err != nil {
		fail(fmt.Errorf("-server: %w", err))
	}
	c.files = strings.Split(*files, ",")
	if *ref == "" {
		fail(errors.New("-ref is required: unverified downloads prove nothing"))
	}
	if c.ref, err = digests(*ref, c.files); err != nil {
		fail(err)
	}
	if c.n < 1 {
		fail(errors.New("-n must be at least 1"))
	}
	c.opt.Seed = *seed

	s, err := storm(context.Background(), c)
	if err != nil {
		fail(err)
	}
	if err := result.Write(os.Stdout, result.Record{Tags: tags, Metrics: s.metrics()}); err != nil {
		fail(err)
	}
	fmt.Fprintf(os.Stderr, "tftpstorm: %s: %d ok, %d failed in %.3f s (%.1f MB/s), p50 %.3f s, max %.3f s, %d retransmits, %d dropped\n",
		tags, s.ok, len(s.errs), s.wall.Seconds(), s.mbPerS(), s.p(50).Seconds(), s.p(100).Seconds(), s.retransmits, s.dropped)
	for i, e := range s.errs {
		if i == 5 {
			fmt.Fprintf(os.Stderr, "  ... and %d more\n", len(s.errs)-5)
			break
		}
		fmt.Fprintf(os.Stderr, "  %v\n", e)
	}
	if *requireAll && (len(s.errs) > 0 || s.ok != c.n) {
		fmt.Fprintf(os.Stderr, "tftpstorm: FAIL: %d of %d transfers failed\n", c.n-s.ok, c.n)
		os.Exit(1)
	}
}

// digests reads the reference copies.
func digests(dir string, files []string) (map[string][sha256.Size]byte, error) {
	out := map[string][sha256.Size]byte{}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			return nil, fmt.Errorf("reference copy: %w", err)
		}
		out[f] = sha256.Sum256(b)
	}
	return out, nil
}

// stats is a storm's outcome.
type stats struct {
	ok                   int
	errs                 []error
	bytes                int64
	wall                 time.Duration
	durations            []time.Duration // per transfer, sorted, failures included
	retransmits, dropped int
}

func (s stats) mbPerS() float64 { return float64(s.bytes) / 1e6 / s.wall.Seconds() }

func (s stats) p(q float64) time.Duration { return result.Percentile(s.durations, q) }

func (s stats) metrics() map[string]float64 {
	return map[string]float64{
		"clients":     float64(s.ok + len(s.errs)),
		"ok":          float64(s.ok),
		"failed":      float64(len(s.errs)),
		"bytes":       float64(s.bytes),
		"wall_s":      s.wall.Seconds(),
		"mb_per_s":    s.mbPerS(),
		"p50_s":       s.p(50).Seconds(),
		"max_s":       s.p(100).Seconds(),
		"retransmits": float64(s.retransmits),
		"dropped":     float64(s.dropped),
	}
}

// storm opens every client's socket, releases them together and waits for
// all of them.
func storm(ctx context.Context, c config) (stats, error) {
	ctx, cancel := context.WithTimeout(ctx, c.deadline)
	defer cancel()
	clients := make([]*tftpc.Client, c.n)
	for i := range clients {
		opt := c.opt
		opt.Seed += uint64(i)
		cl, err := tftpc.Open(opt)
		if err != nil {
			for _, o := range clients[:i] {
				o.Close()
			}
			return stats{}, fmt.Errorf("client %d: %w (raise ulimit -n?)", i, err)
		}
		clients[i] = cl
	}
	type outcome struct {
		res tftpc.Result
		err error
		end time.Duration
	}
	outs := make([]outcome, c.n)
	release := make(chan struct{})
	var wg sync.WaitGroup
	var start time.Time
	for i, cl := range clients {
		wg.Go(func() {
			defer cl.Close()
			file := c.files[i%len(c.files)]
			<-release
			res, err := cl.Get(ctx, c.server, file)
			if err == nil && res.SHA256 != c.ref[file] {
				err = fmt.Errorf("%s: %d bytes that differ from the reference copy", file, res.Bytes)
			}
			if err != nil {
				err = fmt.Errorf("client %d: %w", i, err)
			}
			outs[i] = outcome{res, err, time.Since(start)}
		})
	}
	start = time.Now()
	close(release)
	wg.Wait()

	var s stats
	for _, o := range outs {
		s.durations = append(s.durations, o.end)
		s.wall = max(s.wall, o.end)
		s.retransmits += o.res.Retransmits
		s.dropped += o.res.Dropped
		if o.err != nil {
			s.errs = append(s.errs, o.err)
			continue
		}
		s.ok++
		s.bytes += o.res.Bytes
	}
	slices.Sort(s.durations)
	return s, nil
}
