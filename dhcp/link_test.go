package dhcp

import (
	"fmt"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

// loopbackIndex is the interface index of "lo".
func loopbackIndex(t *testing.T) int {
	t.Helper()
	ifi, err := net.InterfaceByName("lo")
	if err != nil {
		t.Skipf("no interface lo: %v", err)
	}
	return ifi.Index
}

// listenLoopback opens a UDP socket on 127.0.0.1, closed when the test
// ends.
func listenLoopback(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// plainConn hides the *net.UDPConn under it, as a test double would.
type plainConn struct{ net.PacketConn }

// TestLinkRead: datagrams queued on the socket come back in order, with
// their sender and arriving interface, several per read on Linux.
func TestLinkRead(t *testing.T) {
	lo := loopbackIndex(t)
	srv, cl := listenLoopback(t), listenLoopback(t)
	l := newLink(srv)
	if err := l.enableInterface(); err != nil {
		t.Fatal(err)
	}
	const n = 10
	for i := range n {
		if _, err := cl.WriteTo([]byte(fmt.Sprint(i)), srv.LocalAddr()); err != nil {
			t.Fatal(err)
		}
	}
	// Loopback delivers within the send; the pause only covers a
	// softirq deferred to ksoftirqd on a busy machine.
	time.Sleep(20 * time.Millisecond)

	type got struct {
		Payload, Peer string
		IfIndex       int
	}
	var all []got
	reads := 0
	for len(all) < n {
		srv.SetReadDeadline(time.Now().Add(2 * time.Second))
		ds, err := l.read()
		if err != nil {
			t.Fatalf("after %d datagrams: %v", len(all), err)
		}
		reads++
		for _, d := range ds {
			all = append(all, got{string(d.b), d.peer.String(), d.ifIndex})
		}
	}
	var want []got
	for i := range n {
		want = append(want, got{fmt.Sprint(i), cl.LocalAddr().String(), lo})
	}
	if diff := cmp.Diff(want, all); diff != "" {
		t.Errorf("datagrams (-want +got):\n%s", diff)
	}
	if runtime.GOOS == "linux" && reads == n {
		t.Errorf("%d reads for %d queued datagrams: recvmmsg took one at a time", reads, n)
	}
	t.Logf("%d datagrams in %d reads", n, reads)
}

// TestLinkWrite: a batch leaves in order; a datagram the kernel refuses
// (port 0: EINVAL) is reported and the ones after it are still sent.
func TestLinkWrite(t *testing.T) {
	lo := loopbackIndex(t)
	for _, tc := range []struct {
		name string
		conn func(*net.UDPConn) net.PacketConn
	}{
		{"udp", func(c *net.UDPConn) net.PacketConn { return c }},
		{"plain", func(c *net.UDPConn) net.PacketConn { return plainConn{c} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, cl := listenLoopback(t), listenLoopback(t)
			l := newLink(tc.conn(srv))
			if tc.name == "udp" {
				if err := l.enableInterface(); err != nil {
					t.Fatal(err)
				}
			}
			bad := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 0}
			ds := []outgoing{
				{b: []byte("a"), dst: cl.LocalAddr()},
				{b: []byte("refused"), dst: bad},
				{b: []byte("b"), ifIndex: lo, dst: cl.LocalAddr()},
				{b: []byte("c"), ifIndex: lo, dst: cl.LocalAddr()},
			}
			l.write(ds)
			var errs []bool
			for _, d := range ds {
				errs = append(errs, d.err != nil)
			}
			if diff := cmp.Diff([]bool{false, true, false, false}, errs); diff != "" {
				t.Errorf("failed sends (-want +got):\n%s\nerrors: %v", diff, ds)
			}
			var got []string
			buf := make([]byte, 100)
			for range 3 {
				cl.SetReadDeadline(time.Now().Add(2 * time.Second))
				n, from, err := cl.ReadFrom(buf)
				if err != nil {
					t.Fatalf("after %q: %v", got, err)
				}
				got = append(got, string(buf[:n]))
				if from.String() != srv.LocalAddr().String() {
					t.Errorf("datagram from %v, want %v", from, srv.LocalAddr())
				}
			}
			if diff := cmp.Diff([]string{"a", "b", "c"}, got); diff != "" {
				t.Errorf("received (-want +got):\n%s", diff)
			}
		})
	}
}

// TestServePlainConn serves a PacketConn that is not a *net.UDPConn: one
// datagram at a time, answers by routing.
func TestServePlainConn(t *testing.T) {
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, &Server{}, plainConn{conn})
	c := newClient(t)
	send(t, c, ts.addr, newRequest(t, dhcpv4.MessageTypeDiscover, knownMAC, pxeOptions(iana.INTEL_X86PC)...).ToBytes())
	resp, _ := receive(t, c)
	if got := fieldsOf(resp); got.Type != "OFFER" || got.File != "undionly.kpxe" {
		t.Errorf("answer %+v, want an OFFER of undionly.kpxe", got)
	}
	<-ts.replies
}
