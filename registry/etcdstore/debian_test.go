package etcdstore

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rackboot/rackboot/registry/etcdstore/etcdtest"
)

// TestDebianEtcd runs both suites against the etcd binary on PATH (Debian
// 12's etcd-server, 3.4.23: the server an appliance on Debian is most likely
// given), started as a plain process on loopback. Without the binary the
// test is skipped, unless CI is set: CI installs it, so there its absence
// is a failure.
func TestDebianEtcd(t *testing.T) {
	bin, err := exec.LookPath("etcd")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("etcd not found (apt-get install etcd-server): %v", err)
		}
		t.Skipf("etcd not found (apt-get install etcd-server to run this test): %v", err)
	}
	conformance(t, startEtcd(t, bin))
}

// startEtcd starts one etcd member from bin, with pre-vote on as the
// package documentation asks of operators, and stops it when the test
// ends. It returns the client endpoints once the member serves.
func startEtcd(t *testing.T, bin string) []string {
	t.Helper()
	dir := t.TempDir()
	ports, err := etcdtest.FreePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	client := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	peer := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	var out bytes.Buffer
	cmd := exec.Command(bin,
		"--name", "test", "--data-dir", filepath.Join(dir, "data"),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "test="+peer,
		"--pre-vote=true", "--logger", "zap", "--log-level", "error")
	cmd.Stdout, cmd.Stderr = &out, &out
	// etcd reads its flags from ETCD_* variables too: none may leak in.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ETCD_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	endpoints := []string{client}
	deadline := time.Now().Add(20 * time.Second)
	for {
		s, err := Open(ctx, Config{Endpoints: endpoints, ID: "probe", DialTimeout: time.Second, CallTimeout: time.Second})
		if err == nil {
			s.Close()
			return endpoints
		}
		select {
		case werr := <-exited:
			t.Fatalf("%s exited: %v\n%s", bin, werr, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not serving after 20 s: %v\n%s", bin, err, out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
