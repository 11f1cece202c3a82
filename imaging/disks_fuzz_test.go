package imaging

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzDisks reads a fake /sys/block disk whose attribute files hold fuzzed
// text. Disks may refuse it, but never panics, and a disk it lists has a
// positive size that is its 512-byte unit count times 512, sector sizes
// that a disk can have (a power of two from 512 to 64 KiB), is writable,
// and has trimmed model and serial strings.
func FuzzDisks(f *testing.F) {
	f.Add(uint8(0), "20971520", "512", "4096", "0", "0", "0", "QEMU HARDDISK", "QM0001", "naa.5000C500A1B2C3D4")
	f.Add(uint8(1), "-1", "0", "512", "1", "1", "0", " Samsung  SSD ", " S4EV ", "eui.0025")
	f.Add(uint8(2), "18014398509481984", "4096", "4096", "", "x", "1", "\x00", "a/b", "")
	f.Add(uint8(0), "0x10", " 512\n", "-512", "2", "0", "0", "", "", "naa.")
	// One tree for the whole run: each input rewrites one disk's files and
	// makes the other two empty (size 0: not listed), so an input maps to
	// one result without a tree built per execution.
	dir := f.TempDir()
	names := []string{"sda", "vda", "nvme0n1"}
	for _, name := range names {
		for _, d := range []string{"queue", "device", "holders"} {
			if err := os.MkdirAll(filepath.Join(dir, "sys/block", name, d), 0o755); err != nil {
				f.Fatal(err)
			}
		}
	}
	f.Fuzz(func(t *testing.T, kind uint8, size, logical, physical, rotational, removable, ro, model, serial, wwid string) {
		if len(size+logical+physical+rotational+removable+ro+model+serial+wwid) > 1024 {
			return
		}
		for i, name := range names {
			files := map[string]string{
				"dev": "8:0", "size": "0", "queue/logical_block_size": "512", "queue/physical_block_size": "512",
				"queue/rotational": "0", "removable": "0", "ro": "0", "device/model": "", "serial": "", "wwid": "",
			}
			if i == int(kind)%len(names) {
				files = map[string]string{
					"dev": "8:0", "size": size, "queue/logical_block_size": logical, "queue/physical_block_size": physical,
					"queue/rotational": rotational, "removable": removable, "ro": ro,
					"device/model": model, "serial": serial, "wwid": wwid,
				}
			}
			for rel, v := range files {
				if err := os.WriteFile(filepath.Join(dir, "sys/block", name, rel), []byte(v+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
		disks, err := Host{Root: dir}.Disks()
		if err != nil {
			return
		}
		for _, d := range disks {
			if d.Size <= 0 || d.Size%512 != 0 || d.ReadOnly {
				t.Fatalf("listed %+v from size %q, ro %q", d, size, ro)
			}
			for _, s := range []int{d.LogicalSectorSize, d.PhysicalSectorSize} {
				if s < 512 || s > 64<<10 || s&(s-1) != 0 {
					t.Fatalf("listed %s with sector sizes %d/%d from %q/%q", d.Name, d.LogicalSectorSize, d.PhysicalSectorSize, logical, physical)
				}
			}
			if d.Model != strings.TrimSpace(d.Model) || d.Serial != strings.TrimSpace(d.Serial) {
				t.Fatalf("untrimmed model %q serial %q", d.Model, d.Serial)
			}
		}
	})
}
