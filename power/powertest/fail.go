package powertest

import (
	"context"
	"net"
	"sync"
	"testing"
)

// HangTCP returns the address of a TCP listener that accepts connections
// and never answers (a BMC whose web server is wedged): clients must time
// out. Everything is closed when the test ends.
func HangTCP(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

// HangUDP returns the address of a UDP socket that reads and drops every
// datagram (an IPMI BMC that never answers, or a host that is down without
// an ICMP refusal). Closed when the test ends.
func HangUDP(t testing.TB) string {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		buf := make([]byte, 2048)
		for {
			if _, _, err := c.ReadFrom(buf); err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { c.Close() })
	return c.LocalAddr().String()
}

// ClosedTCP returns a loopback TCP address nothing listens on (connection
// refused).
func ClosedTCP(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// ClosedUDP returns a loopback UDP address nothing listens on: a datagram
// sent there draws an ICMP port unreachable, which a connected UDP socket
// reads as "connection refused".
func ClosedUDP(t testing.TB) string {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := c.LocalAddr().String()
	c.Close()
	return addr
}

// ServeIPMI serves b on a fresh loopback UDP port until the test ends and
// returns its address.
func ServeIPMI(t testing.TB, b *IPMIBMC) string {
	t.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Serve(ctx, conn) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("powertest: IPMI BMC: %v", err)
		}
	})
	return conn.LocalAddr().String()
}
