package imaging

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/rackboot/rackboot/agentapi"
)

// fakeSys builds a fake /sys, /proc and /dev under a temporary root.
type fakeSys struct {
	t    *testing.T
	root string
}

func newFakeSys(t *testing.T) *fakeSys {
	return &fakeSys{t: t, root: t.TempDir()}
}

func (f *fakeSys) write(rel, content string) {
	f.t.Helper()
	p := filepath.Join(f.root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content+"\n"), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fakeSys) mkdir(rel string) {
	f.t.Helper()
	if err := os.MkdirAll(filepath.Join(f.root, rel), 0o755); err != nil {
		f.t.Fatal(err)
	}
}

// disk adds /sys/block/name with size in bytes and the given files
// (relative to the disk's directory) overriding the defaults.
func (f *fakeSys) disk(name, dev string, size int64, files map[string]string) {
	base := "sys/block/" + name + "/"
	defaults := map[string]string{
		"dev": dev, "size": strconv.FormatInt(size/512, 10), "removable": "0", "ro": "0",
		"queue/logical_block_size": "512", "queue/physical_block_size": "4096", "queue/rotational": "0",
	}
	for k, v := range files {
		defaults[k] = v
	}
	for k, v := range defaults {
		f.write(base+k, v)
	}
	f.mkdir(base + "holders")
}

// part adds partition pname of disk name.
func (f *fakeSys) part(name, pname, dev string) {
	base := "sys/block/" + name + "/" + pname + "/"
	f.write(base+"partition", "1")
	f.write(base+"dev", dev)
	f.mkdir(base + "holders")
}

func testSys(t *testing.T) *fakeSys {
	f := newFakeSys(t)
	f.disk("sda", "8:0", 480*gib, map[string]string{"device/model": "SAMSUNG MZ7LH480", "device/wwid": "naa.5002538E40A1B2C3"})
	f.part("sda", "sda1", "8:1")
	f.part("sda", "sda2", "8:2")
	f.disk("sdb", "8:16", 4*tib, map[string]string{"queue/rotational": "1", "queue/logical_block_size": "4096"})
	f.disk("nvme0n1", "259:0", 960*gib, map[string]string{"device/model": "Dell Ent NVMe  P5600", "device/serial": "PHAB1234", "eui": "00 25 38 b5 71 b1 22 33"})
	f.disk("vda", "254:0", 20*gib, map[string]string{"serial": "rackboot-disk", "queue/rotational": "1"})
	f.disk("sdc", "8:32", 32*gib, map[string]string{"removable": "1"})
	f.disk("sr0", "11:0", 700*mib, nil)
	f.disk("loop0", "7:0", gib, nil)
	f.disk("sdd", "8:48", 0, nil)                                // card reader without a card
	f.disk("sde", "8:64", 100*gib, map[string]string{"ro": "1"}) // write-protected
	if err := os.MkdirAll(filepath.Join(f.root, "dev/disk/by-id"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../sda", filepath.Join(f.root, "dev/disk/by-id/ata-SAMSUNG_MZ7LH480_S45NNA0M123456")); err != nil {
		t.Fatal(err)
	}
	f.write("proc/self/mountinfo", "22 27 0:21 / /proc rw,relatime - proc proc rw")
	f.write("proc/swaps", "Filename\tType\tSize\tUsed\tPriority")
	return f
}

func TestHostDisks(t *testing.T) {
	f := testSys(t)
	disks, err := Host{Root: f.root}.Disks()
	if err != nil {
		t.Fatal(err)
	}
	want := []Disk{
		{Name: "nvme0n1", Path: "/dev/nvme0n1", Dev: "259:0", Size: 960 * gib, LogicalSectorSize: 512, PhysicalSectorSize: 4096,
			Model: "Dell Ent NVMe  P5600", Serial: "PHAB1234",
			IDs: []string{"nvme-Dell_Ent_NVMe_P5600_PHAB1234", "nvme-eui.002538b571b12233"}},
		{Name: "sda", Path: "/dev/sda", Dev: "8:0", Size: 480 * gib, LogicalSectorSize: 512, PhysicalSectorSize: 4096,
			Model: "SAMSUNG MZ7LH480",
			IDs:   []string{"ata-SAMSUNG_MZ7LH480_S45NNA0M123456", "wwn-0x5002538e40a1b2c3"}, Partitions: []string{"sda1", "sda2"}},
		{Name: "sdb", Path: "/dev/sdb", Dev: "8:16", Size: 4 * tib, LogicalSectorSize: 4096, PhysicalSectorSize: 4096, Rotational: true},
		{Name: "sdc", Path: "/dev/sdc", Dev: "8:32", Size: 32 * gib, LogicalSectorSize: 512, PhysicalSectorSize: 4096, Removable: true},
		{Name: "vda", Path: "/dev/vda", Dev: "254:0", Size: 20 * gib, LogicalSectorSize: 512, PhysicalSectorSize: 4096, Rotational: true,
			Serial: "rackboot-disk", IDs: []string{"virtio-rackboot-disk"}},
	}
	if diff := cmp.Diff(want, disks); diff != "" {
		t.Fatalf("Disks() (-want +got):\n%s", diff)
	}
	if got := []string{disks[0].Type(), disks[1].Type(), disks[2].Type()}; !cmp.Equal(got, []string{"nvme", "ssd", "hdd"}) {
		t.Errorf("types = %v", got)
	}
}

func TestSelectDisk(t *testing.T) {
	f := testSys(t)
	disks, err := Host{Root: f.root}.Disks()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		rule    agentapi.DiskRule
		want    string
		wantErr error
	}{
		{name: "default is smallest", rule: agentapi.DiskRule{}, want: "vda"},
		{name: "largest", rule: agentapi.DiskRule{Select: agentapi.SelectLargest}, want: "sdb"},
		{name: "min size", rule: agentapi.DiskRule{MinSize: 100 * gib}, want: "sda"},
		{name: "ssd", rule: agentapi.DiskRule{Type: agentapi.TypeSSD}, want: "sda"},
		{name: "hdd largest", rule: agentapi.DiskRule{Type: agentapi.TypeHDD, Select: agentapi.SelectLargest}, want: "sdb"},
		{name: "nvme", rule: agentapi.DiskRule{Type: agentapi.TypeNVMe}, want: "nvme0n1"},
		{name: "path", rule: agentapi.DiskRule{Path: "/dev/sdb"}, want: "sdb"},
		{name: "bare name", rule: agentapi.DiskRule{Path: "nvme0n1"}, want: "nvme0n1"},
		{name: "udev by-id", rule: agentapi.DiskRule{Path: "/dev/disk/by-id/ata-SAMSUNG_MZ7LH480_S45NNA0M123456"}, want: "sda"},
		{name: "synthesized wwn", rule: agentapi.DiskRule{Path: "/dev/disk/by-id/wwn-0x5002538e40a1b2c3"}, want: "sda"},
		{name: "synthesized virtio", rule: agentapi.DiskRule{Path: "/dev/disk/by-id/virtio-rackboot-disk"}, want: "vda"},
		{name: "removable by path", rule: agentapi.DiskRule{Path: "/dev/sdc"}, want: "sdc"},
		{name: "removable never by rule", rule: agentapi.DiskRule{MinSize: 30 * gib, Type: agentapi.TypeSSD, Select: agentapi.SelectSmallest}, want: "sda"},
		{name: "unknown path", rule: agentapi.DiskRule{Path: "/dev/sdz"}, wantErr: ErrNoDisk},
		{name: "partition path", rule: agentapi.DiskRule{Path: "/dev/sda1"}, wantErr: ErrNoDisk},
		{name: "path of wrong type", rule: agentapi.DiskRule{Path: "/dev/sdb", Type: agentapi.TypeSSD}, wantErr: ErrNoDisk},
		{name: "path too small", rule: agentapi.DiskRule{Path: "/dev/vda", MinSize: 100 * gib}, wantErr: ErrDiskTooSmall},
		{name: "all too small", rule: agentapi.DiskRule{Type: agentapi.TypeNVMe, MinSize: 2 * tib}, wantErr: ErrDiskTooSmall},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := SelectDisk(tt.rule, disks)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("SelectDisk() = %v, %v; want %v", d.Name, err, tt.wantErr)
				}
				t.Logf("error: %v", err)
				return
			}
			if err != nil || d.Name != tt.want {
				t.Fatalf("SelectDisk() = %q, %v; want %q", d.Name, err, tt.want)
			}
		})
	}
	if _, err := SelectDisk(agentapi.DiskRule{Type: agentapi.TypeNVMe}, disks[1:2]); !errors.Is(err, ErrNoDisk) {
		t.Errorf("no nvme among [sda]: %v, want ErrNoDisk", err)
	}
}

func TestCheckIdle(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(f *fakeSys)
		wantErr string // empty: idle
	}{
		{name: "idle", setup: func(*fakeSys) {}},
		{name: "other disk mounted", setup: func(f *fakeSys) {
			f.write("proc/self/mountinfo", "30 1 8:17 / /data rw - ext4 /dev/sdb1 rw")
		}},
		{name: "partition mounted", setup: func(f *fakeSys) {
			f.write("proc/self/mountinfo", "22 27 0:21 / /proc rw - proc proc rw\n31 1 8:2 / /mnt/old\\040root rw - ext4 /dev/sda2 rw")
		}, wantErr: "/dev/sda2 is mounted on /mnt/old root"},
		{name: "btrfs anonymous device", setup: func(f *fakeSys) {
			f.write("proc/self/mountinfo", "40 1 0:45 / /srv rw - btrfs /dev/sda1 rw")
		}, wantErr: "/dev/sda1 is mounted on /srv"},
		{name: "whole disk mounted", setup: func(f *fakeSys) {
			f.write("proc/self/mountinfo", "41 1 8:0 / /media rw - vfat /dev/sda rw")
		}, wantErr: "/dev/sda is mounted"},
		{name: "swap", setup: func(f *fakeSys) {
			f.write("proc/swaps", "Filename\tType\tSize\tUsed\tPriority\n/dev/sda2 partition 1048572 0 -2")
		}, wantErr: "/dev/sda2 is active swap"},
		{name: "lvm holder", setup: func(f *fakeSys) {
			f.write("sys/block/sda/sda2/holders/dm-0", "")
		}, wantErr: "sda2 held by dm-0"},
		{name: "md holder on disk", setup: func(f *fakeSys) {
			f.write("sys/block/sda/holders/md127", "")
		}, wantErr: "sda held by md127"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeSys(t)
			f.disk("sda", "8:0", 480*gib, nil)
			f.part("sda", "sda1", "8:1")
			f.part("sda", "sda2", "8:2")
			f.write("proc/self/mountinfo", "22 27 0:21 / /proc rw,relatime - proc proc rw")
			f.write("proc/swaps", "Filename\tType\tSize\tUsed\tPriority")
			tt.setup(f)
			h := Host{Root: f.root}
			d, err := h.disk("sda")
			if err != nil {
				t.Fatal(err)
			}
			err = h.CheckIdle(d)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("CheckIdle() = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrDiskBusy) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("CheckIdle() = %v, want ErrDiskBusy containing %q", err, tt.wantErr)
			}
		})
	}
}
