package lab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// Addresses of the lab segment. They exist only inside the namespaces, so
// parallel labs reuse them without colliding.
const (
	Bridge    = "br0"          // bridge in the server namespace; servers listen on it
	ServerIP  = "192.168.77.1" // Bridge's address: the appliance under test
	SiteIP    = "192.168.77.2" // the site's plain DHCP server
	ClientIP  = "192.168.77.3" // protocol clients (curl, atftp, perfdhcp)
	PrefixLen = 24

	SiteLink   = "vsite0" // the site namespace's end of its veth
	ClientLink = "vcli0"  // the client namespace's end of its veth
)

// DefaultPrefix starts the names of the lab's namespaces when
// NetConfig.Prefix is empty.
const DefaultPrefix = "rbe2e"

// NetConfig configures NewNet. The zero value is ready to use.
type NetConfig struct {
	// Prefix starts every namespace name; DefaultPrefix when empty. Names
	// are PREFIX-PID-RANDOM-ROLE so that parallel runs never collide and
	// Sweep can tell a dead run's namespaces from a live one's.
	Prefix string
}

// Net is the lab network: three namespaces on one bridge, and the hosts
// AddHost adds to it.
//
//	Srv:  Bridge (ServerIP/24), one tap per VM, the server under test, QEMU
//	Site: SiteLink (SiteIP/24), the site's plain DHCP server (no PXE)
//	Cli:  ClientLink (ClientIP/24), protocol clients
//	each host: HostLink (its own address), a second appliance, an etcd member
//
// Close is idempotent and safe to call from a signal handler's goroutine
// while other goroutines use the Net.
type Net struct {
	Srv, Site, Cli string // namespace names

	base   string // PREFIX-PID-RANDOM, the start of every namespace name
	mu     sync.Mutex
	hosts  []string // namespaces of AddHost
	taps   int
	procs  []*Process
	closed bool
	once   sync.Once
	err    error
}

// NewNet creates the namespaces, the bridge and the veths. On error nothing
// is left behind.
func NewNet(ctx context.Context, cfg NetConfig) (*Net, error) {
	prefix := cfg.Prefix
	if prefix == "" {
		prefix = DefaultPrefix
	}
	var b [2]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("lab: namespace suffix: %w", err)
	}
	base := fmt.Sprintf("%s-%d-%s", prefix, os.Getpid(), hex.EncodeToString(b[:]))
	n := &Net{Srv: base + "-srv", Site: base + "-site", Cli: base + "-cli", base: base}
	if err := n.create(ctx); err != nil {
		return nil, errors.Join(err, n.Close())
	}
	return n, nil
}

func (n *Net) create(ctx context.Context) error {
	srv, site, cli := []string{"-n", n.Srv}, []string{"-n", n.Site}, []string{"-n", n.Cli}
	steps := [][]string{
		{"netns", "add", n.Srv},
		{"netns", "add", n.Site},
		{"netns", "add", n.Cli},
		// STP off and no forwarding delay: a new port (a VM's tap) must
		// forward at once, or the firmware's first DISCOVERs are lost.
		cat(srv, "link", "add", Bridge, "type", "bridge", "stp_state", "0", "forward_delay", "0"),
		cat(srv, "addr", "add", ServerIP+"/24", "dev", Bridge),
		cat(srv, "link", "add", "vsite-br", "type", "veth", "peer", "name", SiteLink, "netns", n.Site),
		cat(srv, "link", "set", "vsite-br", "master", Bridge, "up"),
		cat(srv, "link", "add", "vcli-br", "type", "veth", "peer", "name", ClientLink, "netns", n.Cli),
		cat(srv, "link", "set", "vcli-br", "master", Bridge, "up"),
		cat(srv, "link", "set", "lo", "up"),
		cat(srv, "link", "set", Bridge, "up"),
		cat(site, "link", "set", "lo", "up"),
		cat(site, "addr", "add", SiteIP+"/24", "dev", SiteLink),
		cat(site, "link", "set", SiteLink, "up"),
		cat(cli, "link", "set", "lo", "up"),
		cat(cli, "addr", "add", ClientIP+"/24", "dev", ClientLink),
		cat(cli, "link", "set", ClientLink, "up"),
	}
	for _, args := range steps {
		if err := ip(ctx, args...); err != nil {
			return err
		}
	}
	// A real appliance's interface has been up for long; here the bridge's
	// IPv6 link-local address is still tentative (duplicate address
	// detection, about 1 s), and a server that sends router advertisements
	// cannot bind it yet. Wait for DAD so the server starts as it would in
	// a rack.
	return waitDAD(ctx, n.Srv, Bridge, 5*time.Second)
}

// waitDAD waits until dev in namespace ns has no tentative IPv6 address.
func waitDAD(ctx context.Context, ns, dev string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		out, err := exec.CommandContext(ctx, "ip", "-n", ns, "-6", "addr", "show", "dev", dev, "tentative").CombinedOutput()
		if err != nil {
			return fmt.Errorf("lab: ip -6 addr show: %w: %s", err, bytesTrim(out))
		}
		if len(bytesTrim(out)) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("lab: %s in %s still has tentative IPv6 addresses after %v", dev, ns, limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// AddTap creates a new tap interface in the server namespace, attached to
// the bridge and up, and returns its name. Each VM needs its own.
func (n *Net) AddTap(ctx context.Context) (string, error) {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return "", errors.New("lab: net is closed")
	}
	name := fmt.Sprintf("tap%d", n.taps)
	n.taps++
	n.mu.Unlock()
	if err := ip(ctx, "-n", n.Srv, "tuntap", "add", "dev", name, "mode", "tap"); err != nil {
		return "", err
	}
	if err := ip(ctx, "-n", n.Srv, "link", "set", name, "master", Bridge, "up"); err != nil {
		return "", errors.Join(err, n.RemoveTap(name))
	}
	return name, nil
}

// RemoveTap deletes a tap made by AddTap. Deleting the namespace removes
// the remaining ones anyway.
func (n *Net) RemoveTap(name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return ip(ctx, "-n", n.Srv, "link", "del", name)
}

// Command returns a command that runs name inside namespace ns (one of Srv,
// Site, Cli). The command gets SIGKILL if the calling process dies, so a
// killed test leaves no VM running. Start it with Net.Start to have Close
// stop it.
func (n *Net) Command(ns, name string, arg ...string) *exec.Cmd {
	cmd := exec.Command("ip", cat([]string{"netns", "exec", ns, name}, arg...)...)
	cmd.SysProcAttr = deathSignal()
	return cmd
}

// Start starts cmd and tracks it: Close stops it before removing the
// namespaces.
func (n *Net) Start(cmd *exec.Cmd) (*Process, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, errors.New("lab: net is closed")
	}
	p, err := startProcess(cmd)
	if err != nil {
		return nil, err
	}
	n.procs = append(n.procs, p)
	return p, nil
}

// Close stops the processes started with Start, kills whatever else still
// runs in the namespaces (only this lab's own children can be there), and
// deletes the namespaces with their interfaces. It is idempotent; later
// calls wait for the first and return its result.
func (n *Net) Close() error {
	n.once.Do(func() {
		n.mu.Lock()
		n.closed = true
		procs := n.procs
		hosts := n.hosts
		n.mu.Unlock()
		var errs []error
		for _, p := range procs {
			p.Stop()
		}
		// The hosts first: their veths are ports of the server
		// namespace's bridge.
		for _, ns := range append(append([]string(nil), hosts...), n.Srv, n.Site, n.Cli) {
			if ns == "" {
				continue
			}
			if err := removeNamespace(ns); err != nil {
				errs = append(errs, err)
			}
		}
		n.err = errors.Join(errs...)
	})
	return n.err
}

// removeNamespace kills the processes left in ns and deletes it. A missing
// namespace is not an error: Close may run after a partial NewNet.
func removeNamespace(ns string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if !namespaceExists(ns) {
		return nil
	}
	killNamespace(ctx, ns)
	// Deleting the namespace also deletes the interfaces in it: the bridge,
	// taps and the veths (and with them their peers in the other
	// namespaces).
	return ip(ctx, "netns", "del", ns)
}

// killNamespace sends SIGKILL to every process in ns, by pid, and waits
// briefly for them to go.
func killNamespace(ctx context.Context, ns string) {
	for range 50 {
		pids := namespacePids(ctx, ns)
		if len(pids) == 0 {
			return
		}
		for _, pid := range pids {
			if p, err := os.FindProcess(pid); err == nil {
				_ = p.Signal(sigKill)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func namespaceExists(ns string) bool {
	_, err := os.Stat("/run/netns/" + ns)
	return err == nil
}

func namespacePids(ctx context.Context, ns string) []int {
	out, err := exec.CommandContext(ctx, "ip", "netns", "pids", ns).Output()
	if err != nil {
		return nil
	}
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		var pid int
		if _, err := fmt.Sscan(f, &pid); err == nil && pid > 1 && pid != os.Getpid() {
			pids = append(pids, pid)
		}
	}
	return pids
}

// ip runs the ip(8) command; its error carries ip's own message.
func ip(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("lab: ip %s: %w: %s", strings.Join(args, " "), err, bytesTrim(out))
	}
	return nil
}

func cat(a []string, b ...string) []string {
	return append(append([]string(nil), a...), b...)
}

func bytesTrim(b []byte) string { return strings.TrimSpace(string(b)) }
