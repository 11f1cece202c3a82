package prof

import (
	"context"
	"crypto/sha256"
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

// tftpRoot writes a random file of the given size as "ipxe.efi" and
// returns the directory and the file's digest.
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
	return dir, sha256.Sum256(data)
}

// serveTFTP runs rackboot's TFTP server until the benchmark ends.
func serveTFTP(b *testing.B, root string, timeout time.Duration) netip.AddrPort {
	b.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	srv := &tftp.Server{Root: root, Timeout: timeout, Log: slog.New(slog.DiscardHandler)}
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

// BenchmarkTFTPStorm is P2 in one process: 50 clients fetch a file at
// blksize 1468 from rackboot's server over loopback. The CPU profile shows
// the cost per block (pin/tftp's sender, syscalls, os.File reads).
func BenchmarkTFTPStorm(b *testing.B) {
	for _, f := range []struct {
		name string
		size int
	}{{"ipxe.efi", ipxeEFISize}, {"undionly.kpxe", undionlySize}} {
		b.Run(f.name, func(b *testing.B) {
			root, sum := tftpRoot(b, f.size)
			server := serveTFTP(b, root, time.Second)
			b.SetBytes(int64(50 * f.size))
			b.ReportAllocs()
			for b.Loop() {
				storm(b, server, sum, 50, tftpc.Options{BlockSize: 1468}, 1)
			}
		})
	}
}

// BenchmarkTFTPLoss is the lossy storm (1 % of packets lost each way) at
// several server retransmission timeouts: recovery from a lost packet is
// the server's timeout (pin/tftp ignores duplicate ACKs, RFC 1123 4.2.3.1
// forbids answering them), so the timeout sets the lossy time.
func BenchmarkTFTPLoss(b *testing.B) {
	root, sum := tftpRoot(b, ipxeEFISize)
	for _, timeout := range []time.Duration{time.Second, 200 * time.Millisecond, 50 * time.Millisecond, 20 * time.Millisecond} {
		b.Run("server-timeout-"+timeout.String(), func(b *testing.B) {
			server := serveTFTP(b, root, timeout)
			var seed uint64
			for b.Loop() {
				seed++
				// The client's own timeout stays at 1 s, like a ROM's:
				// only the server's changes.
				storm(b, server, sum, 20, tftpc.Options{BlockSize: 1468, Loss: 0.01, Timeout: time.Second, Retries: 8}, seed)
			}
		})
	}
}
