package tftpc

import (
	"context"
	"crypto/sha256"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rackboot/rackboot/tftp"
)

// serve runs rackboot's TFTP server over a directory of files on
// 127.0.0.1:0 until the test ends.
func serve(t *testing.T, timeout time.Duration, files map[string]int) (netip.AddrPort, map[string][sha256.Size]byte) {
	t.Helper()
	root := t.TempDir()
	sums := map[string][sha256.Size]byte{}
	rng := rand.New(rand.NewPCG(3, 4))
	for name, size := range files {
		b := make([]byte, size)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		if err := os.WriteFile(filepath.Join(root, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
		sums[name] = sha256.Sum256(b)
	}
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	srv := &tftp.Server{Root: root, Timeout: timeout, Log: slog.New(slog.DiscardHandler)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, conn) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return conn.LocalAddr().(*net.UDPAddr).AddrPort(), sums
}

func TestGet(t *testing.T) {
	files := map[string]int{"undionly.kpxe": 74_213, "one-block": 1468, "empty": 0, "small": 100}
	server, sums := serve(t, 50*time.Millisecond, files)
	tests := []struct {
		name      string
		file      string
		opt       Options
		wantBlock int
	}{
		{"blksize 1468", "undionly.kpxe", Options{BlockSize: 1468}, 1468},
		{"blksize 512 by default", "undionly.kpxe", Options{}, 512},
		{"exact block ends with an empty block", "one-block", Options{BlockSize: 1468}, 1468},
		{"empty file", "empty", Options{BlockSize: 1468}, 1468},
		{"short file", "small", Options{BlockSize: 1468}, 1468},
		{"5% loss each way", "undionly.kpxe", Options{BlockSize: 1468, Loss: 0.05, Seed: 1, Timeout: 100 * time.Millisecond, Retries: 10}, 1468},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Open(tt.opt)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			res, err := c.Get(ctx, server, tt.file)
			if err != nil {
				t.Fatal(err)
			}
			type got struct {
				Bytes     int64
				SHA256    [sha256.Size]byte
				BlockSize int
			}
			want := got{int64(files[tt.file]), sums[tt.file], tt.wantBlock}
			if diff := cmp.Diff(want, got{res.Bytes, res.SHA256, res.BlockSize}); diff != "" {
				t.Errorf("download (-want +got):\n%s", diff)
			}
			if tt.opt.Loss > 0 && res.Dropped == 0 {
				t.Errorf("5%% loss dropped nothing: %+v", res)
			}
		})
	}
}

func TestGetMissing(t *testing.T) {
	server, _ := serve(t, 50*time.Millisecond, map[string]int{"present": 10})
	c, err := Open(Options{BlockSize: 1468})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Get(context.Background(), server, "absent"); !errors.Is(err, ErrServer) {
		t.Errorf("Get(absent) = %v, want ErrServer", err)
	}
}

func TestGetSilentServer(t *testing.T) {
	silent, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	c, err := Open(Options{Timeout: 20 * time.Millisecond, Retries: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	res, err := c.Get(context.Background(), silent.LocalAddr().(*net.UDPAddr).AddrPort(), "x")
	if err == nil || res.Retransmits != 2 {
		t.Errorf("Get from a silent server = %+v, %v; want an error after 2 retransmits", res, err)
	}
}
