//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rackboot/rackboot/e2e/lab"
)

// The machines of the test fleet. Their MACs are in the profiles; unknownMAC
// is not.
const (
	biosMAC    = "52:54:00:77:00:01"
	uefiMAC    = "52:54:00:77:00:02"
	unknownMAC = "52:54:00:77:00:99"
)

// fleetYAML is the profiles directory's only file: two known hosts and the
// default installer, the lab's kernel and initramfs.
const fleetYAML = `defaults:
  installer: { kernel: ` + lab.KernelName + `, initrd: ` + lab.InitrdName + `, cmdline: "console=ttyS0,115200 quiet loglevel=3 panic=-1" }
hosts:
  - { mac: "` + biosMAC + `", hostname: bios-01 }
  - { mac: "` + uefiMAC + `", hostname: uefi-01 }
`

// Ports rackboot serves on, inside the server namespace: plain HTTP for
// what iPXE fetches, HTTPS for the admin and agent APIs.
const (
	httpPort  = "8080"
	httpsPort = "8443"
)

// requireLab skips without RACKBOOT_E2E=1 and fails, naming what is
// missing, when the host cannot run the lab although it was asked to.
func requireLab(t *testing.T) {
	t.Helper()
	if os.Getenv("RACKBOOT_E2E") != "1" {
		t.Skip("end-to-end boots need root and QEMU; run them with RACKBOOT_E2E=1 (see e2e/run.sh)")
	}
	if err := lab.CheckHost(); err != nil {
		t.Fatalf("RACKBOOT_E2E=1 but %v", err)
	}
}

// testbed is one lab network with the site DHCP server and rackboot serving
// the test fleet in it.
type testbed struct {
	net       *lab.Net
	site      *lab.SiteDHCP
	rackboot  *lab.Process
	dir       string // every log of the run
	data      string // rackboot's --data: registry, admin.token
	serverLog string // rackboot's JSON log
}

// testbedConfig says what a testbed serves. The zero value serves the boot
// tests' fleet with the lab's kernel and marker initramfs.
type testbedConfig struct {
	// fleet is the profiles directory's only file; fleetYAML when empty.
	fleet string
	// files are added to the artifacts directory, by name, from the
	// paths given; a directory is added with everything in it.
	files map[string]string
	// serve are more flags for rackboot serve, after the testbed's own.
	serve []string
	// nofile, when positive, is rackboot's open-file limit (RLIMIT_NOFILE,
	// soft and hard, set with prlimit(1)): a hard limit, since Go raises
	// the soft one to it at start.
	nofile uint64
	// command, when set, starts rackboot serve in the server namespace
	// instead of the testbed's own build with its own flags (serve and
	// nofile are then unused); it is given the directories the testbed
	// prepared. It must log JSON at debug level to stdout or stderr, as
	// the testbed's flags do. TestPackage runs the package's unit with it.
	command func(n *lab.Net, dirs serveDirs) *exec.Cmd
}

// serveDirs are the directories a testbed prepares for rackboot serve:
// the profiles (the fleet file), the artifacts (the lab's kernel and
// initramfs, testbedConfig.files) and the data directory, which the test
// reads the admin token and the CA from.
type serveDirs struct {
	profiles, artifacts, data string
}

// newTestbed builds rackboot and the artifacts, creates the lab and starts
// the servers. Everything is removed when the test ends, or on SIGINT.
func newTestbed(t *testing.T, ctx context.Context) *testbed {
	t.Helper()
	return startTestbed(t, ctx, testbedConfig{})
}

// startTestbed is newTestbed serving cfg.
func startTestbed(t *testing.T, ctx context.Context, cfg testbedConfig) *testbed {
	t.Helper()
	requireLab(t)
	if swept, err := lab.Sweep(""); err != nil {
		t.Logf("sweeping stale lab namespaces: %v", err)
	} else if len(swept) > 0 {
		t.Logf("removed stale lab namespaces %v", swept)
	}
	dir := logDir(t)

	arts, err := lab.BuildArtifacts(ctx, lab.ArtifactsConfig{Log: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	artDir, profDir := filepath.Join(dir, "artifacts"), filepath.Join(dir, "profiles")
	for _, d := range []string{artDir, profDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := arts.Install(artDir); err != nil {
		t.Fatal(err)
	}
	for name, src := range cfg.files {
		if err := linkOrCopyTree(src, filepath.Join(artDir, name)); err != nil {
			t.Fatal(err)
		}
	}
	fleet := cfg.fleet
	if fleet == "" {
		fleet = fleetYAML
	}
	if err := os.WriteFile(filepath.Join(profDir, "fleet.yaml"), []byte(fleet), 0o644); err != nil {
		t.Fatal(err)
	}

	n := newLabNet(t, ctx)
	tb := &testbed{net: n, dir: dir, data: filepath.Join(dir, "data"), serverLog: filepath.Join(dir, "rackboot.log")}
	if tb.site, err = n.StartSiteDHCP(dir); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(tb.serverLog)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	var cmd *exec.Cmd
	if cfg.command != nil {
		cmd = cfg.command(n, serveDirs{profiles: profDir, artifacts: artDir, data: tb.data})
	} else {
		cmd = serveCommand(t, ctx, n, cfg, profDir, artDir, tb.data)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if tb.rackboot, err = n.Start(cmd); err != nil {
		t.Fatal(err)
	}
	tb.waitServing(t)
	t.Logf("lab %s: rackboot and udhcpd serving; logs in %s", n.Srv, dir)
	return tb
}

// serveCommand is rackboot serve of this tree, built for the test, with
// the testbed's flags and cfg's.
func serveCommand(t *testing.T, ctx context.Context, n *lab.Net, cfg testbedConfig, profDir, artDir, data string) *exec.Cmd {
	t.Helper()
	bin := buildRackboot(t, ctx)
	name, args := bin, []string{"serve",
		"--profiles", profDir,
		"--data", data,
		"--artifacts", artDir,
		"--ipxe-dir", lab.IPXEDir,
		"--interface", lab.Bridge,
		"--http-port", httpPort, "--https-port", httpsPort, "--tftp-port", "69", "--dhcp-port", "67",
		// Without any router advertisement iPXE waits ~16 s for IPv6
		// autoconfiguration on each DHCP (docs/DESIGN.md, fact 6).
		"--ipv6-ra",
		"--log-format", "json",
		// Debug shows DHCP packets seen and not answered.
		"--log-level", "debug"}
	args = append(args, cfg.serve...)
	if cfg.nofile > 0 { // prlimit sets the limit, then execs rackboot: same pid
		name, args = "prlimit", append([]string{fmt.Sprintf("--nofile=%d:%d", cfg.nofile, cfg.nofile), bin}, args...)
	}
	return n.Command(n.Srv, name, args...)
}

// waitServing waits for rackboot's "serving" and "catalog checked" lines:
// every socket is open and the artifacts are checked (lab.Ready).
func (tb *testbed) waitServing(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if lab.Ready(tb.entries(t)) {
			return
		}
		select {
		case <-tb.rackboot.Done():
			t.Fatalf("rackboot serve exited (%v):\n%s", tb.rackboot.Err(), readTail(tb.serverLog, 30))
		case <-time.After(100 * time.Millisecond):
		}
	}
	t.Fatalf("rackboot serve not ready after 60 s:\n%s", readTail(tb.serverLog, 30))
}

// entries returns rackboot's log so far.
func (tb *testbed) entries(t *testing.T) []lab.LogEntry {
	t.Helper()
	e, err := lab.ReadLog(tb.serverLog)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// startVM powers a machine on; it is killed when the test ends.
func (tb *testbed) startVM(t *testing.T, ctx context.Context, name string, fw lab.Firmware, mac string) *lab.VM {
	t.Helper()
	hw, err := net.ParseMAC(mac)
	if err != nil {
		t.Fatal(err)
	}
	vm, err := tb.net.StartVM(ctx, lab.VMConfig{Name: name, Dir: tb.dir, Firmware: fw, MAC: hw})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := vm.Close(); err != nil {
			t.Errorf("closing %s: %v", name, err)
		}
	})
	t.Logf("%s powered on: %s", name, strings.Join(vm.Args(), " "))
	return vm
}

// lease is the address the site DHCP server gave mac.
func (tb *testbed) lease(t *testing.T, mac string) netip.Addr {
	t.Helper()
	hw, err := net.ParseMAC(mac)
	if err != nil {
		t.Fatal(err)
	}
	ip, err := tb.site.Lease(hw, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return ip
}

// buildRackboot compiles ./cmd/rackboot of this module into a temporary
// directory.
func buildRackboot(t *testing.T, ctx context.Context) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "rackboot")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/rackboot")
	cmd.Dir = ".." // the module root: this package's directory is e2e/
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/rackboot: %v\n%s", err, out)
	}
	return bin
}

// linkOrCopy places src at dst: a hard link when both are on one file
// system, a copy otherwise.
// linkOrCopyTree is linkOrCopy for a file, and for every file under a
// directory, with its subdirectories.
func linkOrCopyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(to, 0o755)
		}
		if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
			return err
		}
		return linkOrCopy(p, to)
	})
}

func linkOrCopy(src, dst string) error {
	if err := os.Remove(dst); err != nil && !os.IsNotExist(err) {
		return err
	}
	if os.Link(src, dst) == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// logDir is where a test's logs go: $RACKBOOT_E2E_LOGS/TestName when set
// (kept for reading afterwards), else a temporary directory.
func logDir(t *testing.T) string {
	root := os.Getenv("RACKBOOT_E2E_LOGS")
	if root == "" {
		return t.TempDir()
	}
	dir := filepath.Join(root, strings.ReplaceAll(t.Name(), "/", "_"))
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// closeOnSignal removes the lab when the run is interrupted: SIGINT or
// SIGTERM would otherwise end the test binary without its cleanups and
// leave namespaces behind (Sweep would still find them on the next run).
func closeOnSignal(t *testing.T, n *lab.Net) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	t.Cleanup(func() {
		signal.Stop(sig)
		close(done)
	})
	go func() {
		select {
		case s := <-sig:
			fmt.Fprintf(os.Stderr, "e2e: %v: removing lab %s\n", s, n.Srv)
			n.Close()
			os.Exit(1)
		case <-done:
		}
	}()
}

// readTail returns the last n lines of a file, for failure messages.
func readTail(name string, n int) string {
	b, err := os.ReadFile(name)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// testContext is cancelled shortly before the test binary's -timeout, so a
// hung wait fails with a message and the cleanups run.
func testContext(t *testing.T) context.Context {
	ctx := t.Context()
	if d, ok := t.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, d.Add(-30*time.Second))
		t.Cleanup(cancel)
	}
	return ctx
}

// newLabNet creates a lab network, removed when the test ends or the run
// is interrupted.
func newLabNet(t *testing.T, ctx context.Context) *lab.Net {
	t.Helper()
	n, err := lab.NewNet(ctx, lab.NetConfig{})
	if err != nil {
		t.Fatal(err)
	}
	closeOnSignal(t, n)
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Errorf("removing the lab: %v", err)
		}
	})
	return n
}
