package osimage

import (
	"encoding/binary"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/fat32"
	"github.com/google/go-cmp/cmp"
)

// TestESPFileSystem makes a FAT32 file system the way Build makes the
// ESP, then checks that it is consistent, dated only by the FAT epoch and
// carries the derived volume ID and the partition offset.
func TestESPFileSystem(t *testing.T) {
	const start, size = 4096, ESPSize
	name := filepath.Join(t.TempDir(), "esp.img")
	if err := os.WriteFile(name, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(name, start+size); err != nil {
		t.Fatal(err)
	}
	b, err := file.OpenFromPath(name, false)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	fsys, err := createFAT32(b, start, size, "ESP")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"EFI/BOOT/BOOTX64.EFI":  "uki",
		"syslinux/syslinux.cfg": syslinuxCfg(),
		"a/b/c/deep.txt":        "deep",
		"top.txt":               "top",
	}
	for p, content := range files {
		if err := fsys.Mkdir(filepath.Dir(p)); err != nil {
			t.Fatal(err)
		}
		f, err := fsys.OpenFile(p, os.O_CREATE|os.O_RDWR)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write([]byte(content)); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}

	img, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	v, err := openFAT(img, start)
	if err != nil {
		t.Fatal(err)
	}
	if v.clusters()+2 > v.fatEntries() {
		t.Errorf("%d clusters, a FAT of %d entries", v.clusters(), v.fatEntries())
	}
	if v.clusters() < 65525 {
		t.Errorf("%d clusters: UEFI firmware would read the ESP as FAT16", v.clusters())
	}
	if err := v.setBPB(start/sectorSize, 0x12345678); err != nil {
		t.Fatal(err)
	}
	if err := v.fixTimes(); err != nil {
		t.Fatal(err)
	}
	bs := make([]byte, 512)
	for _, sector := range []int64{0, 6} { // the boot sector and its backup
		if _, err := img.ReadAt(bs, start+sector*512); err != nil {
			t.Fatal(err)
		}
		if got := binary.LittleEndian.Uint32(bs[bpbHiddSec:]); got != start/sectorSize {
			t.Errorf("sector %d: hidden sectors %d, want %d", sector, got, start/sectorSize)
		}
		if got := binary.LittleEndian.Uint32(bs[bsVolID:]); got != 0x12345678 {
			t.Errorf("sector %d: volume ID %#x", sector, got)
		}
	}

	back, err := fat32.Read(b, size, start, sectorSize)
	if err != nil {
		t.Fatal(err)
	}
	epoch := time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)
	got := map[string]string{}
	err = fs.WalkDir(back, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == "." {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if m := info.ModTime(); !m.Equal(epoch) {
			t.Errorf("%s: modified %v, want %v", p, m, epoch)
		}
		if !d.IsDir() {
			b, err := fs.ReadFile(back, p)
			if err != nil {
				return err
			}
			got[p] = string(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(files, got); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}

	if _, err := exec.LookPath("fsck.vfat"); err != nil {
		t.Logf("no fsck.vfat (package dosfstools): file system not checked")
		return
	}
	part := filepath.Join(t.TempDir(), "part.img")
	raw := make([]byte, size)
	if _, err := img.ReadAt(raw, start); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(part, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("fsck.vfat", "-n", part).CombinedOutput(); err != nil {
		t.Errorf("fsck.vfat: %v\n%s", err, out)
	}
}
