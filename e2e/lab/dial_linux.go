package lab

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// HTTPClient returns an HTTP client whose connections are made from inside
// namespace ns (one of Srv, Site, Cli), so a test in the root namespace can
// call a server's API on the lab segment without a curl in between.
func (n *Net) HTTPClient(ns string) *http.Client {
	return &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{DialContext: dialIn(ns), DisableKeepAlives: true},
	}
}

// dialIn dials from a goroutine locked to an OS thread that enters the
// namespace for the dial: a socket stays in the namespace it was created
// in, whichever thread uses it afterwards. A literal IP address dials
// serially on that goroutine (no Happy Eyeballs goroutines, no resolver).
func dialIn(ns string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		return onThreadIn(ns, func() (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		})
	}
}

// DialContext returns a dial function whose sockets are made inside
// namespace ns, for tests that hold many raw connections (a flood) rather
// than make HTTP requests.
func (n *Net) DialContext(ns string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return dialIn(ns)
}

// ListenPacket opens a UDP socket inside namespace ns, bound to addr
// ("ip:port", port 0 for any), the way DialContext opens TCP ones.
func (n *Net) ListenPacket(ns, network, addr string) (net.PacketConn, error) {
	return onThreadIn(ns, func() (net.PacketConn, error) { return net.ListenPacket(network, addr) })
}

// onThreadIn runs fn, which makes a socket, on a new goroutine locked to
// an OS thread that is inside namespace ns while fn runs. The thread is
// unlocked once back in its own namespace; if it cannot go back it stays
// locked and ends with its goroutine, never reused elsewhere.
func onThreadIn[T any](ns string, fn func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		var v T
		restored, err := inNamespace(ns, func() (err error) {
			v, err = fn()
			return err
		})
		if restored {
			runtime.UnlockOSThread()
		}
		ch <- result{v, err}
	}()
	r := <-ch
	return r.v, r.err
}

// inNamespace runs fn on the calling goroutine's thread, which must be
// locked, inside namespace ns, and moves the thread back. It reports
// whether the thread is back in its own namespace: when not, the caller
// must leave it locked so that the thread ends with its goroutine.
func inNamespace(ns string, fn func() error) (restored bool, err error) {
	self, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		return true, fmt.Errorf("lab: %w", err)
	}
	defer self.Close()
	target, err := os.Open(filepath.Join("/run/netns", ns))
	if err != nil {
		return true, fmt.Errorf("lab: namespace %s: %w", ns, err)
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		return true, fmt.Errorf("lab: entering namespace %s: %w", ns, err)
	}
	err = fn()
	restored = unix.Setns(int(self.Fd()), unix.CLONE_NEWNET) == nil
	return restored, err
}

// Listen opens a listening socket inside namespace ns, bound to addr
// ("127.0.0.1:0" for a free port on that namespace's loopback), so a test
// can serve a double (a Redfish BMC) that a server in ns reaches; the
// listener is used from any goroutine, as ListenPacket's sockets are.
func (n *Net) Listen(ns, network, addr string) (net.Listener, error) {
	return onThreadIn(ns, func() (net.Listener, error) { return net.Listen(network, addr) })
}
