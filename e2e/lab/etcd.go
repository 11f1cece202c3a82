package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// EtcdConfig configures Net.StartEtcd. Dir is required; the zero value of
// the others means the defaults named on each field.
type EtcdConfig struct {
	// Dir receives each member's data directory (NAME.data) and log
	// (NAME.log).
	Dir string
	// Members is the cluster's size; 3 when zero.
	Members int
	// FirstIP is the last byte of the first member's address on the
	// lab's segment, the next ones following it; 31 when zero
	// (192.168.77.31–33: outside the site DHCP server's pool and the
	// addresses the suite gives machines).
	FirstIP int
}

// The etcd ports, etcd's own defaults (IANA-assigned).
const (
	EtcdClientPort = 2379
	EtcdPeerPort   = 2380
)

// etcdReady bounds a start or restart: etcd needs an election (a second or
// two) before it serves, more on a host busy with QEMU machines.
const etcdReady = 60 * time.Second

// Etcd is a cluster of Debian's etcd (package etcd-server, 3.4), each
// member in a host of its own on the lab's segment (etcd1…), so that a
// member can be killed like a machine that loses power while the others
// go on. Members and clients talk plain HTTP: the lab's segment exists
// only in the namespaces, and what the tests exercise is the store's
// behaviour when members die, not its transport security.
//
// Its methods are safe for concurrent use.
type Etcd struct {
	net     *Net
	dir     string
	token   string
	members []*EtcdMember
}

// EtcdMember is one member of an Etcd cluster.
type EtcdMember struct {
	Name string // etcd1…, also its host's role
	Host Host

	mu   sync.Mutex
	proc *Process
}

// StartEtcd starts a cluster of cfg.Members etcd processes, each in its
// own host (AddHost), and waits until every member is healthy and one
// leads. Close (or the Net's Close) ends it.
//
// Each member runs with --pre-vote (a member cut off and back does not
// disrupt the leader with a higher term), periodic compaction keeping an
// hour of revisions, and a heartbeat of 200 ms with an election timeout of
// 2 s, twice etcd's defaults: the lab's host runs QEMU machines under TCG
// on two cores, and a member starved for a second must not depose a live
// leader. A killed leader is replaced about 2–3 s later.
func (n *Net) StartEtcd(ctx context.Context, cfg EtcdConfig) (*Etcd, error) {
	if cfg.Dir == "" {
		return nil, errors.New("lab: EtcdConfig needs Dir")
	}
	if _, err := exec.LookPath("etcd"); err != nil {
		return nil, errors.New("lab: command etcd missing (package etcd-server)")
	}
	if _, err := exec.LookPath("etcdctl"); err != nil {
		return nil, errors.New("lab: command etcdctl missing (package etcd-client)")
	}
	if cfg.Members == 0 {
		cfg.Members = 3
	}
	if cfg.FirstIP == 0 {
		cfg.FirstIP = 31
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("lab: etcd: %w", err)
	}
	e := &Etcd{net: n, dir: cfg.Dir, token: n.base}
	for i := range cfg.Members {
		name := fmt.Sprintf("etcd%d", i+1)
		h, err := n.AddHost(ctx, name, fmt.Sprintf("192.168.77.%d", cfg.FirstIP+i))
		if err != nil {
			return nil, err
		}
		e.members = append(e.members, &EtcdMember{Name: name, Host: h})
	}
	for _, m := range e.members {
		if err := e.start(m); err != nil {
			return nil, errors.Join(err, e.Close())
		}
	}
	if err := e.WaitHealthy(ctx, etcdReady); err != nil {
		return nil, errors.Join(err, e.Close())
	}
	return e, nil
}

// Members returns the cluster's members, in the order of their addresses.
func (e *Etcd) Members() []*EtcdMember { return append([]*EtcdMember(nil), e.members...) }

// Endpoints are the members' client URLs.
func (e *Etcd) Endpoints() []string {
	var urls []string
	for _, m := range e.members {
		urls = append(urls, m.ClientURL())
	}
	return urls
}

// StoreURL is the cluster as rackboot's --store names it:
// etcd://H1:2379,H2:2379,H3:2379.
func (e *Etcd) StoreURL() string {
	var hosts []string
	for _, m := range e.members {
		hosts = append(hosts, fmt.Sprintf("%s:%d", m.Host.IP, EtcdClientPort))
	}
	return "etcd://" + strings.Join(hosts, ",")
}

// ClientURL is where clients reach the member.
func (m *EtcdMember) ClientURL() string {
	return fmt.Sprintf("http://%s:%d", m.Host.IP, EtcdClientPort)
}

func (m *EtcdMember) peerURL() string { return fmt.Sprintf("http://%s:%d", m.Host.IP, EtcdPeerPort) }

// Log is the member's log file: every run of it, appended.
func (e *Etcd) Log(m *EtcdMember) string { return filepath.Join(e.dir, m.Name+".log") }

// Running reports whether the member's process runs.
func (m *EtcdMember) Running() bool {
	m.mu.Lock()
	p := m.proc
	m.mu.Unlock()
	if p == nil {
		return false
	}
	select {
	case <-p.Done():
		return false
	default:
		return true
	}
}

// start runs m's etcd. The data directory decides whether it joins the
// cluster anew (--initial-cluster-state new is ignored when it holds a
// member already) or comes back as the member it was.
func (e *Etcd) start(m *EtcdMember) error {
	var initial []string
	for _, o := range e.members {
		initial = append(initial, o.Name+"="+o.peerURL())
	}
	logf, err := os.OpenFile(e.Log(m), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("lab: etcd: %w", err)
	}
	defer logf.Close() // the child holds its own descriptor
	cmd := e.net.Command(m.Host.NS, "etcd",
		"--name", m.Name,
		"--data-dir", filepath.Join(e.dir, m.Name+".data"),
		"--listen-peer-urls", m.peerURL(),
		"--initial-advertise-peer-urls", m.peerURL(),
		"--listen-client-urls", m.ClientURL(),
		"--advertise-client-urls", m.ClientURL(),
		"--initial-cluster", strings.Join(initial, ","),
		"--initial-cluster-state", "new",
		"--initial-cluster-token", e.token,
		"--pre-vote=true",
		"--auto-compaction-mode", "periodic",
		"--auto-compaction-retention", "1h",
		"--heartbeat-interval", "200",
		"--election-timeout", "2000",
		"--logger", "zap",
		"--log-outputs", "stderr")
	cmd.Stdout, cmd.Stderr = logf, logf
	p, err := e.net.Start(cmd)
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.proc = p
	m.mu.Unlock()
	return nil
}

// Kill ends the member with SIGKILL, as a power cut would, and waits for
// its process to be gone.
func (e *Etcd) Kill(m *EtcdMember) {
	m.mu.Lock()
	p := m.proc
	m.mu.Unlock()
	if p != nil {
		p.Kill()
	}
}

// Restart starts a member that Kill ended, with its data, and waits until
// every running member is healthy again.
func (e *Etcd) Restart(ctx context.Context, m *EtcdMember) error {
	if m.Running() {
		return fmt.Errorf("lab: etcd: %s is running", m.Name)
	}
	if err := e.start(m); err != nil {
		return err
	}
	return e.WaitHealthy(ctx, etcdReady)
}

// EtcdStatus is what `etcdctl endpoint status` says of one member.
type EtcdStatus struct {
	Member   *EtcdMember
	ID       uint64 // the member's ID
	Leader   uint64 // the ID of the member it believes leads; 0: none
	RaftTerm uint64
	Revision int64
	Version  string
}

// IsLeader reports whether the member says it leads.
func (s EtcdStatus) IsLeader() bool { return s.ID != 0 && s.ID == s.Leader }

// Status asks every running member for its status (etcdctl endpoint
// status, from the client namespace). A member that is down or does not
// answer is missing from the result, and named in the error when none
// answered.
func (e *Etcd) Status(ctx context.Context) ([]EtcdStatus, error) {
	var running []*EtcdMember
	for _, m := range e.members {
		if m.Running() {
			running = append(running, m)
		}
	}
	if len(running) == 0 {
		return nil, errors.New("lab: etcd: no member runs")
	}
	var urls []string
	for _, m := range running {
		urls = append(urls, m.ClientURL())
	}
	// etcdctl prints the members that answered and exits 1 when any
	// did not: its output is read either way.
	var stderr strings.Builder
	cmd := e.etcdctl(ctx, urls, "endpoint", "status", "-w", "json")
	cmd.Stderr = &stderr
	out, runErr := cmd.Output()
	var raw []struct {
		Endpoint string
		Status   struct {
			Header struct {
				MemberID uint64 `json:"member_id"`
				Revision int64  `json:"revision"`
			} `json:"header"`
			Version  string `json:"version"`
			Leader   uint64 `json:"leader"`
			RaftTerm uint64 `json:"raftTerm"`
		}
	}
	if len(strings.TrimSpace(string(out))) > 0 {
		if err := json.Unmarshal(out, &raw); err != nil {
			return nil, fmt.Errorf("lab: etcdctl endpoint status printed %q: %w", bytesTrim(out), err)
		}
	}
	var st []EtcdStatus
	for _, r := range raw {
		for _, m := range running {
			if m.ClientURL() == r.Endpoint {
				st = append(st, EtcdStatus{Member: m, ID: r.Status.Header.MemberID, Leader: r.Status.Leader,
					RaftTerm: r.Status.RaftTerm, Revision: r.Status.Header.Revision, Version: r.Status.Version})
			}
		}
	}
	if len(st) == 0 {
		return nil, fmt.Errorf("lab: etcdctl endpoint status: %v: %s", runErr, strings.TrimSpace(stderr.String()))
	}
	return st, nil
}

// Leader returns the member that leads, as the members that answer agree.
func (e *Etcd) Leader(ctx context.Context) (*EtcdMember, error) {
	st, err := e.Status(ctx)
	if err != nil {
		return nil, err
	}
	for _, s := range st {
		if s.IsLeader() {
			return s.Member, nil
		}
	}
	return nil, fmt.Errorf("lab: etcd: no member leads: %+v", st)
}

// WaitHealthy waits until every running member answers, all of them name
// the same leader, and that leader is one of them.
func (e *Etcd) WaitHealthy(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := e.healthy(ctx)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("lab: etcd not healthy after %v: %w", timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func (e *Etcd) healthy(ctx context.Context) error {
	running := 0
	for _, m := range e.members {
		if m.Running() {
			running++
		}
	}
	st, err := e.Status(ctx)
	if err != nil {
		return err
	}
	if len(st) != running {
		return fmt.Errorf("%d of %d running members answer", len(st), running)
	}
	leader := st[0].Leader
	var leads bool
	for _, s := range st {
		if s.Leader == 0 || s.Leader != leader {
			return fmt.Errorf("members disagree on the leader: %+v", st)
		}
		leads = leads || s.IsLeader()
	}
	if !leads {
		return fmt.Errorf("the leader %x is not among the members that answer", leader)
	}
	return nil
}

// Etcdctl returns an etcdctl command (API v3) of the client namespace
// against every member's client URL, for a test's own queries: `get
// --prefix /rackboot/`, `member list`…
func (e *Etcd) Etcdctl(ctx context.Context, arg ...string) *exec.Cmd {
	return e.etcdctl(ctx, e.Endpoints(), arg...)
}

func (e *Etcd) etcdctl(ctx context.Context, endpoints []string, arg ...string) *exec.Cmd {
	args := cat([]string{"netns", "exec", e.net.Cli, "etcdctl",
		"--endpoints", strings.Join(endpoints, ","),
		"--dial-timeout", "2s", "--command-timeout", "5s"}, arg...)
	cmd := exec.CommandContext(ctx, "ip", args...)
	cmd.Env = append(os.Environ(), "ETCDCTL_API=3")
	return cmd
}

// Close stops every member (SIGTERM). Their hosts go with the Net.
func (e *Etcd) Close() error {
	for _, m := range e.members {
		m.mu.Lock()
		p := m.proc
		m.mu.Unlock()
		if p != nil {
			p.Stop()
		}
	}
	return nil
}
