package prof

import (
	"context"
	"crypto/sha256"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/rackboot/rackboot/bench/internal/tftpc"
	"github.com/rackboot/rackboot/tftp"
)

// Sizes of Debian's ipxe.efi and undionly.kpxe, the files of P2's storms.
const (
	ipxeEFISize  = 850_528
	undionlySize = 74_213
)

// stormClients is the storm's size: 50 by default as in the README's
// profiles; -tftp.clients 200 for the larger storm of P2.
var stormClients = flag.Int("tftp.clients", 50, "concurrent clients of the TFTP storm benchmarks")

// tftpRoot writes a random file of the given size as "ipxe.efi" and
// returns the directory and the file's digest. It waits until the file is
// old enough for the server to keep it in memory (tftp.Server.CacheSize).
func tftpRoot(b *testing.B, size int) (string, [sha256.Size]byte) {
	b.Helper()
	dir := b.TempDir()
	data := make([]byte, size)
	rng := rand.New(rand.NewPCG(5, 6))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	if err := os.WriteFile(filepath.Join(dir, "ipxe.efi"), data, 0o644); err != nil {
		b.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond)
	return dir, sha256.Sum256(data)
}

// serveTFTP runs rackboot's TFTP server, srv with root and a silent log,
// until the benchmark ends.
func serveTFTP(b *testing.B, root string, srv *tftp.Server) netip.AddrPort {
	b.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	srv.Root, srv.Log = root, slog.New(slog.DiscardHandler)
	// Every client of the storm is 127.0.0.1: no per-address cap.
	srv.MaxPerClient = -1
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, conn) }()
	b.Cleanup(func() {
		cancel()
		<-done
	})
	return conn.LocalAddr().(*net.UDPAddr).AddrPort()
}

// storm runs n concurrent verified downloads of ipxe.efi.
func storm(b *testing.B, server netip.AddrPort, sum [sha256.Size]byte, n int, opt tftpc.Options, seed uint64) {
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			o := opt
			o.Seed = seed*1000 + uint64(i)
			c, err := tftpc.Open(o)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			res, err := c.Get(context.Background(), server, "ipxe.efi")
			if err == nil && res.SHA256 != sum {
				err = fmt.Errorf("client %d: wrong bytes", i)
			}
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}

// BenchmarkTFTPStorm is P2 in one process: 50 clients (-tftp.clients) fetch
// a file at blksize 1468 from rackboot's server over loopback, served from
// memory (the default) and from disk (CacheSize -1). The CPU profile shows
// the cost per block (pin/tftp's sender, syscalls, file reads).
func BenchmarkTFTPStorm(b *testing.B) {
	for _, f := range []struct {
		name string
		size int
	}{{"ipxe.efi", ipxeEFISize}, {"undionly.kpxe", undionlySize}} {
		root, sum := tftpRoot(b, f.size)
		for _, from := range []struct {
			name  string
			cache int64
		}{{"memory", 0}, {"disk", -1}} {
			b.Run(f.name+"/"+from.name, func(b *testing.B) {
				server := serveTFTP(b, root, &tftp.Server{CacheSize: from.cache})
				b.SetBytes(int64(*stormClients * f.size))
				b.ReportAllocs()
				for b.Loop() {
					storm(b, server, sum, *stormClients, tftpc.Options{BlockSize: 1468}, 1)
				}
			})
		}
	}
}

// BenchmarkTFTPLoss is the lossy storm (1 % of packets lost each way, 20
// clients or -tftp.clients) at several server retransmission schedules:
// recovery from a lost packet is the server's timeout (pin/tftp ignores
// duplicate ACKs, RFC 1123 4.2.3.1 forbids answering them), so the timeout
// sets the lossy time. "fixed-1s" was the default before the doubling
// schedule (50 ms doubling up to 1 s, "default").
func BenchmarkTFTPLoss(b *testing.B) {
	root, sum := tftpRoot(b, ipxeEFISize)
	clients := 20
	if flagSet("tftp.clients") {
		clients = *stormClients
	}
	for _, sch := range []struct {
		name       string
		first, max time.Duration
	}{
		{"fixed-1s", time.Second, time.Second},
		{"fixed-50ms", 50 * time.Millisecond, 50 * time.Millisecond},
		{"default", 0, 0},
	} {
		b.Run(sch.name, func(b *testing.B) {
			server := serveTFTP(b, root, &tftp.Server{Timeout: sch.first, MaxTimeout: sch.max})
			var seed uint64
			for b.Loop() {
				seed++
				// The client's own timeout stays at 1 s, like a ROM's:
				// only the server's changes.
				storm(b, server, sum, clients, tftpc.Options{BlockSize: 1468, Loss: 0.01, Timeout: time.Second, Retries: 8}, seed)
			}
		})
	}
}

// flagSet reports whether the named flag was given on the command line.
func flagSet(name string) bool {
	var set bool
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
