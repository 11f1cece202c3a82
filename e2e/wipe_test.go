//go:build e2e

package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/partition/gpt"

	"github.com/rackboot/rackboot/api"
	"github.com/rackboot/rackboot/e2e/lab"
	"github.com/rackboot/rackboot/imaging"
	"github.com/rackboot/rackboot/registry"
)

// wipeMAC is the machine of TestWipeData.
const wipeMAC = "52:54:00:77:04:01"

// wipeFleet is the profiles of TestWipeData: the synthetic OS of
// TestInstall and a layout with the config drive and, with data true, a
// preserved ext4 data partition.
func wipeFleet(imageSHA256 string, data bool) string {
	parts := "      - { name: cidata, size: 16MiB, type: linux, content: config }\n"
	if data {
		parts = "      - { name: data, size: 64MiB, type: linux, filesystem: ext4, preserve: true, mount: /srv/data }\n" + parts
	}
	return `versions:
  - name: testos-1
    number: 1
    image: { url: testos-1.img.zst, sha256: ` + imageSHA256 + `, format: zstd, kind: whole-disk }
    installer: { kernel: ` + lab.KernelName + `, initrd: agent.cpio.gz, cmdline: "console=ttyS0,115200 loglevel=4 panic=-1" }
layouts:
  - name: wipe
    disk: { select: smallest, min_size: 512MiB }
    partitions:
` + parts + `defaults:
  version: testos-1
  layout: wipe
  users:
    - name: ops
      ssh_keys: ["` + opsKey + `"]
hosts:
  - { mac: "` + wipeMAC + `", hostname: wipe-01, network: { dhcp: true } }
`
}

// TestWipeData: nothing preserved is lost on a bad edit. A BIOS machine
// installs a layout with a preserved data partition, into which its
// "users" then write; the admin edits the layout so that the partition is
// gone and asks for a reinstall. The agent refuses it before writing
// anything: the attempt fails with an error naming the partition, its
// size and file system and `rackboot reinstall --wipe-data`, which the
// admin sees in `rackboot history`, and the disk is byte-for-byte what it
// was. `rackboot reinstall --wipe-data` then installs the new layout, and
// the history records who allowed that and why.
func TestWipeData(t *testing.T) {
	requireLab(t)
	ctx := testContext(t)
	work := t.TempDir()
	img := buildTestOS(t, work)
	initrd := buildAgentInitrd(t, ctx, work)
	tb := startTestbed(t, ctx, testbedConfig{
		fleet: wipeFleet(img.sha256, true),
		files: map[string]string{"testos-1.img.zst": img.zst, "agent.cpio.gz": initrd},
	})
	cli := rackbootCLI{tb: tb, bin: buildRackboot(t, ctx)}
	m := newMachine(tb, "wipe", lab.BIOS, wipeMAC)
	defer func() { t.Logf("timeline, seconds since the first power-on:\n%s", m.timeline()) }()

	// 1. The first install creates the data partition, marked preserved
	// on the disk.
	m.install(t, ctx, m.powerOn(t, ctx))
	data := diskPartition(t, m.disk, "data")
	if data == nil || data.Attributes&imaging.PreservedAttribute == 0 {
		t.Fatalf("after the first install: data partition %+v, want one with the preserved attribute", data)
	}
	// What the machine's users keep there.
	mark := []byte("rackboot e2e: the users' data, written after the first install")
	f, err := os.OpenFile(m.disk, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(mark, data.GetStart()+32*mib); err != nil {
		t.Fatal(err)
	}
	f.Close()
	before := fileSHA256(t, m.disk)

	// 2. The bad edit: the data partition leaves the layout. A reinstall
	// is refused by the agent, before it writes anything.
	writeProfiles(t, tb, wipeFleet(img.sha256, false))
	m.log(time.Now(), "profiles edited: the data partition dropped")
	t.Logf("rackboot reinstall:\n%s", cli.run(t, "reinstall", wipeMAC, "--reason", "e2e: new layout"))
	vm := m.powerOn(t, ctx)
	l := m.wait(t, ctx, vm, `rackboot-agent: INSTALL FAILED`, installTimeout)
	m.log(m.at(vm, l), "install failed")
	m.waitOff(t, vm)
	if _, ok, _ := vm.Find(`cannot preserve partition \\?"data\\?"`); !ok {
		t.Errorf("the console does not name the preserved partition:\n%s", vm.Tail(30))
	}
	if got := fileSHA256(t, m.disk); got != before {
		t.Fatal("the refused install changed the disk")
	}
	hist := cli.history(t, wipeMAC)
	if len(hist) != 2 || hist[1].Result != registry.ResultFailed {
		t.Fatalf("history: %+v, want the install and a failed attempt", hist)
	}
	for _, want := range []string{`"data"`, "64MiB", "ext4", "no longer in the layout", "rackboot reinstall --wipe-data"} {
		if !strings.Contains(hist[1].Error, want) {
			t.Errorf("the failed attempt's error does not say %s: %s", want, hist[1].Error)
		}
	}
	out := cli.run(t, "history", wipeMAC)
	t.Logf("rackboot history %s:\n%s", wipeMAC, out)
	if !strings.Contains(out, "rackboot reinstall --wipe-data") {
		t.Error("rackboot history does not show the way out")
	}
	var view api.HostView
	tb.adminAPI(t).get(t, "/api/hosts/"+wipeMAC, &view)
	if view.State != registry.StatePending || !strings.Contains(view.LastError, `"data"`) {
		t.Errorf("host: %s, last error %q; want pending, with the error", view.State, view.LastError)
	}

	// 3. The admin means it: --wipe-data lets one install drop it.
	t.Logf("rackboot reinstall --wipe-data:\n%s", cli.run(t, "reinstall", wipeMAC, "--wipe-data", "--reason", "e2e: data no longer needed"))
	m.install(t, ctx, m.powerOn(t, ctx))
	if p := diskPartition(t, m.disk, "data"); p != nil {
		t.Errorf("the data partition survived reinstall --wipe-data: %+v", p)
	}
	if diskPartition(t, m.disk, "cidata") == nil {
		t.Error("no config drive after reinstall --wipe-data")
	}
	hist = cli.history(t, wipeMAC)
	if len(hist) != 3 {
		t.Fatalf("history: %+v, want 3 attempts", hist)
	}
	if a := hist[2]; a.Result != registry.ResultSuccess || a.WipeData == nil || a.WipeData.Reason != "e2e: data no longer needed" ||
		!strings.Contains(a.WipeData.By, "via admin API") {
		t.Errorf("the wiping attempt: %s, wipe data %+v; want success, recording who and why", a.Result, a.WipeData)
	}
	if hist[1].WipeData != nil {
		t.Errorf("the refused attempt records a wipe permission: %+v", hist[1].WipeData)
	}
	t.Logf("rackboot history %s:\n%s", wipeMAC, cli.run(t, "history", wipeMAC))
}

// writeProfiles replaces the testbed's profiles file, as an editor saves
// (a rename, so the watcher never reads half of it), and waits until
// rackboot has loaded it.
func writeProfiles(t *testing.T, tb *testbed, yaml string) {
	t.Helper()
	path := filepath.Join(tb.dir, "profiles", "fleet.yaml")
	start := time.Now()
	if err := os.WriteFile(path+".new", []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".new", path); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for _, e := range since(tb.entries(t), start) {
			if e.Msg == "profiles loaded" {
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("rackboot did not load the edited profiles in 30 s:\n%s", readTail(tb.serverLog, 20))
}

// diskPartition returns the partition of the disk image named name, or
// nil.
func diskPartition(t *testing.T, disk, name string) *gpt.Partition {
	t.Helper()
	b, err := file.OpenFromPath(disk, true)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	tbl, err := gpt.Read(b, sector, sector)
	if err != nil {
		t.Fatalf("GPT of %s: %v", disk, err)
	}
	for _, p := range tbl.Partitions {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// fileSHA256 is the digest of a whole file.
func fileSHA256(t *testing.T, name string) string {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}
