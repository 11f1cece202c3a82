//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rackboot/rackboot/api"
	"github.com/rackboot/rackboot/e2e/lab"
	"github.com/rackboot/rackboot/e2e/osimage"
	"github.com/rackboot/rackboot/ipxe"
	"github.com/rackboot/rackboot/registry"
)

// packageConfig is what TestPackage adds to the package's
// /etc/rackboot/rackboot.yaml, the way an admin edits it: the lab's boot
// interface, the null RA that spares iPXE its IPv6 wait (docs/DESIGN.md,
// fact 6), and the JSON debug log the testbed reads. Every path stays the
// package's default.
const packageConfig = `
# TestPackage's settings.
interfaces: [` + lab.Bridge + `]
ipv6-ra: true
log-format: json
log-level: debug
`

// TestPackage is issue 16's end-to-end acceptance of the Debian package:
// packaging/build.sh builds the .deb; mmdebstrap installs it into a fresh
// Debian 12 root (its postinst creates the rackboot user); the test edits
// that root's /etc/rackboot/rackboot.yaml and runs the ExecStart= command
// line of the unit the package installed, parsed from it, chrooted into
// the root in the lab's server namespace, as the unit's User= with only
// the unit's capabilities and no new privileges (setpriv, from the root).
// A BIOS machine then installs the demo OS (package osimage) from that
// appliance with the installer the package's own binaries build (rackboot
// initrd with the packaged agent): the admin API says installed, the
// package's CLI shows one successful attempt, and at the next power-on
// rackboot's local-boot script boots the OS from the disk, which reports
// its version, hostname and key.
//
// What the unit's sandboxing (ProtectSystem=, PrivateTmp= and the rest)
// adds is not reproduced: systemd is not PID 1 here. User, capabilities
// and no_new_privs are what the daemon itself depends on.
func TestPackage(t *testing.T) {
	requireLab(t)
	ctx := testContext(t)
	work := t.TempDir()
	deb := buildPackage(t, ctx, work)
	root := filepath.Join(work, "root")
	bootstrap(t, ctx, root, deb)
	u := readUnit(t, filepath.Join(root, "lib/systemd/system/rackboot.service"))
	t.Logf("the package's unit: User=%s ExecStart=%q AmbientCapabilities=%v CapabilityBoundingSet=%v NoNewPrivileges=%v",
		u.user, u.execStart, u.ambient, u.bounding, u.noNewPrivs)

	// The installer, built by the package's rackboot from the package's
	// agent (both static: they run on this host as they would on the
	// appliance).
	arts, err := lab.BuildArtifacts(ctx, lab.ArtifactsConfig{Log: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	initrd := filepath.Join(work, "agent.cpio.gz")
	out, err := exec.CommandContext(ctx, filepath.Join(root, "usr/bin/rackboot"), "initrd", "-o", initrd,
		"--agent", filepath.Join(root, "usr/lib/rackboot/rackboot-agent"), "--modules", arts.ModulesDir, "--tools", "mkfs.xfs").CombinedOutput()
	if err != nil {
		t.Fatalf("the package's rackboot initrd: %v\n%s", err, out)
	}
	img, err := osimage.Build(ctx, osimage.Config{Version: demoVersion, Kernel: arts.Kernel, ModulesDir: arts.ModulesDir,
		Log: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}

	cfg := filepath.Join(root, "etc/rackboot/rackboot.yaml")
	f, err := os.OpenFile(cfg, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(packageConfig); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	host := "pkg-bios-01"
	tb := startTestbed(t, ctx, testbedConfig{
		fleet:   lifecycleFleet(img.SHA256, map[string]string{lifecycleBIOSMAC: host, lifecycleUEFIMAC: "pkg-uefi-01"}),
		files:   map[string]string{demoVersion + ".img.zst": img.Path, "agent.cpio.gz": initrd},
		command: func(n *lab.Net, dirs serveDirs) *exec.Cmd { return u.command(t, n, root, dirs) },
	})
	checkPrivileges(t, tb.rackboot.Pid(), root, u)
	// The admin CLI is the package's too.
	cli := rackbootCLI{tb: tb, bin: filepath.Join(root, "usr/bin/rackboot")}

	// Power-on: PXE, the installer, demo-1.0 written, reboot.
	m := newMachine(tb, "pkg-bios", lab.BIOS, lifecycleBIOSMAC)
	defer func() { t.Logf("timeline, seconds since the first power-on:\n%s", m.timeline()) }()
	vm := m.powerOn(t, ctx)
	m.install(t, ctx, vm)
	checkOutcomes(t, m.scripts(t, vm), ipxe.OutcomeInstaller)
	var view api.HostView
	tb.adminAPI(t).get(t, "/api/hosts/"+m.mac, &view)
	if view.State != registry.StateInstalled || view.Version.Name != demoVersion {
		t.Errorf("host %s: state %s version %+v, want installed %s", m.mac, view.State, view.Version, demoVersion)
	}
	checkHistory(t, cli.history(t, m.mac), 1)
	t.Logf("rackboot hosts (the package's CLI):\n%s", cli.run(t, "hosts"))

	// Power-on: PXE, rackboot's local-boot script, the OS from the disk.
	vm = m.powerOn(t, ctx)
	rep := m.bootOS(t, ctx, vm)
	checkFirstBoot(t, m, vm)
	checkReport(t, rep, osimage.Report{Init: true, Version: demoVersion, Firmware: "bios", Kernel: rep.Kernel, Hostname: host,
		SSHKey: osimage.SSHKeySummary(opsKey), Formatted: "/dev/vda4", Data: osimage.DataLine(demoVersion, host), Done: true})
}

// buildPackage runs packaging/build.sh into dir and returns the .deb.
func buildPackage(t *testing.T, ctx context.Context, dir string) string {
	t.Helper()
	start := time.Now()
	cmd := exec.CommandContext(ctx, "bash", "packaging/build.sh", dir)
	cmd.Dir = ".." // the module root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("packaging/build.sh: %v\n%s", err, stderr.Bytes())
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	deb := lines[len(lines)-1]
	t.Logf("packaging/build.sh: %s in %s", deb, time.Since(start).Round(time.Second))
	return deb
}

// bootstrap installs a minimal Debian 12 into root with the package and
// what it depends on, its maintainer scripts run as dpkg runs them.
func bootstrap(t *testing.T, ctx context.Context, root, deb string) {
	t.Helper()
	start := time.Now()
	// A path in --include is a .deb file for apt to install, and the
	// chrooted dpkg opens it by that path inside the root: the setup hook
	// puts a copy there first.
	dir := filepath.Dir(deb)
	cmd := exec.CommandContext(ctx, "mmdebstrap", "--variant=minbase", "--include="+deb,
		`--setup-hook=mkdir -p "$1`+dir+`" && cp "`+deb+`" "$1`+dir+`/"`,
		"bookworm", root, osimage.DefaultMirror)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mmdebstrap: %v\n%s", err, out)
	}
	t.Logf("mmdebstrap bookworm with the package: %s", time.Since(start).Round(time.Second))
}

// unit is what TestPackage reads of the package's systemd unit.
type unit struct {
	execStart  []string
	user       string
	group      string
	ambient    []string // capability names without CAP_, lower case
	bounding   []string
	noNewPrivs bool
}

// readUnit parses the [Service] section of the unit file. ExecStart is
// split on blanks: the test refuses quoting and specifiers it would have
// to expand rather than guess.
func readUnit(t *testing.T, file string) unit {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var u unit
	var section string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if strings.HasPrefix(line, "[") {
			section = line
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok || section != "[Service]" {
			continue
		}
		switch key {
		case "ExecStart":
			if strings.ContainsAny(value, `"'%$\`) {
				t.Fatalf("%s: ExecStart=%s: quoting or specifiers this test does not expand", file, value)
			}
			u.execStart = strings.Fields(value)
		case "User":
			u.user = value
		case "Group":
			u.group = value
		case "AmbientCapabilities":
			u.ambient = append(u.ambient, capNames(value)...)
		case "CapabilityBoundingSet":
			u.bounding = append(u.bounding, capNames(value)...)
		case "NoNewPrivileges":
			u.noNewPrivs = value == "yes" || value == "true"
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(u.execStart) == 0 || u.user == "" {
		t.Fatalf("%s: no ExecStart= or no User= in [Service]", file)
	}
	return u
}

func capNames(v string) []string {
	var caps []string
	for _, c := range strings.Fields(v) {
		caps = append(caps, strings.TrimPrefix(strings.ToLower(c), "cap_"))
	}
	return caps
}

// command is the unit's ExecStart inside root, in the lab's server
// namespace: a mount namespace of its own gets the testbed's directories
// bound where the package's defaults point (the profiles, the artifacts,
// the state directory, which StateDirectory= would own), /proc, /sys and
// /dev; then chroot, then the root's own setpriv drops to the unit's user
// and capabilities and execs ExecStart. Every step execs the next, so the
// lab's process is rackboot itself.
func (u unit) command(t *testing.T, n *lab.Net, root string, dirs serveDirs) *exec.Cmd {
	t.Helper()
	// StateDirectory=rackboot: the state directory belongs to the user.
	uid, gid := lookupUser(t, root, u.user)
	if err := os.MkdirAll(filepath.Join(dirs.data, "artifacts"), 0o750); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{dirs.data, filepath.Join(dirs.data, "artifacts")} {
		if err := os.Chown(d, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	group := u.group
	if group == "" {
		group = u.user
	}
	set := func(caps []string) string {
		s := "-all"
		for _, c := range caps {
			s += ",+" + c
		}
		return s
	}
	setpriv := []string{"setpriv", "--reuid=" + u.user, "--regid=" + group, "--init-groups",
		"--inh-caps=" + set(u.ambient), "--ambient-caps=" + set(u.ambient), "--bounding-set=" + set(u.bounding)}
	if u.noNewPrivs {
		setpriv = append(setpriv, "--no-new-privs")
	}
	script := `set -e
r=$1 data=$2 art=$3 prof=$4; shift 4
mount --bind "$data" "$r/var/lib/rackboot"
mount --bind "$art" "$r/var/lib/rackboot/artifacts"
mount --bind "$prof" "$r/etc/rackboot/profiles"
mount -t proc proc "$r/proc"
mount --rbind /sys "$r/sys"
mount --rbind /dev "$r/dev"
exec chroot "$r" "$@"`
	args := append([]string{"--mount", "--propagation", "private", "sh", "-c", script, "rackboot-unit",
		root, dirs.data, dirs.artifacts, dirs.profiles}, setpriv...)
	args = append(args, "--")
	args = append(args, u.execStart...)
	t.Logf("rackboot serve as the unit runs it: chroot %s %s", root, strings.Join(args[len(args)-len(setpriv)-len(u.execStart)-1:], " "))
	return n.Command(n.Srv, "unshare", args...)
}

// lookupUser finds name in root's /etc/passwd.
func lookupUser(t *testing.T, root, name string) (uid, gid int) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "etc/passwd"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Split(line, ":")
		if len(f) < 4 || f[0] != name {
			continue
		}
		uid, err1 := strconv.Atoi(f[2])
		gid, err2 := strconv.Atoi(f[3])
		if err1 != nil || err2 != nil {
			t.Fatalf("%s/etc/passwd: %q", root, line)
		}
		return uid, gid
	}
	t.Fatalf("%s/etc/passwd: no user %s (the package's postinst creates it)", root, name)
	return 0, 0
}

// checkPrivileges reads the serving daemon's credentials from /proc: the
// unit's user, exactly the unit's capabilities, no_new_privs.
func checkPrivileges(t *testing.T, pid int, root string, u unit) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	status := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, ":")
		status[k] = strings.TrimSpace(v)
	}
	uid, _ := lookupUser(t, root, u.user)
	if f := strings.Fields(status["Uid"]); len(f) != 4 || f[0] != strconv.Itoa(uid) || f[1] != strconv.Itoa(uid) || f[2] != strconv.Itoa(uid) {
		t.Errorf("rackboot serve (pid %d): Uid %s, want %s's %d", pid, status["Uid"], u.user, uid)
	}
	want := capMask(t, u.ambient)
	for _, k := range []string{"CapEff", "CapPrm", "CapAmb"} {
		if got, err := strconv.ParseUint(status[k], 16, 64); err != nil || got != want {
			t.Errorf("rackboot serve (pid %d): %s %s, want %016x (%v)", pid, k, status[k], want, u.ambient)
		}
	}
	if got, err := strconv.ParseUint(status["CapBnd"], 16, 64); err != nil || got != capMask(t, u.bounding) {
		t.Errorf("rackboot serve (pid %d): CapBnd %s, want %016x (%v)", pid, status["CapBnd"], capMask(t, u.bounding), u.bounding)
	}
	if u.noNewPrivs && status["NoNewPrivs"] != "1" {
		t.Errorf("rackboot serve (pid %d): NoNewPrivs %s, want 1", pid, status["NoNewPrivs"])
	}
	t.Logf("rackboot serve (pid %d): Uid %s, CapEff %s, CapBnd %s, NoNewPrivs %s", pid, status["Uid"], status["CapEff"], status["CapBnd"], status["NoNewPrivs"])
}

// capBits are the capabilities a unit may name here (linux/capability.h).
var capBits = map[string]uint{"net_bind_service": 10, "net_broadcast": 11, "net_admin": 12, "net_raw": 13}

func capMask(t *testing.T, caps []string) uint64 {
	t.Helper()
	var m uint64
	for _, c := range caps {
		bit, ok := capBits[c]
		if !ok {
			t.Fatalf("capability %s: add its bit to capBits", c)
		}
		m |= 1 << bit
	}
	return m
}
