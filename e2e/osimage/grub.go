package osimage

import (
	"encoding/binary"
	"fmt"
	"strings"
)

// Offsets in GRUB 2's i386-pc boot sector, boot.img
// (include/grub/i386/pc/boot.h).
const (
	// bootKernelSector holds the 64-bit LBA of core.img's first sector.
	bootKernelSector = 0x5c
	// bootDrive is the BIOS drive to read core.img from; 0xff means the
	// drive the BIOS booted.
	bootDrive = 0x64
	// bootDriveCheck is a two-byte jump over the code that distrusts the
	// drive number the BIOS passed when it does not look like a hard
	// disk. grub-bios-setup replaces it with two NOPs on hard disks.
	bootDriveCheck = 0x66
	// bootCodeSize is what goes before the MBR's disk signature and
	// partition table, which stay the protective MBR's.
	bootCodeSize = 440
)

// Offsets in core.img's first sector, diskboot.img (grub-core/boot/i386/pc/
// diskboot.S): a block list, read backwards from the end of the sector,
// whose first entry {start LBA uint64, sectors uint16, segment uint16}
// says where the rest of core.img lies.
const (
	coreBlockStart = sectorSize - 12
	coreBlockLen   = sectorSize - 4
)

// patchBootSector returns the first bootCodeSize bytes of GRUB's boot.img
// set up, as grub-bios-setup does, to load core.img from LBA coreLBA of
// the drive the BIOS booted.
func patchBootSector(bootImg []byte, coreLBA uint64) ([]byte, error) {
	if len(bootImg) != sectorSize || bootImg[510] != 0x55 || bootImg[511] != 0xaa {
		return nil, fmt.Errorf("osimage: boot.img: %d bytes, want a 512-byte boot sector", len(bootImg))
	}
	if bootImg[bootDriveCheck] != 0xeb && bootImg[bootDriveCheck] != 0x90 {
		return nil, fmt.Errorf("osimage: boot.img: no drive check jump at %#x: not GRUB 2's i386-pc boot.img", bootDriveCheck)
	}
	out := append([]byte(nil), bootImg[:bootCodeSize]...)
	binary.LittleEndian.PutUint64(out[bootKernelSector:], coreLBA)
	out[bootDrive] = 0xff
	out[bootDriveCheck], out[bootDriveCheck+1] = 0x90, 0x90
	return out, nil
}

// patchCore points core.img's block list at its own sectors when the
// image is written from LBA coreLBA on: the rest of core.img follows its
// first sector. grub-mkimage has already filled in the length and the
// load segment.
func patchCore(core []byte, coreLBA uint64) error {
	if len(core) < 2*sectorSize {
		return fmt.Errorf("osimage: core.img: %d bytes is too small", len(core))
	}
	le := binary.LittleEndian
	if n, want := int(le.Uint16(core[coreBlockLen:])), (len(core)+sectorSize-1)/sectorSize-1; n != want {
		return fmt.Errorf("osimage: core.img: its block list reads %d sectors, the image has %d after the first", n, want)
	}
	le.PutUint64(core[coreBlockStart:], coreLBA+1)
	return nil
}

// The GRUB modules built into the boot images. Each image holds only what
// it needs to find the root file system; the rest (normal, linux, serial
// and what grub.cfg loads) comes from /boot/grub/PLATFORM, as after
// grub-install.
var (
	grubBIOSModules = []string{"biosdisk", "part_gpt", "ext2", "search_fs_uuid"}
	grubEFIModules  = []string{"part_gpt", "ext2", "search_fs_uuid"}
)

// grubLoadCfg is the configuration built into both boot images: find the
// root file system by its UUID and take GRUB's modules and grub.cfg from
// its /boot/grub. GRUB runs it before any module from there is loaded, so
// it uses only commands built in.
func grubLoadCfg(rootFSUUID string) string {
	return fmt.Sprintf("search.fs_uuid %s root\nset prefix=($root)/boot/grub\n", rootFSUUID)
}

// grubCfg is /boot/grub/grub.cfg: boot the kernel and initramfs the
// /vmlinuz and /initrd.img links name, which Debian's kernel packages keep
// pointing at the newest kernel, so a kernel upgrade in the installed
// system needs no boot loader update. The menu goes to the serial port and
// the screen; there is no timeout.
func grubCfg(title, cmdline string) string {
	return fmt.Sprintf(`# Written by rackboot's image builder; no Debian tool manages this file.
set default=0
set timeout=0
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
menuentry %q {
	insmod all_video
	linux /vmlinuz %s
	initrd /initrd.img
}
`, title, cmdline)
}

// debianCmdline is the installed system's kernel command line: the root
// partition by its PARTUUID, which initramfs-tools resolves, and the
// console on the first serial port (the last console= is /dev/console,
// where systemd starts a getty and prints its status).
func debianCmdline(rootPartUUID string) string {
	return strings.Join([]string{"root=PARTUUID=" + rootPartUUID, "ro", "console=tty0", "console=ttyS0,115200"}, " ")
}
