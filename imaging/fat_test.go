package imaging

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/google/go-cmp/cmp"

	"github.com/rackboot/rackboot/agentapi"
)

// TestMakeFAT32 creates FAT32 file systems of several sizes directly in an
// image file and checks them with fsck.vfat. 64 MiB on 512-byte sectors is
// the size where go-diskfs v1.9.4 alone makes a FAT two entries short.
func TestMakeFAT32(t *testing.T) {
	files := []agentapi.File{
		{Name: "meta-data", Content: "instance-id: i-1\n"},
		{Name: "user-data", Content: "#cloud-config\n"},
		{Name: "network-config", Content: "version: 2\n"},
	}
	for _, tt := range []struct {
		ss   int
		size int64
	}{{512, 8 * mib}, {512, 64 * mib}, {512, 33 * mib}, {4096, 8 * mib}, {4096, 64 * mib}} {
		t.Run(fmt.Sprintf("%d/%s", tt.ss, agentapi.HumanBytes(tt.size)), func(t *testing.T) {
			p := newDisk(t, tt.size+2*mib)
			b, err := file.OpenFromPath(p, false)
			if err != nil {
				t.Fatal(err)
			}
			if err := makeFAT32(b, mib, tt.size, tt.ss, "CIDATA", files, false); err != nil {
				t.Fatal(err)
			}
			if ok, err := fatConsistent(b, mib); !ok || err != nil {
				t.Errorf("FAT inconsistent: %v", err)
			}
			b.Close()
			fsckVfatAt(t, p, "CIDATA", mib, tt.size)
			label, got := fatFilesAt(t, p, tt.ss, mib, tt.size)
			if label != "CIDATA" {
				t.Errorf("label %q", label)
			}
			if diff := cmp.Diff(fileMap(files), got); diff != "" {
				t.Errorf("files (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMakeFAT32RefusesSmallESP(t *testing.T) {
	p := newDisk(t, 34*mib)
	b, err := file.OpenFromPath(p, false)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	// 32 MiB on 4Kn is 8k clusters: Linux would mount it, firmware would not.
	if err := makeFAT32(b, mib, 32*mib, 4096, "ESP", nil, true); err == nil {
		t.Fatal("makeFAT32 accepted an ESP firmware cannot read")
	}
	if err := makeFAT32(b, mib, 33*mib, 512, "ESP", nil, true); err != nil {
		t.Fatalf("33 MiB ESP on 512-byte sectors: %v", err)
	}
}

// TestMakeFAT32Directories writes an OpenStack config drive, whose files
// are in directories, and checks it with fsck.vfat: go-diskfs alone points
// the ".." entry of /openstack at the root's cluster instead of 0, which
// fsck.vfat reports as invalid.
func TestMakeFAT32Directories(t *testing.T) {
	files, err := agentapi.NoCloud{InstanceID: "i-1", Hostname: "clear-01", Format: agentapi.DriveOpenStack,
		SSHKeys: []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5 ops@lab"},
		Network: &agentapi.Network{MAC: "52:54:00:ab:cd:ef", Address: "10.0.0.7/24", Gateway: "10.0.0.1"}}.Render()
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, agentapi.File{Name: "openstack/content/0000", Content: "x"}, agentapi.File{Name: "ec2/latest/meta-data.json", Content: "{}"})
	for _, ss := range []int{512, 4096} {
		t.Run(fmt.Sprint(ss), func(t *testing.T) {
			const size = 16 * mib
			p := newDisk(t, size+2*mib)
			b, err := file.OpenFromPath(p, false)
			if err != nil {
				t.Fatal(err)
			}
			if err := makeFAT32(b, mib, size, ss, agentapi.OpenStackDriveLabel, files, false); err != nil {
				t.Fatal(err)
			}
			b.Close()
			fsckVfatAt(t, p, agentapi.OpenStackDriveLabel, mib, size)
			label, got := fatFilesAt(t, p, ss, mib, size)
			if label != "config-2" {
				t.Errorf("label %q, want config-2 in lower case (micro-config-drive looks for that spelling)", label)
			}
			if diff := cmp.Diff(fileMap(files), got); diff != "" {
				t.Errorf("files (-want +got):\n%s", diff)
			}
			if blkid, err := exec.LookPath("blkid"); err == nil {
				out, err := exec.Command(blkid, "-p", "-o", "export", extract(t, p, mib, size)).Output()
				if err != nil || !strings.Contains(string(out), "\nLABEL=config-2\n") || !strings.Contains(string(out), "\nTYPE=vfat\n") {
					t.Errorf("blkid -p: %v\n%s", err, out)
				}
			}
		})
	}
}
