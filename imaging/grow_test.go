package imaging

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/rackboot/rackboot/agentapi"
)

// TestInstallGrowsRoot: a layout without a rest partition goes to the end
// of the disk and the image's root partition grows up to it, so the
// installed system's resizefs can use the disk; the file systems the
// layout asks for are created; a reinstall keeps a preserved partition
// where the first install put it.
func TestInstallGrowsRoot(t *testing.T) {
	const imgSize, diskSize = 24 * mib, 256 * mib
	img := osImage(t, 512, imgSize, 1)
	file := compress(t, agentapi.FormatZstd, img)
	ts, _ := serveFile(t, file)
	plan := &agentapi.Plan{
		Image: &agentapi.Image{URL: ts.URL + "/os.img.zst", SHA256: sha256Hex(file), RawSize: imgSize, Kind: agentapi.KindWholeDisk},
		Partitions: []agentapi.Partition{
			{Name: "swap", Type: "swap", Size: 32 * mib, Filesystem: agentapi.FilesystemSwap},
			{Name: "srv", Type: "linux", Size: 64 * mib, Filesystem: agentapi.FilesystemExt4, Preserve: true},
			{Name: "config", Type: "linux", Size: 8 * mib, Content: agentapi.ContentConfigDrive},
		},
		ConfigDrive: testNoCloud(t, "i-1"),
	}
	p := newDisk(t, diskSize)
	if _, err := testInstaller(t).Install(context.Background(), plan, Target{Path: p}); err != nil {
		t.Fatal(err)
	}
	tbl := readTable(t, p, 512)
	root, swap, srv, cfg := partitionByName(t, p, 512, "root"), partitionByName(t, p, 512, "swap"), partitionByName(t, p, 512, "srv"), partitionByName(t, p, 512, "config")
	if cfg.End != tbl.LastDataSector() && cfg.End+2048 <= tbl.LastDataSector() {
		t.Errorf("config drive ends at sector %d, want near the disk's last usable sector %d", cfg.End, tbl.LastDataSector())
	}
	if root.End+1 != swap.Start || root.GetSize() <= imgSize {
		t.Errorf("root %d-%d (%d bytes), swap from %d: want root grown up to the layout", root.Start, root.End, root.GetSize(), swap.Start)
	}
	if !(swap.End < srv.Start && srv.End < cfg.Start) || swap.Start%2048 != 0 || srv.Start%2048 != 0 || cfg.Start%2048 != 0 {
		t.Errorf("layout out of order or unaligned: swap %d-%d, srv %d-%d, config %d-%d", swap.Start, swap.End, srv.Start, srv.End, cfg.Start, cfg.End)
	}
	sgdiskVerify(t, p)

	// blkid (util-linux) and e2fsck (e2fsprogs) are on every Debian.
	{
		out, err := exec.Command(sbin(t, "blkid"), "-p", "-o", "export", extract(t, p, swap.GetStart(), swap.GetSize())).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "TYPE=swap") || !strings.Contains(string(out), "LABEL=swap") {
			t.Errorf("blkid of the swap partition: %v\n%s", err, out)
		}
	}
	{
		out, err := exec.Command(sbin(t, "e2fsck"), "-fn", extract(t, p, srv.GetStart(), srv.GetSize())).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "srv:") {
			t.Errorf("e2fsck -fn of the ext4 partition: %v\n%s", err, out)
		}
	}

	// A reinstall puts everything in the same place and keeps srv.
	mark := []byte("written by the installed system")
	writeAt(t, p, srv.GetStart()+4096, mark)
	if _, err := testInstaller(t).Install(context.Background(), plan, Target{Path: p}); err != nil {
		t.Fatal(err)
	}
	again := partitionByName(t, p, 512, "srv")
	if again.Start != srv.Start || again.End != srv.End || again.GUID != srv.GUID ||
		string(readRange(t, p, srv.GetStart()+4096, int64(len(mark)))) != string(mark) {
		t.Errorf("the preserved partition moved or changed: %d-%d %s, was %d-%d %s", again.Start, again.End, again.GUID, srv.Start, srv.End, srv.GUID)
	}
	if r := partitionByName(t, p, 512, "root"); r.End != root.End {
		t.Errorf("root ends at %d after the reinstall, %d before", r.End, root.End)
	}
}

// TestInstallNoGrowWithRest: a layout with a rest partition is laid out
// right behind the image, as before, and root keeps the image's size.
func TestInstallNoGrowWithRest(t *testing.T) {
	const imgSize = 24 * mib
	img := osImage(t, 512, imgSize, 1)
	file := compress(t, agentapi.FormatZstd, img)
	ts, _ := serveFile(t, file)
	plan := &agentapi.Plan{
		Image:      &agentapi.Image{URL: ts.URL, SHA256: sha256Hex(file), RawSize: imgSize},
		Partitions: []agentapi.Partition{{Name: "data", Type: "linux", Size: agentapi.Rest}},
	}
	p := newDisk(t, 128*mib)
	if _, err := testInstaller(t).Install(context.Background(), plan, Target{Path: p}); err != nil {
		t.Fatal(err)
	}
	if root := partitionByName(t, p, 512, "root"); root.GetSize() > imgSize {
		t.Errorf("root grew to %d bytes with a rest partition after it", root.GetSize())
	}
}

// writeAt writes b at off of file p, as the installed system would.
func writeAt(t *testing.T, p string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// sbin finds a system tool also where a user's PATH does not look.
func sbin(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		if p, err := exec.LookPath(dir + "/" + name); err == nil {
			return p
		}
	}
	t.Fatalf("%s not found", name)
	return ""
}
