package imaging

import (
	"context"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/rackboot/rackboot/agentapi"
)

// TestInstallOpenStackDrive installs a plan whose config drive is
// OpenStack's, as profiles plans it for a version with config_drive:
// openstack: a FAT32 volume labelled config-2 (lower case), its files in
// openstack/latest/, clean for fsck.vfat.
func TestInstallOpenStackDrive(t *testing.T) {
	drive := agentapi.NoCloud{InstanceID: "rackboot-525400abcdef-clear", Hostname: "clear-01", Format: agentapi.DriveOpenStack,
		SSHKeys: []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5 ops@lab"},
		Network: &agentapi.Network{MAC: "52:54:00:ab:cd:ef", Address: "10.0.0.7/24", Gateway: "10.0.0.1", DNS: []string{"10.0.0.1"}}}
	files, err := drive.Render()
	if err != nil {
		t.Fatal(err)
	}
	for _, ss := range []int{512, 4096} {
		t.Run(fmt.Sprint(ss), func(t *testing.T) {
			plan := &agentapi.Plan{
				Partitions: []agentapi.Partition{
					{Name: "esp", Type: "esp", Size: 260 * mib},
					{Name: "root", Type: "linux-root-x86-64", Size: 64 * mib},
					{Name: "config", Type: "linux", Size: 8 * mib, Content: agentapi.ContentConfigDrive, Label: drive.Label()},
				},
				ConfigDrive: files,
			}
			if err := plan.Validate(); err != nil {
				t.Fatal(err)
			}
			p := newDisk(t, gib/2)
			if _, err := testInstaller(t).Install(context.Background(), plan, Target{Path: p, SectorSize: ss}); err != nil {
				t.Fatal(err)
			}
			cfg := partitionByName(t, p, ss, "config")
			fsckVfat(t, p, cfg)
			label, got := fatFiles(t, p, ss, cfg)
			if label != agentapi.OpenStackDriveLabel {
				t.Errorf("config drive label %q, want %s", label, agentapi.OpenStackDriveLabel)
			}
			if diff := cmp.Diff(fileMap(files), got); diff != "" {
				t.Errorf("config drive files (-want +got):\n%s", diff)
			}
		})
	}
}
