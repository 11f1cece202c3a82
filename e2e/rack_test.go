//go:build e2e

package e2e

import (
	"context"
	"net"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rackboot/rackboot/e2e/demo/rack"
	"github.com/rackboot/rackboot/e2e/lab"
	"github.com/rackboot/rackboot/e2e/osimage"
	"github.com/rackboot/rackboot/profiles"
	"github.com/rackboot/rackboot/registry"
)

// rackMaxAttempts is rackboot's --max-attempts in TestRack.
const rackMaxAttempts = 2

// Machines only the suite installs, besides the rack. BIOS machines are
// the quickest to PXE-boot.
var (
	// badMachine is given a version whose catalog digest is wrong: held.
	badMachine = rack.Machine{Name: "bad", MAC: net.HardwareAddr{0x52, 0x54, 0x00, 0x77, 0x00, 0x21},
		Firmware: lab.BIOS, NIC: "virtio-net-pci", DiskSize: 8 << 30}
	// crashMachine installs while rackboot is killed and restarted.
	crashMachine = rack.Machine{Name: "crash", MAC: net.HardwareAddr{0x52, 0x54, 0x00, 0x77, 0x00, 0x22},
		Firmware: lab.BIOS, NIC: "virtio-net-pci", DiskSize: 8 << 30}
)

// wrongDigest is well-formed and names no image of the rack.
var wrongDigest = sha256Hex([]byte("rackboot e2e: not the digest of demo-1.0.img.zst"))

// rackFleetYAML adds the suite's hosts to the example fleet: a version
// whose digest is wrong, and the two machines above (both in rack 1 by
// their MAC prefix).
var rackFleetYAML = `# The end-to-end suite's own hosts, beside the example fleet (e2e/rack_test.go).
versions:
  # demo-1.0's image under a digest that is not its own: a catalog
  # edited by hand. rackboot holds its hosts and writes nothing.
  - name: demo-1.0-bad-digest
    number: 1
    channel: broken
    image: { url: demo-1.0.img.zst, sha256: ` + wrongDigest + `, format: zstd, kind: whole-disk }
    installer: { kernel: vmlinuz, initrd: initrd.img, cmdline: "console=ttyS0,115200 quiet loglevel=3 panic=-1" }
hosts:
  - mac: ` + badMachine.MAC.String() + `
    hostname: r1-bad01
    version: demo-1.0-bad-digest
    network: { address: 10.0.1.31/24 }
  - mac: ` + crashMachine.MAC.String() + `
    hostname: r1-crash01
    network: { address: 10.0.1.32/24 }
`

// TestRack runs the demo's rack (package rack) and what the demo does not
// show: the three machines install at once over the network and boot
// their disks; a machine whose version's image digest is wrong is held
// with the reason shown and its disk untouched; one machine is upgraded from demo-1.0 to
// demo-1.1 with `rackboot reinstall` and keeps its data partition; and
// rackboot is killed in the middle of an image write, restarted, and the
// install completes with the history intact. Each step builds on the
// state the previous ones left, so the first failure ends the test.
func TestRack(t *testing.T) {
	ctx := testContext(t)
	r := startRack(t, ctx, map[string]string{"e2e.yaml": rackFleetYAML},
		"--max-attempts", strconv.Itoa(rackMaxAttempts))
	steps := []struct {
		name string
		run  func(*testing.T, context.Context, *rackLab)
	}{
		{"install", testRackInstall},
		{"boot-from-disk", testRackBoot},
		{"upgrade", testRackUpgrade},
		{"rackboot-killed", testRackKilled},
	}
	for _, s := range steps {
		if !t.Run(s.name, func(t *testing.T) { s.run(t, ctx, r) }) {
			break
		}
	}
	t.Logf("installs, seconds from power-on (rackboot's log and the serial consoles):\n%s", lab.FormatTimelines(r.installs))
	t.Logf("boots from disk, seconds from power-on:\n%s", lab.FormatTimelines(r.boots))
}

// testRackInstall powers on the rack and the bad machine at once, as a
// rack's power comes on, and checks what the appliance recorded.
func testRackInstall(t *testing.T, ctx context.Context, r *rackLab) {
	for _, m := range rack.Machines() {
		t.Run(m.Name, func(t *testing.T) {
			t.Parallel()
			h := r.host(t, m)
			if err := m.NewDisk(r.dir); err != nil {
				t.Fatal(err)
			}
			if _, done := r.install(t, ctx, m, m.Name+"-install"); !done {
				t.Fatalf("the install of %s failed", h.Hostname)
			}
			mac := m.MAC.String()
			hv := r.hostView(t, mac)
			want := registry.Version{Name: h.Version.Name, Number: h.Version.Number}
			if hv.State != registry.StateInstalled || hv.Version != want {
				t.Errorf("host %s: %s with %+v (%s), want installed with %+v", h.Hostname, hv.State, hv.Version, hv.Reason, want)
			}
			im := r.built.Images[h.Version.Name]
			hist := r.history(t, mac)
			if len(hist) != 1 {
				t.Fatalf("history of %s: %d attempts, want 1: %+v", h.Hostname, len(hist), hist)
			}
			a := hist[0]
			if a.Result != registry.ResultSuccess || a.Version != want || a.ImageSHA256 != im.SHA256 || a.BytesWritten != im.UncompressedSize {
				t.Errorf("attempt of %s: %s %+v sha256 %s, %d bytes; want success %+v %s, %d bytes (error %q)",
					h.Hostname, a.Result, a.Version, a.ImageSHA256, a.BytesWritten, want, im.SHA256, im.UncompressedSize, a.Error)
			}
		})
	}
	t.Run("bad-digest", func(t *testing.T) {
		t.Parallel()
		testBadDigest(t, ctx, r)
	})
}

// testBadDigest powers on a machine whose version's catalog digest is
// wrong (the image file is demo-1.0's, which is fine): rackboot's catalog
// check found it at start, so the machine is held. Its script says why
// and asks again 30 s later, it is never sent the installer, no attempt
// starts, `rackboot hosts` shows it pending (held) with the version's
// file:line, `rackboot validate --artifacts` names the same, and its disk
// is never written.
func testBadDigest(t *testing.T, ctx context.Context, r *rackLab) {
	m, mac := badMachine, badMachine.MAC.String()
	if err := m.NewDisk(r.dir); err != nil {
		t.Fatal(err)
	}
	vm := r.powerOn(t, ctx, m, "bad-held")
	r.waitLogged(t, ctx, vm.Started(), rack.ScriptServed(m.MAC, "held"), rackPowerOn)
	// The console wraps at 80 columns: the reason is checked in the API
	// and the CLI below.
	if _, err := vm.WaitFor(ctx, `\) is held`, 30*time.Second); err != nil {
		t.Errorf("the held script printed nothing: %v\n%s", err, vm.Tail(20))
	}
	// The machine asks again after its pause, and is held again.
	asked := r.waitLogged(t, ctx, vm.Started(), rack.ScriptServed(m.MAC, "held"), rackPowerOn)
	r.waitLogged(t, ctx, asked.Time.Add(time.Millisecond), rack.ScriptServed(m.MAC, "held"), 90*time.Second)
	vm.Kill()

	entries, err := lab.ReadLog(r.rb.Config().Log)
	if err != nil {
		t.Fatal(err)
	}
	if logged(since(entries, vm.Started()), rack.ArtifactServed(m.MAC, rack.KernelFile)) {
		t.Error("the held machine was sent the installer kernel")
	}
	hv := r.hostView(t, mac)
	wantWhy := regexp.MustCompile(`e2e\.yaml:\d+: version demo-1\.0-bad-digest: image demo-1\.0\.img\.zst: its sha256 is [0-9a-f]{64}, the catalog says ` + wrongDigest)
	if hv.State != registry.StatePending || !wantWhy.MatchString(hv.Held) || !hv.Version.IsZero() || hv.Attempt != 0 {
		t.Errorf("host: %s, held %q, version %+v, attempt %d; want pending, held by the digest, nothing installed, no attempt", hv.State, hv.Held, hv.Version, hv.Attempt)
	}
	if hist := r.history(t, mac); len(hist) != 0 {
		t.Errorf("history of a held machine: %+v, want no attempt", hist)
	}
	out := r.cli(t, "hosts")
	if !regexp.MustCompile(mac+`\s+r1-bad01\s+pending \(held\)`).MatchString(out) || !wantWhy.MatchString(out) {
		t.Errorf("rackboot hosts does not show the machine held and why:\n%s", out)
	}
	cfg := r.rb.Config()
	vout, err := exec.CommandContext(ctx, cfg.Binary, "validate", "--artifacts", cfg.Artifacts, cfg.Profiles).CombinedOutput()
	if err == nil || !wantWhy.Match(vout) {
		t.Errorf("rackboot validate --artifacts (err %v) does not name the version's file:line:\n%s", err, vout)
	}
	written, err := lab.DiskWritten(m.Disk(r.dir))
	if err != nil {
		t.Fatal(err)
	}
	if written {
		t.Error("the held machine's disk was written")
	}
	t.Logf("held machine, console:\n%s", vm.Tail(6))
}

// testRackBoot powers the installed rack on again: each machine PXE-boots,
// rackboot's script sends it to its disk, and the installed OS reports
// the version, hostname and key its profile gave it. The storage layout's
// data partition is formatted on this first boot.
func testRackBoot(t *testing.T, ctx context.Context, r *rackLab) {
	for _, m := range rack.Machines() {
		t.Run(m.Name, func(t *testing.T) {
			t.Parallel()
			h := r.host(t, m)
			got := r.bootOS(t, ctx, m, m.Name+"-boot")
			fw := map[lab.Firmware]string{lab.BIOS: "bios", lab.UEFI: "efi"}[m.Firmware]
			want := osimage.Report{Init: true, Version: h.Version.Name, Firmware: fw, Kernel: r.built.Kernel.KernelVersion,
				Hostname: h.Hostname, SSHKey: osimage.SSHKeySummary(firstKey(h)), Done: true}
			if hasPreserved(h) {
				if !hasFilesystem(h, "data") {
					want.Formatted = "/dev/vda4" // by the OS: the installer left it blank
				}
				want.Data = osimage.DataLine(h.Version.Name, h.Hostname)
			} else {
				want.Warnings = []string{"no partition named data"}
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("the installed OS of %s reported (-want +got):\n%s", h.Hostname, diff)
			}
		})
	}
}

// testRackUpgrade reinstalls the storage machine with demo-1.1 through
// `rackboot reinstall --version`: the new version boots, and the data
// partition, which the layout preserves, still holds what demo-1.0 wrote.
func testRackUpgrade(t *testing.T, ctx context.Context, r *rackLab) {
	var m rack.Machine
	for _, x := range rack.Machines() {
		if hasPreserved(r.host(t, x)) {
			m = x
		}
	}
	if m.Name == "" {
		t.Fatal("no machine of the rack has a preserved partition")
	}
	h, mac := r.host(t, m), m.MAC.String()
	const to, reason = "demo-1.1", "e2e: upgrade to the canary"
	out := r.cli(t, "reinstall", mac, "--version", to, "--reason", reason)
	if !strings.Contains(out, "marked 1 machine pending") {
		t.Errorf("rackboot reinstall said:\n%s", out)
	}
	if hv := r.hostView(t, mac); hv.State != registry.StatePending || hv.PendingVersion != to {
		t.Errorf("after reinstall: %s, pending version %q; want pending, %s", hv.State, hv.PendingVersion, to)
	}
	if _, done := r.install(t, ctx, m, m.Name+"-upgrade"); !done {
		t.Fatal("the upgrade failed")
	}
	hist := r.history(t, mac)
	if len(hist) != 2 {
		t.Fatalf("history: %d attempts, want the install and the upgrade: %+v", len(hist), hist)
	}
	if a := hist[0]; a.Result != registry.ResultSuccess || a.Version.Name != h.Version.Name {
		t.Errorf("first attempt: %s %+v, want the success of %s", a.Result, a.Version, h.Version.Name)
	}
	if a := hist[1]; a.Result != registry.ResultSuccess || a.Version.Name != to || !strings.Contains(a.Reason, reason) ||
		a.ImageSHA256 != r.built.Images[to].SHA256 {
		t.Errorf("upgrade attempt: %s %+v, reason %q, sha256 %s; want success of %s, reason with %q, %s",
			a.Result, a.Version, a.Reason, a.ImageSHA256, to, reason, r.built.Images[to].SHA256)
	}
	if hv := r.hostView(t, mac); hv.State != registry.StateInstalled || hv.Version.Name != to || hv.PendingVersion != "" {
		t.Errorf("after the upgrade: %s, version %+v, pending %q; want installed, %s", hv.State, hv.Version, hv.PendingVersion, to)
	}
	got := r.bootOS(t, ctx, m, m.Name+"-upgraded")
	if got.Version != to || got.Hostname != h.Hostname || got.Formatted != "" ||
		got.Data != osimage.DataLine(h.Version.Name, h.Hostname) || !got.Done {
		t.Errorf("after the upgrade the OS reported version %q, hostname %q, formatted %q, data %q, done %v; "+
			"want %s, %s, no format, %q", got.Version, got.Hostname, got.Formatted, got.Data, got.Done,
			to, h.Hostname, osimage.DataLine(h.Version.Name, h.Hostname))
	}
	t.Logf("%s after the upgrade: version=%s, data partition: %q", h.Hostname, got.Version, got.Data)
}

// crashRate is the crash machine's link speed while its image downloads:
// demo-1.0's 20 MiB take about ten seconds, time enough to kill rackboot
// in the middle.
const crashRate = 16_000_000

// crashDowntime is how long rackboot stays dead: longer than the agent's
// first retry delays (1 s, then 2 s), shorter than its patience.
const crashDowntime = 4 * time.Second

// testRackKilled kills rackboot with SIGKILL while the crash machine
// writes its image, and starts it again with the same data directory.
// The agent resumes its download and retries its reports; the install
// completes as one successful attempt, and every machine's history from
// before the kill is still there.
func testRackKilled(t *testing.T, ctx context.Context, r *rackLab) {
	m, mac := crashMachine, crashMachine.MAC.String()
	h := r.host(t, m)
	before := map[string][]registry.Attempt{}
	for _, x := range append(rack.Machines(), badMachine) {
		before[x.MAC.String()] = withoutLogs(r.history(t, x.MAC.String()))
	}
	if err := m.NewDisk(r.dir); err != nil {
		t.Fatal(err)
	}
	vm := r.powerOn(t, ctx, m, "crash-install")
	// The installer's kernel and initramfs came at full speed; the
	// agent's calls and its image download go slowly.
	if _, err := vm.WaitFor(ctx, `rackboot-agent starting`, rackPowerOn); err != nil {
		t.Fatalf("%v\n%s", err, vm.Tail(20))
	}
	if err := vm.LimitRate(ctx, crashRate); err != nil {
		t.Fatal(err)
	}
	first, err := vm.WaitFor(ctx, `progress image`, rackPowerOn)
	if err != nil {
		t.Fatalf("%v\n%s", err, vm.Tail(20))
	}
	// What an operator watching the install sees: the image's share
	// written and the time left, since the plan carries its size.
	line, err := r.watchFor(ctx, regexp.MustCompile(regexp.QuoteMeta(h.Hostname)+` \(`+mac+`\) image +\d+% .* of .*ETA \d`), 30*time.Second)
	if err != nil {
		t.Fatalf("rackboot watch: %v", err)
	}
	t.Logf("rackboot watch printed: %s", line)
	r.rb.Kill()
	killed := r.rb.Process()
	t.Logf("killed rackboot (%v) at the first image progress: %s", killed.Err(), first)
	if err := killed.Err(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("rackboot ended with %v, want SIGKILL", err)
	}
	time.Sleep(crashDowntime)
	if err := r.rb.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if err := vm.LimitRate(ctx, 0); err != nil {
		t.Fatal(err)
	}
	t.Logf("rackboot serving again after %v", crashDowntime)
	if !r.waitInstall(t, ctx, m, vm) {
		t.Fatal("the install did not complete after rackboot's restart")
	}
	for _, want := range []string{`msg="download interrupted"`, `msg="download resumed"`} {
		if !consoleHas(t, vm, want) {
			t.Errorf("the agent's console has no %s:\n%s", want, vm.Tail(30))
		}
	}
	if l, ok, _ := vm.Find(resumesRE.String()); !ok || resumesRE.FindStringSubmatch(l.Text)[1] == "0" {
		t.Errorf("the image was not written across a resumed download: %q", l.Text)
	}

	hist := r.history(t, mac)
	im := r.built.Images[h.Version.Name]
	if len(hist) != 1 {
		t.Fatalf("history of %s: %d attempts, want 1: %+v", h.Hostname, len(hist), withoutLogs(hist))
	}
	a := hist[0]
	if a.Result != registry.ResultSuccess || a.ImageSHA256 != im.SHA256 || a.BytesWritten != im.UncompressedSize {
		t.Errorf("attempt: %s, sha256 %s, %d bytes; want success, %s, %d (error %q)", a.Result, a.ImageSHA256, a.BytesWritten,
			im.SHA256, im.UncompressedSize, a.Error)
	}
	// The agent's log reached the appliance from both sides of the kill.
	for _, want := range []string{"plan received", "download resumed", "install done"} {
		if !logHas(a.Log, want) {
			t.Errorf("the attempt's agent log lacks %q (%d lines)", want, len(a.Log))
		}
	}
	if hv := r.hostView(t, mac); hv.State != registry.StateInstalled {
		t.Errorf("host %s is %s (%s), want installed", h.Hostname, hv.State, hv.Reason)
	}
	for mac, want := range before {
		if diff := cmp.Diff(want, withoutLogs(r.history(t, mac))); diff != "" {
			t.Errorf("history of %s changed across the restart (-before +after):\n%s", mac, diff)
		}
	}
	got := r.bootOS(t, ctx, m, "crash-boot")
	if got.Version != h.Version.Name || got.Hostname != h.Hostname || !got.Done {
		t.Errorf("the OS installed across the restart reported version %q, hostname %q, done %v; want %s, %s",
			got.Version, got.Hostname, got.Done, h.Version.Name, h.Hostname)
	}
}

// withoutLogs drops the agent logs, which the history compares apart.
func withoutLogs(as []registry.Attempt) []registry.Attempt {
	out := make([]registry.Attempt, len(as))
	for i, a := range as {
		a.Log = nil
		out[i] = a
	}
	return out
}

// hasFilesystem reports whether the layout names a file system for the
// partition name, which the installer then creates.
func hasFilesystem(h *profiles.Host, name string) bool {
	for _, p := range h.Layout.Partitions {
		if p.Name == name {
			return p.Filesystem != ""
		}
	}
	return false
}

// hasPreserved reports whether a host's layout keeps a partition across
// reinstalls.
func hasPreserved(h *profiles.Host) bool {
	for _, p := range h.Layout.Partitions {
		if p.Preserve {
			return true
		}
	}
	return false
}
