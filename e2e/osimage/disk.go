package osimage

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path"
	"strconv"
	"strings"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/backend"
	"github.com/diskfs/go-diskfs/disk"
	"github.com/diskfs/go-diskfs/filesystem/fat32"
)

// diskContent is what goes into an image.
type diskContent struct {
	version  string
	uki      []byte // EFI/BOOT/BOOTX64.EFI
	kernel   []byte // for SYSLINUX
	initrd   []byte
	rootfs   []byte // the squashfs of the root partition
	gptmbr   []byte // SYSLINUX's GPT-aware MBR boot code
	syslinux string // the SYSLINUX installer (mtools flavour)
}

// writeDisk creates the raw image at name (which must not exist): the GPT,
// the ESP with its files and SYSLINUX, the MBR boot code and the root
// partition.
func writeDisk(ctx context.Context, name string, c diskContent) error {
	if len(c.rootfs) > RootSize {
		return fmt.Errorf("osimage: the root file system is %d bytes, the partition %d", len(c.rootfs), RootSize)
	}
	if len(c.gptmbr) < 440 {
		return fmt.Errorf("osimage: gptmbr.bin is %d bytes, want 440", len(c.gptmbr))
	}
	if err := writeESP(name, c); err != nil {
		return err
	}
	// SYSLINUX writes its boot sector, and ldlinux.sys and ldlinux.c32
	// into the root directory, into the FAT file system at the offset,
	// through mtools: nothing is mounted. ldlinux.sys finds
	// /syslinux/syslinux.cfg on its search path. No --directory: with
	// Debian 12's mtools the installer's mmove into it crashes.
	cmd := exec.CommandContext(ctx, c.syslinux, "--install", "--offset", strconv.Itoa(espStart), name)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("osimage: syslinux: %w: %s", err, strings.TrimSpace(string(out)))
	}

	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("osimage: %w", err)
	}
	defer f.Close()
	// The MBR boot code goes before the protective MBR's partition
	// entries: gptmbr.bin finds the GPT partition with the legacy BIOS
	// bootable attribute and hands over to its boot sector.
	if _, err := f.WriteAt(c.gptmbr[:440], 0); err != nil {
		return fmt.Errorf("osimage: write MBR boot code: %w", err)
	}
	v, err := openFAT(f, espStart)
	if err != nil {
		return err
	}
	if err := v.syncBackup(); err != nil {
		return err
	}
	if err := v.fixTimes(); err != nil {
		return err
	}
	if _, err := f.WriteAt(c.rootfs, rootStart); err != nil {
		return fmt.Errorf("osimage: write root file system: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("osimage: %w", err)
	}
	return nil
}

// writeESP creates the image file with its GPT and the ESP's file system
// and files, and fixes the boot sector for SYSLINUX.
func writeESP(name string, c diskContent) error {
	d, err := diskfs.Create(name, DiskSize, diskfs.SectorSize512)
	if err != nil {
		return fmt.Errorf("osimage: create %s: %w", name, err)
	}
	err = fillESP(d, c)
	if cerr := d.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("osimage: %w", cerr)
	}
	if err != nil {
		return err
	}
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("osimage: %w", err)
	}
	defer f.Close()
	v, err := openFAT(f, espStart)
	if err != nil {
		return err
	}
	if err := v.setBPB(espStart/sectorSize, nameSerial(c.version, "esp")); err != nil {
		return err
	}
	return f.Close()
}

// fillESP writes the GPT, creates the ESP's file system and writes its
// files.
func fillESP(d *disk.Disk, c diskContent) error {
	if err := d.Partition(table(c.version)); err != nil {
		return fmt.Errorf("osimage: write GPT: %w", err)
	}
	// Partitions built in code do not get the table's sector size until
	// the table is read back (go-diskfs issue 405).
	if _, err := d.GetPartitionTable(); err != nil {
		return fmt.Errorf("osimage: read GPT back: %w", err)
	}
	fs, err := createFAT32(d.Backend, espStart, ESPSize, "ESP")
	if err != nil {
		return err
	}
	files := []struct {
		name string
		data []byte
	}{
		{"EFI/BOOT/BOOTX64.EFI", c.uki},
		{"syslinux/syslinux.cfg", []byte(syslinuxCfg())},
		{"syslinux/vmlinuz", c.kernel},
		{"syslinux/initrd.img", c.initrd},
	}
	for _, file := range files {
		if err := fs.Mkdir(path.Dir(file.name)); err != nil {
			return fmt.Errorf("osimage: ESP: mkdir %s: %w", path.Dir(file.name), err)
		}
		h, err := fs.OpenFile(file.name, os.O_CREATE|os.O_RDWR)
		if err != nil {
			return fmt.Errorf("osimage: ESP: create %s: %w", file.name, err)
		}
		// One Write per file: go-diskfs rewrites the FAT on every Write
		// (go-diskfs issue 130).
		if _, err := h.Write(file.data); err != nil {
			h.Close()
			return fmt.Errorf("osimage: ESP: write %s: %w", file.name, err)
		}
		if err := h.Close(); err != nil {
			return fmt.Errorf("osimage: ESP: close %s: %w", file.name, err)
		}
	}
	return nil
}

// createFAT32 runs go-diskfs's mkfs in reproducible mode (volume ID 0,
// which setBPB replaces), shrinking the file system a sector at a time
// while its FAT has fewer entries than it has clusters: go-diskfs v1.9.4
// sizes the FAT with a closed form that, when it divides exactly, leaves
// two clusters without an entry (a 64 MiB volume: 129024 clusters, 129024
// entries of which two are reserved). mtools, and so the SYSLINUX
// installer, refuse such a file system ("Too few sectors in FAT"), and
// fsck.vfat too. imaging works around the same bug the same way.
func createFAT32(b backend.Storage, start, size int64, label string) (*fat32.FileSystem, error) {
	for range 16 {
		fs, err := fat32.Create(b, size, start, sectorSize, label, true)
		if err != nil {
			return nil, fmt.Errorf("osimage: create FAT32 %s: %w", label, err)
		}
		v, err := openFAT(b, start)
		if err != nil {
			return nil, err
		}
		if v.clusters()+2 <= v.fatEntries() {
			return fs, nil
		}
		size -= sectorSize
	}
	return nil, fmt.Errorf("osimage: create FAT32 %s: no size near %d bytes gives a consistent FAT", label, size)
}
