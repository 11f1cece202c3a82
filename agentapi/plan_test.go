package agentapi

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const testSHA = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestPlanJSON(t *testing.T) {
	in := `{
	  "disk": {"path": "/dev/disk/by-id/nvme-X", "select": "largest", "min_size": "100GiB", "type": "nvme"},
	  "partitions": [
	    {"name": "esp", "type": "esp", "size": "512MiB"},
	    {"name": "root", "type": "linux-root-x86-64", "size": "20G", "content": "image"},
	    {"name": "config", "type": "linux", "size": 8388608, "content": "config-drive"},
	    {"name": "data", "type": "linux", "size": "rest", "preserve": true}
	  ],
	  "image": {"url": "http://10.0.0.1/images/os.img.zst", "sha256": "` + testSHA + `", "format": "zstd", "kind": "partitions", "size": 1073741824, "raw_size": 2147483648},
	  "config_drive": [{"name": "meta-data", "content": "instance-id: i\n"}]
	}`
	var p Plan
	dec := json.NewDecoder(strings.NewReader(in))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		t.Fatal(err)
	}
	want := Plan{
		Disk: DiskRule{Path: "/dev/disk/by-id/nvme-X", Select: "largest", MinSize: 100 * gib, Type: "nvme"},
		Partitions: []Partition{
			{Name: "esp", Type: "esp", Size: 512 * mib},
			{Name: "root", Type: "linux-root-x86-64", Size: 20 * gib, Content: ContentImage},
			{Name: "config", Type: "linux", Size: 8 * mib, Content: ContentConfigDrive},
			{Name: "data", Type: "linux", Size: Rest, Preserve: true},
		},
		Image:       &Image{URL: "http://10.0.0.1/images/os.img.zst", SHA256: testSHA, Format: FormatZstd, Kind: KindPartitions, Size: gib, RawSize: 2 * gib},
		ConfigDrive: []File{{Name: "meta-data", Content: "instance-id: i\n"}},
	}
	if diff := cmp.Diff(want, p); diff != "" {
		t.Fatalf("decoded plan (-want +got):\n%s", diff)
	}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	// The plan survives a round trip, as the appliance encodes it.
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var back Plan
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(p, back); diff != "" {
		t.Fatalf("round trip (-want +got):\n%s", diff)
	}
}

func TestPlanValidate(t *testing.T) {
	img := &Image{URL: "http://x/os.img", SHA256: testSHA}
	part := func(name, typ string, size Size) Partition { return Partition{Name: name, Type: typ, Size: size} }
	tests := []struct {
		name    string
		plan    Plan
		wantErr string // substring; empty means valid
	}{
		{name: "empty plan", plan: Plan{}},
		{name: "whole disk image", plan: Plan{Image: img}},
		{name: "typical", plan: Plan{Image: img, Partitions: []Partition{
			part("esp", "esp", 512*mib), part("bios", "bios-boot", mib), part("swap", "swap", gib),
			{Name: "root", Type: "linux-root", Size: Rest, Content: ContentImage},
		}}},
		{name: "type guid", plan: Plan{Partitions: []Partition{part("x", "e6d6d379-f507-44c2-a23c-238f2a3df928", mib)}}},
		{name: "bad select", plan: Plan{Disk: DiskRule{Select: "fastest"}}, wantErr: "select"},
		{name: "bad disk type", plan: Plan{Disk: DiskRule{Type: "tape"}}, wantErr: "disk type"},
		{name: "no name", plan: Plan{Partitions: []Partition{part("", "linux", mib)}}, wantErr: "missing name"},
		{name: "long name", plan: Plan{Partitions: []Partition{part(strings.Repeat("n", 37), "linux", mib)}}, wantErr: "36"},
		{name: "duplicate name", plan: Plan{Partitions: []Partition{part("a", "linux", mib), part("a", "swap", mib)}}, wantErr: "duplicate"},
		{name: "unknown type", plan: Plan{Partitions: []Partition{part("a", "ntfs", mib)}}, wantErr: "unknown partition type"},
		{name: "zero size", plan: Plan{Partitions: []Partition{part("a", "linux", 0)}}, wantErr: "size"},
		{name: "two rest", plan: Plan{Partitions: []Partition{part("a", "linux", Rest), part("b", "linux", Rest)}}, wantErr: "rest"},
		{name: "unknown content", plan: Plan{Partitions: []Partition{{Name: "a", Type: "linux", Size: mib, Content: "ext4"}}}, wantErr: "content"},
		{name: "preserve with content", plan: Plan{Partitions: []Partition{{Name: "a", Type: "linux", Size: mib, Content: ContentFAT32, Preserve: true}}}, wantErr: "preserved"},
		{name: "image partition without image", plan: Plan{Partitions: []Partition{{Name: "a", Type: "linux", Size: mib, Content: ContentImage}}}, wantErr: "no image"},
		{name: "two image partitions", plan: Plan{Image: img, Partitions: []Partition{
			{Name: "a", Type: "linux", Size: mib, Content: ContentImage}, {Name: "b", Type: "linux", Size: mib, Content: ContentImage},
		}}, wantErr: "at most one"},
		{name: "files without drive", plan: Plan{ConfigDrive: []File{{Name: "meta-data"}}}, wantErr: "no config-drive"},
		{name: "bad file name", plan: Plan{
			Partitions:  []Partition{{Name: "c", Type: "linux", Size: mib, Content: ContentConfigDrive}},
			ConfigDrive: []File{{Name: "../etc/passwd"}},
		}, wantErr: "file name"},
		{name: "openstack drive", plan: Plan{
			Partitions: []Partition{{Name: "c", Type: "linux", Size: mib, Content: ContentConfigDrive, Label: OpenStackDriveLabel}},
			ConfigDrive: []File{{Name: "openstack/latest/meta_data.json"}, {Name: "openstack/latest/user_data"},
				{Name: "openstack/latest/network_data.json"}},
		}},
		{name: "file and directory", plan: Plan{
			Partitions:  []Partition{{Name: "c", Type: "linux", Size: mib, Content: ContentConfigDrive}},
			ConfigDrive: []File{{Name: "openstack/latest/user_data"}, {Name: "openstack"}},
		}, wantErr: "inside file"},
		{name: "names differing in case", plan: Plan{
			Partitions:  []Partition{{Name: "c", Type: "linux", Size: mib, Content: ContentConfigDrive}},
			ConfigDrive: []File{{Name: "user-data"}, {Name: "User-Data"}},
		}, wantErr: "twice"},
		{name: "not a FAT name", plan: Plan{
			Partitions:  []Partition{{Name: "c", Type: "linux", Size: mib, Content: ContentConfigDrive}},
			ConfigDrive: []File{{Name: "openstack/late:st/user_data"}},
		}, wantErr: "FAT long name"},
		{name: "absolute file name", plan: Plan{
			Partitions:  []Partition{{Name: "c", Type: "linux", Size: mib, Content: ContentConfigDrive}},
			ConfigDrive: []File{{Name: "/user-data"}},
		}, wantErr: "relative path"},
		{name: "deep file name", plan: Plan{
			Partitions:  []Partition{{Name: "c", Type: "linux", Size: mib, Content: ContentConfigDrive}},
			ConfigDrive: []File{{Name: "a/b/c/d/e/f"}},
		}, wantErr: "relative path"},
		{name: "bad label", plan: Plan{Partitions: []Partition{{Name: "c", Type: "linux", Size: mib, Content: ContentFAT32, Label: "my label"}}}, wantErr: "label"},
		{name: "config-2 label on another partition", plan: Plan{Partitions: []Partition{{Name: "c", Type: "esp", Size: mib, Label: OpenStackDriveLabel}}}, wantErr: "label"},
		{name: "no url", plan: Plan{Image: &Image{SHA256: testSHA}}, wantErr: "url"},
		{name: "short sha", plan: Plan{Image: &Image{URL: "http://x", SHA256: "abc"}}, wantErr: "sha256"},
		{name: "bad format", plan: Plan{Image: &Image{URL: "http://x", SHA256: testSHA, Format: "bz2"}}, wantErr: "format"},
		{name: "bad kind", plan: Plan{Image: &Image{URL: "http://x", SHA256: testSHA, Kind: "iso"}}, wantErr: "kind"},
		{name: "whole disk with image partition", plan: Plan{Image: &Image{URL: "http://x", SHA256: testSHA, Kind: KindWholeDisk},
			Partitions: []Partition{{Name: "r", Type: "linux", Size: mib, Content: ContentImage}}}, wantErr: "whole-disk"},
		{name: "partition image without partition", plan: Plan{Image: &Image{URL: "http://x", SHA256: testSHA, Kind: KindPartitions}}, wantErr: "no partition"},
		{name: "negative raw size", plan: Plan{Image: &Image{URL: "http://x", SHA256: testSHA, RawSize: -1}}, wantErr: "size"},
		{name: "chunked with peers", plan: Plan{Image: &Image{URL: "http://x/a.rbidx", SHA256: testSHA, Format: FormatChunked, Chunks: "http://x/chunks",
			Peers: &PeerSettings{Port: 8090, LingerMS: 1000}}}},
		{name: "peers of a streamed image", plan: Plan{Image: &Image{URL: "http://x", SHA256: testSHA, Format: FormatZstd, Peers: &PeerSettings{Port: 8090}}}, wantErr: "peers are for format"},
		{name: "peers without a port", plan: Plan{Image: &Image{URL: "http://x/a.rbidx", SHA256: testSHA, Format: FormatChunked, Chunks: "http://x/chunks",
			Peers: &PeerSettings{}}}, wantErr: "peers: port 0"},
		{name: "negative linger", plan: Plan{Image: &Image{URL: "http://x/a.rbidx", SHA256: testSHA, Format: FormatChunked, Chunks: "http://x/chunks",
			Peers: &PeerSettings{Port: 1, LingerMS: -1}}}, wantErr: "linger_ms -1"},
		{name: "duplicate file", plan: Plan{
			Partitions:  []Partition{{Name: "c", Type: "linux", Size: mib, Content: ContentConfigDrive}},
			ConfigDrive: []File{{Name: "a"}, {Name: "a"}},
		}, wantErr: "twice"},
		{name: "file not utf-8", plan: Plan{
			Partitions:  []Partition{{Name: "c", Type: "linux", Size: mib, Content: ContentConfigDrive}},
			ConfigDrive: []File{{Name: "a", Content: "\xff"}},
		}, wantErr: "UTF-8"},
		{name: "ext4 partition", plan: Plan{Partitions: []Partition{{Name: "d", Type: "linux", Size: mib, Filesystem: FilesystemExt4, Preserve: true}}}},
		{name: "vfat partition", plan: Plan{Partitions: []Partition{{Name: "d", Type: "linux", Size: mib, Content: ContentFAT32, Filesystem: FilesystemVFAT}}}},
		{name: "vfat without fat32", plan: Plan{Partitions: []Partition{{Name: "d", Type: "linux", Size: mib, Filesystem: FilesystemVFAT}}}, wantErr: "vfat"},
		{name: "ext4 on image", plan: Plan{Image: img, Partitions: []Partition{{Name: "d", Type: "linux", Size: mib, Content: ContentImage, Filesystem: FilesystemExt4}}}, wantErr: "file system"},
		{name: "unknown file system", plan: Plan{Partitions: []Partition{{Name: "d", Type: "linux", Size: mib, Filesystem: "btrfs"}}}, wantErr: "file system"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.plan.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrInvalidPlan) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate() = %v, want ErrInvalidPlan containing %q", err, tt.wantErr)
			}
		})
	}
}
