package imaging

import (
	"os"
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
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, kind uint8, size, logical, physical, rotational, removable, ro, model, serial, wwid string) {
		if len(size+logical+physical+rotational+removable+ro+model+serial+wwid) > 1024 {
			return
		}
		if err := os.RemoveAll(dir + "/sys"); err != nil {
			t.Fatal(err)
		}
		name := []string{"sda", "vda", "nvme0n1"}[kind%3]
		fs := &fakeSys{t: t, root: dir}
		fs.disk(name, "8:0", 0, map[string]string{
			"size": size, "queue/logical_block_size": logical, "queue/physical_block_size": physical,
			"queue/rotational": rotational, "removable": removable, "ro": ro,
			"device/model": model, "serial": serial, "wwid": wwid,
		})
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
