package main

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rackboot/rackboot/bench/internal/tftpc"
	"github.com/rackboot/rackboot/tftp"
)

// TestStorm runs a small storm against rackboot's TFTP server on loopback:
// every transfer must verify, and a corrupted reference must fail them.
func TestStorm(t *testing.T) {
	root := t.TempDir()
	files := map[string]int{"undionly.kpxe": 74_213, "ipxe.efi": 200_000}
	for name, size := range files {
		b := make([]byte, size)
		for i := range b {
			b[i] = byte(i * 7)
		}
		if err := os.WriteFile(filepath.Join(root, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	// The storm's clients all send from 127.0.0.1, as bench/run.sh's all
	// send from the client namespace's address: no per-address cap.
	go func() {
		done <- (&tftp.Server{Root: root, Timeout: 50 * time.Millisecond, Log: slog.New(slog.DiscardHandler),
			MaxPerClient: -1}).Serve(ctx, conn)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	ref, err := digests(root, []string{"undionly.kpxe", "ipxe.efi"})
	if err != nil {
		t.Fatal(err)
	}
	c := config{
		server: conn.LocalAddr().(*net.UDPAddr).AddrPort(), n: 20, files: []string{"undionly.kpxe", "ipxe.efi"},
		ref: ref, opt: tftpc.Options{BlockSize: 1468, Timeout: 100 * time.Millisecond, Loss: 0.01}, deadline: time.Minute,
	}

	t.Run("verified", func(t *testing.T) {
		s, err := storm(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		if s.ok != 20 || len(s.errs) != 0 || s.bytes != 10*74_213+10*200_000 || s.wall <= 0 {
			t.Errorf("storm: %d ok, errors %v, %d bytes in %v; want 20 ok, no errors, every byte", s.ok, s.errs, s.bytes, s.wall)
		}
	})
	t.Run("wrong reference fails", func(t *testing.T) {
		bad := c
		bad.ref = map[string][32]byte{"undionly.kpxe": {1}, "ipxe.efi": ref["ipxe.efi"]}
		s, err := storm(ctx, bad)
		if err != nil {
			t.Fatal(err)
		}
		if s.ok != 10 || len(s.errs) != 10 {
			t.Errorf("storm with a wrong digest: %d ok, %d errors; want 10 and 10", s.ok, len(s.errs))
		}
	})
}
