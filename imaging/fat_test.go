package imaging

import (
	"fmt"
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
	if err := makeFAT32(b, mib, 32*mib, 512, "CIDATA", []agentapi.File{{Name: "a/b"}}, false); err == nil {
		t.Fatal("makeFAT32 accepted a file in a subdirectory")
	}
	if err := makeFAT32(b, mib, 33*mib, 512, "ESP", nil, true); err != nil {
		t.Fatalf("33 MiB ESP on 512-byte sectors: %v", err)
	}
}
