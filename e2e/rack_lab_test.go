//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rackboot/rackboot/api"
	"github.com/rackboot/rackboot/e2e/demo/rack"
	"github.com/rackboot/rackboot/e2e/lab"
	"github.com/rackboot/rackboot/e2e/osimage"
	"github.com/rackboot/rackboot/profiles"
	"github.com/rackboot/rackboot/registry"
)

// rackPowerOn bounds one power-on of a rack machine, install or boot from
// disk: under TCG on two cores with four machines at once, an install
// takes about a minute.
const rackPowerOn = 5 * time.Minute

// rackLab is the demo's rack (package rack) in the lab, as the suite runs
// it: the example fleet plus the suite's own hosts (rackFleetYAML),
// rackboot serving them with at most rackMaxAttempts attempts per install.
type rackLab struct {
	net   *lab.Net
	site  *lab.SiteDHCP
	rb    *lab.Rackboot
	built *rack.Built
	set   *profiles.Set
	admin adminAPI
	dir   string // logs, serial consoles, disks

	mu       sync.Mutex
	installs []lab.Timeline // one per install power-on
	boots    []lab.Timeline // one per boot from disk
}

// startRack builds everything the rack needs, writes the profiles (the
// example fleet and extra, files by name), creates the lab and starts
// rackboot with serveArgs. Everything is removed when the test ends, or
// on SIGINT.
func startRack(t *testing.T, ctx context.Context, extra map[string]string, serveArgs ...string) *rackLab {
	t.Helper()
	return startRackWith(t, ctx, rackConfig{
		extra: func(*testing.T, *rack.Built) map[string]string { return extra },
		serve: serveArgs,
	})
}

// rackConfig says what startRackWith adds to the demo's rack.
type rackConfig struct {
	// extra returns the profiles files, by name, added to the example
	// fleet; it is called once everything is built, so that it can add
	// artifacts (such as a chunked import of an image) and name their
	// digests.
	extra func(*testing.T, *rack.Built) map[string]string
	// serve are more flags for rackboot serve.
	serve []string
}

// startRackWith is startRack with the profiles and flags of cfg.
func startRackWith(t *testing.T, ctx context.Context, cfg rackConfig) *rackLab {
	t.Helper()
	requireRackHost(t)
	r := &rackLab{dir: logDir(t)}
	start := time.Now()
	var err error
	r.built, err = rack.Build(ctx, rack.BuildConfig{Dir: t.TempDir(), Log: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range rack.Versions {
		im := r.built.Images[v]
		t.Logf("%s: %d bytes, sha256 %s", v, im.Size, im.SHA256)
	}
	t.Logf("built rackboot, the agent, its initramfs and the images in %.1f s", time.Since(start).Seconds())
	profDir := filepath.Join(r.dir, "profiles")
	var extra map[string]string
	if cfg.extra != nil {
		extra = cfg.extra(t, r.built)
	}
	if r.set, err = rack.WriteProfiles(profDir, r.built.Images, extra); err != nil {
		t.Fatal(err)
	}

	if r.net, err = lab.NewNet(ctx, lab.NetConfig{}); err != nil {
		t.Fatal(err)
	}
	closeOnSignal(t, r.net)
	t.Cleanup(func() {
		if err := r.net.Close(); err != nil {
			t.Errorf("removing the lab: %v", err)
		}
	})
	if err := r.net.PinBridgeAddress(ctx); err != nil {
		t.Fatal(err)
	}
	if r.site, err = r.net.StartSiteDHCP(r.dir); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(r.dir, "data")
	r.rb, err = r.net.StartRackboot(ctx, lab.RackbootConfig{
		Binary: r.built.Rackboot, Profiles: profDir, Data: data, Artifacts: r.built.Artifacts,
		Log: filepath.Join(r.dir, "rackboot.log"), Args: append(append([]string(nil), rack.ServeArgs...), cfg.serve...),
	})
	if err != nil {
		t.Fatal(err)
	}
	r.admin = (&testbed{net: r.net, data: data}).adminAPI(t)
	t.Logf("lab %s: rackboot and udhcpd serving; logs in %s", r.net.Srv, r.dir)
	return r
}

// host returns m's profile.
func (r *rackLab) host(t *testing.T, m rack.Machine) *profiles.Host {
	t.Helper()
	h, ok := r.set.Lookup(m.MAC)
	if !ok || h.Version == nil || h.Layout == nil {
		t.Fatalf("%s (%s) is no host of the fleet with a version and a layout", m.Name, m.MAC)
	}
	return h
}

// powerOn starts m for run; it is killed when the test ends.
func (r *rackLab) powerOn(t *testing.T, ctx context.Context, m rack.Machine, run string) *lab.VM {
	t.Helper()
	vm, err := m.PowerOn(ctx, r.net, r.dir, run)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := vm.Close(); err != nil {
			t.Errorf("closing %s: %v", run, err)
		}
	})
	return vm
}

// install powers m on and waits for its agent's last line and the reboot
// that ends QEMU. It reports whether the agent said done.
func (r *rackLab) install(t *testing.T, ctx context.Context, m rack.Machine, run string) (*lab.VM, bool) {
	t.Helper()
	vm := r.powerOn(t, ctx, m, run)
	return vm, r.waitInstall(t, ctx, m, vm)
}

// waitInstall waits for the install on vm to end and records its timeline.
func (r *rackLab) waitInstall(t *testing.T, ctx context.Context, m rack.Machine, vm *lab.VM) bool {
	t.Helper()
	end, done, err := rack.WaitInstall(ctx, vm, rackPowerOn)
	if err != nil {
		t.Fatalf("%v\nlast rackboot log lines:\n%s", err, readTail(r.rb.Config().Log, 20))
	}
	t.Logf("%s: %s (QEMU off at %.1f s)", vm.Name(), end.Line, end.Off.Seconds())
	r.record(t, &r.installs, vm, rack.InstallMilestones(m.MAC), end)
	return done
}

// bootOS powers m on to boot its disk and returns what the installed OS
// reported.
func (r *rackLab) bootOS(t *testing.T, ctx context.Context, m rack.Machine, run string) osimage.Report {
	t.Helper()
	vm := r.powerOn(t, ctx, m, run)
	rep, end, err := rack.WaitOS(ctx, vm, rackPowerOn)
	if err != nil {
		t.Fatalf("%v\nlast rackboot log lines:\n%s", err, readTail(r.rb.Config().Log, 20))
	}
	t.Logf("%s: %s (QEMU off at %.1f s)", run, end.Line, end.Off.Seconds())
	r.record(t, &r.boots, vm, rack.BootMilestones(m.MAC), end)
	return rep
}

// record adds vm's timeline to list.
func (r *rackLab) record(t *testing.T, list *[]lab.Timeline, vm *lab.VM, ms []lab.Milestone, end rack.Ending) {
	t.Helper()
	entries, err := lab.ReadLog(r.rb.Config().Log)
	if err != nil {
		t.Fatal(err)
	}
	tl, err := lab.NewTimeline(vm, entries, ms)
	if err != nil {
		t.Fatal(err)
	}
	tl.Points = append(tl.Points, lab.Point{Name: "off", At: end.Off, Found: true})
	r.mu.Lock()
	defer r.mu.Unlock()
	*list = append(*list, tl)
}

// cli runs an admin command of rackboot from the client namespace and
// returns its output.
func (r *rackLab) cli(t *testing.T, args ...string) string {
	t.Helper()
	out, err := r.rb.Command(r.net.Cli, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("rackboot %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// watchFor runs `rackboot watch --plain` from the client namespace until
// it prints a line matching re, and returns that line; on timeout, the
// error holds everything it printed.
func (r *rackLab) watchFor(ctx context.Context, re *regexp.Regexp, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := r.rb.Command(r.net.Cli, "watch", "--plain", "--interval", "1s")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return "", err
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	found := make(chan string, 1)
	var seen strings.Builder
	var mu sync.Mutex
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			mu.Lock()
			seen.WriteString(sc.Text() + "\n")
			mu.Unlock()
			if re.MatchString(sc.Text()) {
				found <- sc.Text()
				return
			}
		}
	}()
	select {
	case l := <-found:
		return l, nil
	case <-ctx.Done():
		mu.Lock()
		defer mu.Unlock()
		return "", fmt.Errorf("no line matching %s in %v; it printed:\n%s", re, timeout, seen.String())
	}
}

// hostView asks the admin API for the host with mac.
func (r *rackLab) hostView(t *testing.T, mac string) api.HostView {
	t.Helper()
	var h api.HostView
	r.admin.get(t, "/api/hosts/"+mac, &h)
	return h
}

// history asks the admin API for mac's attempts, with their agent logs.
func (r *rackLab) history(t *testing.T, mac string) []registry.Attempt {
	t.Helper()
	var h []registry.Attempt
	r.admin.get(t, "/api/hosts/"+mac+"/history?log=1", &h)
	return h
}

// waitLogged waits until rackboot logs an entry matching match at or
// after from.
func (r *rackLab) waitLogged(t *testing.T, ctx context.Context, from time.Time, match func(lab.LogEntry) bool, limit time.Duration) lab.LogEntry {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		entries, err := lab.ReadLog(r.rb.Config().Log)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range since(entries, from) {
			if match(e) {
				return e
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("rackboot logged no such line within %v; last lines:\n%s", limit, readTail(r.rb.Config().Log, 20))
		}
		select {
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// consoleHas reports whether a console line matches the regular expression.
func consoleHas(t *testing.T, vm *lab.VM, pattern string) bool {
	t.Helper()
	_, ok, err := vm.Find(pattern)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// logHas reports whether an agent log line contains s.
func logHas(lines []string, s string) bool {
	for _, l := range lines {
		if strings.Contains(l, s) {
			return true
		}
	}
	return false
}

// firstKey is the SSH key the installed OS reports: the first of the
// first user's keys, which the config drive lists first.
func firstKey(h *profiles.Host) string {
	for _, u := range h.Users {
		if len(u.SSHKeys) > 0 {
			return u.SSHKeys[0]
		}
	}
	if len(h.SSHKeys) > 0 {
		return h.SSHKeys[0]
	}
	return ""
}

// resumesRE reads the resume count of the agent's "image written" line.
var resumesRE = regexp.MustCompile(`msg="image written".* resumes=([0-9]+)`)

// requireRackHost fails the test when this host cannot run the rack's
// lab, and removes the namespaces a killed run left behind.
func requireRackHost(t *testing.T) {
	t.Helper()
	requireLab(t)
	if errs := rack.CheckHost(); len(errs) > 0 {
		t.Fatalf("RACKBOOT_E2E=1 but this host cannot run the rack: %v", errs)
	}
	if swept, err := lab.Sweep(""); err != nil {
		t.Logf("sweeping stale lab namespaces: %v", err)
	} else if len(swept) > 0 {
		t.Logf("removed stale lab namespaces %v", swept)
	}
}
