package dhcp

// Tests that need root: each runs in network namespaces of its own, only
// with RACKBOOT_ROOT_TESTS=1.

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"
	"github.com/insomniacslk/dhcp/iana"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// TestServeBroadcastRoot: a client without an address, in a namespace of
// its own at the far end of a veth pair, broadcasts a DHCPDISCOVER from
// 0.0.0.0:68 to the socket of Listen; the offer must come back as a
// broadcast to port 68 through the interface the request arrived on. (With
// both ends in one namespace the kernel would give the client the server's
// address as source, so the client needs its own.)
func TestServeBroadcastRoot(t *testing.T) { inNetns(t, broadcastInNetns) }

func broadcastInNetns(t *testing.T) {
	client := fmt.Sprintf("rackboot-dhcp-client-%d", os.Getpid())
	run(t, "ip", "netns", "add", client)
	t.Cleanup(func() { exec.Command("ip", "netns", "delete", client).Run() })
	run(t, "ip", "link", "add", "rbd0", "type", "veth", "peer", "name", "rbd1", "netns", client)
	run(t, "ip", "addr", "add", "192.168.77.1/24", "dev", "rbd0")
	run(t, "ip", "link", "set", "rbd0", "up")
	run(t, "ip", "-n", client, "link", "set", "rbd1", "up")

	conn, err := Listen("rbd0", dhcpv4.ServerPort)
	if err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, &Server{Config: Config{ServerIP: net.IPv4(192, 168, 77, 1)}}, conn)

	var c net.PacketConn
	inOtherNetns(t, client, func() error {
		var err error
		c, err = server4.NewIPv4UDPConn("rbd1", &net.UDPAddr{Port: dhcpv4.ClientPort})
		return err
	})
	defer c.Close()
	send(t, c, &net.UDPAddr{IP: net.IPv4bcast, Port: dhcpv4.ServerPort},
		newRequest(t, dhcpv4.MessageTypeDiscover, knownMAC, pxeOptions(iana.INTEL_X86PC)...).ToBytes())
	resp, from := receive(t, c)
	want := offerFields{Type: "OFFER", XID: "0xdeadbeef", YIAddr: "0.0.0.0", SIAddr: "192.168.77.1", ServerID: "192.168.77.1",
		Class: "PXEClient", File: "undionly.kpxe", BootOption: "undionly.kpxe", Option43: []byte{6, 1, 8, 255}, Option97: testUUID}
	if diff := cmp.Diff(want, fieldsOf(resp)); diff != "" {
		t.Errorf("answer (-want +got):\n%s", diff)
	}
	if got := from.String(); got != "192.168.77.1:67" {
		t.Errorf("answer from %s, want 192.168.77.1:67", got)
	}
	<-ts.replies
	logs := ts.logs.Bytes()
	for _, want := range []string{`"ip":"0.0.0.0:68"`, `"dst":"255.255.255.255:68"`, `"interface":"rbd0"`} {
		if !bytes.Contains(logs, []byte(want)) {
			t.Errorf("log lacks %s:\n%s", want, logs)
		}
	}
}

// TestListenBuffersUnprivilegedRoot runs TestListenBuffers again as user
// nobody, without CAP_NET_ADMIN: SO_RCVBUFFORCE fails there, and Listen
// must fall back to SO_RCVBUF, capped at net.core.rmem_max, and succeed.
func TestListenBuffersUnprivilegedRoot(t *testing.T) {
	if os.Getenv("RACKBOOT_ROOT_TESTS") != "1" {
		t.Skip("needs root; set RACKBOOT_ROOT_TESTS=1")
	}
	// The test binary lives in a directory only root may enter: copy it
	// where nobody can run it.
	dir, err := os.MkdirTemp("", "rackboot-dhcp-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	bin, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "dhcp.test")
	if err := os.WriteFile(exe, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^TestListenBuffers$", "-test.v", "-test.count=1")
	cmd.Dir = dir
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + dir}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("as nobody: %v\n%s", err, out)
	}
	if !bytes.Contains(out, []byte("without CAP_NET_ADMIN")) || !bytes.Contains(out, []byte("--- PASS: TestListenBuffers")) {
		t.Fatalf("as nobody, TestListenBuffers did not run the unprivileged case:\n%s", out)
	}
	t.Logf("as nobody:\n%s", out)
}

// TestRAResponderRoot runs RAResponder between the two ends of a veth
// pair: a solicitation sent on one end must bring a null advertisement to
// the other.
func TestRAResponderRoot(t *testing.T) { inNetns(t, raInNetns) }

// raInNetns is TestRAResponderRoot inside the namespace.
func raInNetns(t *testing.T) {
	vethPair(t, "rbra0", "rbra1")

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- (&RAResponder{Interface: "rbra0"}).Serve(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve = %v after cancel, want nil", err)
		}
	}()

	host, err := net.InterfaceByName("rbra1")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := icmp.ListenPacket("ip6:ipv6-icmp", "::")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	p := conn.IPv6PacketConn()
	var f ipv6.ICMPFilter
	f.SetAll(true)
	f.Accept(ipv6.ICMPTypeRouterAdvertisement)
	if err := p.SetICMPFilter(&f); err != nil {
		t.Fatal(err)
	}
	if err := p.SetControlMessage(ipv6.FlagHopLimit|ipv6.FlagInterface, true); err != nil {
		t.Fatal(err)
	}
	rs := []byte{133, 0, 0, 0, 0, 0, 0, 0}
	out := &ipv6.ControlMessage{HopLimit: 255, IfIndex: host.Index}
	allRouters := &net.IPAddr{IP: net.ParseIP("ff02::2"), Zone: host.Name}

	// The responder may not have joined ff02::2 yet: solicit until it
	// answers, as hosts do.
	deadline := time.Now().Add(10 * time.Second)
	buf := make([]byte, 1500)
	for time.Now().Before(deadline) {
		if _, err := p.WriteTo(rs, out, allRouters); err != nil {
			t.Fatalf("send RS: %v", err)
		}
		if err := p.SetReadDeadline(time.Now().Add(300 * time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		n, cm, src, err := p.ReadFrom(buf)
		if err != nil {
			continue
		}
		if cm == nil || cm.IfIndex != host.Index {
			continue
		}
		if n >= 4 {
			buf[2], buf[3] = 0, 0 // the checksum, which the kernel computed
		}
		got := fmt.Sprintf("% x, hop limit %d", buf[:n], cm.HopLimit)
		want := fmt.Sprintf("% x, hop limit 255", nullRouterAdvertisement())
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("RA from %v (-want +got):\n%s", src, diff)
		}
		if ip := src.(*net.IPAddr).IP; !ip.IsLinkLocalUnicast() {
			t.Errorf("RA from %v, want a link-local source (RFC 4861 section 6.1.2)", ip)
		}
		return
	}
	t.Fatal("no router advertisement within 10 s")
}

// inNetns runs body in a network namespace of its own, created for the
// test and deleted after it: the test binary runs itself again under
// "ip netns exec", so that every goroutine and socket of body lives there.
// It needs root, and runs only with RACKBOOT_ROOT_TESTS=1. t must be a
// top-level test.
func inNetns(t *testing.T, body func(t *testing.T)) {
	t.Helper()
	if os.Getenv("RACKBOOT_ROOT_TESTS") != "1" {
		t.Skip("needs root and a network namespace; set RACKBOOT_ROOT_TESTS=1")
	}
	if os.Getenv("RACKBOOT_IN_NETNS") == t.Name() {
		body(t)
		return
	}
	ns := fmt.Sprintf("rackboot-dhcp-test-%d", os.Getpid())
	run(t, "ip", "netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "delete", ns).Run() })
	cmd := exec.Command("ip", "netns", "exec", ns, os.Args[0], "-test.run=^"+t.Name()+"$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), "RACKBOOT_IN_NETNS="+t.Name())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("in netns %s: %v\n%s", ns, err, out)
	}
	t.Logf("in netns %s:\n%s", ns, out)
}

// vethPair creates the veth pair a and b in the current namespace and
// brings both ends up. Duplicate address detection is off, so that IPv6
// link-local addresses are usable at once.
func vethPair(t *testing.T, a, b string) {
	t.Helper()
	run(t, "sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0")
	run(t, "ip", "link", "add", a, "type", "veth", "peer", "name", b)
	run(t, "ip", "link", "set", a, "up")
	run(t, "ip", "link", "set", b, "up")
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

// inOtherNetns runs f on an OS thread moved into the named namespace (see
// "ip netns"); the sockets f opens stay in it.
func inOtherNetns(t *testing.T, name string, f func() error) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		// The thread is never unlocked: it ends with the goroutine instead
		// of going back to the scheduler in the wrong namespace.
		runtime.LockOSThread()
		fd, err := unix.Open("/run/netns/"+name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- err
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", name, err)
			return
		}
		errc <- f()
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}
