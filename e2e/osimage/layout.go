package osimage

import (
	"fmt"

	"github.com/diskfs/go-diskfs/partition/gpt"
)

// The partitions of an image, by GPT name. An installer appending its own
// partitions after the image's must not reuse these names.
const (
	ESPPartition = "esp"
	// RootPartition is named after the root partition type of the
	// Discoverable Partitions Specification, as systemd-repart names it.
	RootPartition = "root-x86-64"
)

// Geometry of an image: 512-byte sectors, partitions on 1 MiB boundaries.
const (
	sectorSize = 512
	mib        = 1 << 20
	espStart   = mib
	// ESPSize holds the kernel twice (in the unified image and for
	// SYSLINUX) with room to spare, and is above the 33 MiB a FAT32 file
	// system with 512-byte clusters needs to have the 65525 clusters that
	// make it FAT32 to a spec-following reader such as UEFI firmware.
	ESPSize   = 64 * mib
	rootStart = espStart + ESPSize
	// RootSize holds the squashfs root (about 1 MiB).
	RootSize = 16 * mib
	// DiskSize is the size of every image: the partitions, the primary
	// GPT in the first MiB and the backup GPT in the last.
	DiskSize = rootStart + RootSize + mib
)

// GPT partition attributes (UEFI spec 2.10, table 5.8; Discoverable
// Partitions Specification).
const (
	// attrLegacyBIOSBootable marks the partition SYSLINUX's gptmbr.bin
	// boots from.
	attrLegacyBIOSBootable = 1 << 2
	// attrReadOnly tells systemd and others to mount the partition
	// read-only, which squashfs is anyway.
	attrReadOnly = 1 << 60
)

// table returns the GPT of version's image. Every GUID derives from the
// version name, so a build is reproducible and two versions never share a
// PARTUUID.
func table(version string) *gpt.Table {
	part := func(index int, start, size int64, typ gpt.Type, name string, attrs uint64) *gpt.Partition {
		return &gpt.Partition{
			Index: index,
			Start: uint64(start / sectorSize), End: uint64((start+size)/sectorSize - 1),
			Type: typ, Name: name, GUID: nameUUID(version, name), Attributes: attrs,
		}
	}
	return &gpt.Table{
		LogicalSectorSize:  sectorSize,
		PhysicalSectorSize: sectorSize,
		ProtectiveMBR:      true,
		GUID:               nameUUID(version, "disk"),
		Partitions: []*gpt.Partition{
			part(1, espStart, ESPSize, gpt.EFISystemPartition, ESPPartition, attrLegacyBIOSBootable),
			part(2, rootStart, RootSize, gpt.LinuxRootX86_64, RootPartition, attrReadOnly),
		},
	}
}

// cmdline is the kernel command line of every image: the console on the
// first serial port (the last console= is /dev/console, where init
// prints), kernel messages below warnings kept off it so they do not cut
// the marker lines, and a reboot right after a panic, which ends a QEMU
// machine started with -no-reboot instead of leaving it hanging.
func cmdline() string {
	return "console=tty0 console=ttyS0,115200 quiet panic=-1"
}

// syslinuxCfg loads the kernel and initramfs of the ESP's syslinux
// directory. SERIAL must be the first directive; PROMPT 0 with no UI
// boots the default at once.
func syslinuxCfg() string {
	return fmt.Sprintf(`SERIAL 0 115200
PROMPT 0
TIMEOUT 0
DEFAULT demo
LABEL demo
	LINUX /syslinux/vmlinuz
	INITRD /syslinux/initrd.img
	APPEND %s
`, cmdline())
}
