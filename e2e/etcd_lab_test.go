//go:build e2e

package e2e

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rackboot/rackboot/e2e/lab"
)

// TestEtcdLab checks the lab's etcd cluster (lab.Net.StartEtcd), which
// TestSharedStore stores the fleet in: three members answer and agree on
// a leader; the leader killed with SIGKILL, the two others elect another
// within seconds and keep serving writes; restarted with its data, the
// member catches up and all three are healthy again. No QEMU: it needs
// root, ip and Debian's etcd-server and etcd-client.
func TestEtcdLab(t *testing.T) {
	requireLab(t)
	ctx := testContext(t)
	n := newLabNet(t, ctx)
	e := startEtcd(t, ctx, n, logDir(t))

	put := func(key, value string) {
		t.Helper()
		if out, err := e.Etcdctl(ctx, "put", key, value).CombinedOutput(); err != nil {
			t.Fatalf("etcdctl put %s: %v\n%s", key, err, out)
		}
	}
	get := func(m *lab.EtcdMember, key string) string {
		t.Helper()
		// --consistency=s reads the member's own copy, not the leader's.
		cmd := n.Command(n.Cli, "etcdctl", "--endpoints", m.ClientURL(), "get", key, "--print-value-only", "--consistency=s")
		cmd.Env = append(cmd.Environ(), "ETCDCTL_API=3")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("etcdctl get %s from %s: %v\n%s", key, m.Name, err, out)
		}
		return strings.TrimSpace(string(out))
	}

	put("/lab/before", "1")
	leader, err := e.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := e.Status(ctx)
	term := st[0].RaftTerm
	killed := time.Now()
	e.Kill(leader)
	if leader.Running() {
		t.Fatalf("%s still runs after Kill", leader.Name)
	}
	if err := e.WaitHealthy(ctx, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	next, err := e.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("killed the leader %s; %s leads %.1f s later", leader.Name, next.Name, time.Since(killed).Seconds())
	if next == leader {
		t.Fatalf("the killed member %s still leads", leader.Name)
	}
	if st, _ := e.Status(ctx); len(st) != 2 || st[0].RaftTerm <= term {
		t.Errorf("after the kill: %+v, want two members in a term after %d", st, term)
	}
	put("/lab/during", "2")

	if err := e.Restart(ctx, leader); err != nil {
		t.Fatal(err)
	}
	st, err = e.Status(ctx)
	if err != nil || len(st) != 3 {
		t.Fatalf("after the restart: %+v (%v), want three members", st, err)
	}
	// The restarted member applies what it missed.
	deadline := time.Now().Add(10 * time.Second)
	for get(leader, "/lab/during") != "2" {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not catch up with the write made while it was down", leader.Name)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if got := get(leader, "/lab/before"); got != "1" {
		t.Errorf("%s lost /lab/before: %q", leader.Name, got)
	}
	out, err := e.Etcdctl(ctx, "member", "list").CombinedOutput()
	if err != nil || strings.Count(string(out), "started") != 3 {
		t.Errorf("etcdctl member list (%v):\n%s\nwant three started members", err, out)
	}
}

// startEtcd starts the lab's three-member etcd cluster, its data and logs
// in dir/etcd; it stops with the test.
func startEtcd(t *testing.T, ctx context.Context, n *lab.Net, dir string) *lab.Etcd {
	t.Helper()
	start := time.Now()
	e, err := n.StartEtcd(ctx, lab.EtcdConfig{Dir: filepath.Join(dir, "etcd")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	leader, err := e.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("etcd cluster %s healthy in %.1f s, %s leads", e.StoreURL(), time.Since(start).Seconds(), leader.Name)
	return e
}
