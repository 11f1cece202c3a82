package imaging

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path"

	"github.com/diskfs/go-diskfs/backend"
	"github.com/diskfs/go-diskfs/filesystem/fat32"

	"github.com/rackboot/rackboot/agentapi"
)

// minFAT32Clusters is the fewest clusters a FAT32 file system may have: the
// FAT type is decided by the cluster count alone (Microsoft FAT
// specification, "FAT Type Determination"), so with fewer a spec-following
// reader such as UEFI firmware sees FAT16 and rejects the volume. Linux
// trusts the BPB and mounts it anyway, which is why only the ESP must meet
// it.
const minFAT32Clusters = 65525

// minESPSize is the smallest ESP that gets minFAT32Clusters with the
// cluster sizes go-diskfs picks: 512-byte clusters below 260 MiB on
// 512-byte sectors, one 4 KiB sector per cluster on 4Kn disks (hence the
// 260 MiB ESP minimum folklore for 4Kn).
func minESPSize(sectorSize int) agentapi.Size {
	if sectorSize >= 4096 {
		return 260 * mib
	}
	return 33 * mib
}

// makeFAT32 creates a FAT32 file system of at most size bytes at start and
// writes files into it, each in one Write: go-diskfs rewrites the FAT and
// FSInfo on every Write (go-diskfs issue 130), so small writes are very
// slow. A name with "/" (the OpenStack config drive's
// "openstack/latest/user_data") is created with its directories.
func makeFAT32(b backend.Storage, start, size int64, sectorSize int, label string, files []agentapi.File, esp bool) error {
	fs, err := createFAT32(b, start, size, sectorSize, label)
	if err != nil {
		return err
	}
	if esp {
		if n, err := fatClusters(b, start); err != nil {
			return err
		} else if n < minFAT32Clusters {
			return fmt.Errorf("imaging: ESP has %d clusters, firmware needs at least %d: make it at least %v",
				n, minFAT32Clusters, minESPSize(sectorSize))
		}
	}
	dirs := false
	for _, file := range files {
		name := file.Name
		if dir := path.Dir(name); dir != "." {
			if err := fs.Mkdir("/" + dir); err != nil {
				return fmt.Errorf("imaging: FAT32 %s: create directory %s: %w", label, dir, err)
			}
			dirs = true
		}
		f, err := fs.OpenFile("/"+name, os.O_CREATE|os.O_RDWR|os.O_TRUNC)
		if err != nil {
			return fmt.Errorf("imaging: FAT32 %s: create %s: %w", label, name, err)
		}
		if _, err := f.Write([]byte(file.Content)); err != nil {
			f.Close()
			return fmt.Errorf("imaging: FAT32 %s: write %s: %w", label, name, err)
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("imaging: FAT32 %s: close %s: %w", label, name, err)
		}
	}
	if dirs {
		if err := fixDotDot(b, start); err != nil {
			return fmt.Errorf("imaging: FAT32 %s: %w", label, err)
		}
	}
	return nil
}

// createFAT32 runs go-diskfs's mkfs, shrinking the file system a sector at
// a time when the result is inconsistent. go-diskfs v1.9.4 sizes the FAT
// with a closed form that, when it divides exactly, leaves two clusters
// more than the FAT has entries for (a 64 MiB volume on 512-byte sectors:
// "Filesystem has 129024 clusters but only space for 129022 FAT entries",
// which fsck.vfat rejects). Giving up a few trailing sectors of the
// partition is harmless.
func createFAT32(b backend.Storage, start, size int64, sectorSize int, label string) (*fat32.FileSystem, error) {
	var lastErr error
	for try := 0; try < 16; try++ {
		fs, err := fat32.Create(b, size, start, int64(sectorSize), label, false)
		if err != nil {
			return nil, fmt.Errorf("imaging: create FAT32 %s: %w", label, err)
		}
		ok, err := fatConsistent(b, start)
		if err != nil {
			return nil, err
		}
		if ok {
			return fs, nil
		}
		lastErr = fmt.Errorf("more clusters than FAT entries at %d bytes", size)
		size -= int64(sectorSize)
	}
	return nil, fmt.Errorf("imaging: create FAT32 %s: %w", label, lastErr)
}

// bpb holds the BIOS parameter block fields of a FAT32 boot sector that
// determine its geometry (offsets from the Microsoft FAT specification).
type bpb struct {
	bytesPerSector    uint32 // 0x0B
	sectorsPerCluster uint32 // 0x0D
	reserved          uint32 // 0x0E
	fats              uint32 // 0x10
	totalSectors      uint32 // 0x20
	fatSectors        uint32 // 0x24
	rootCluster       uint32 // 0x2C
}

func readBPB(b backend.Storage, start int64) (bpb, error) {
	buf := make([]byte, 512)
	if _, err := b.ReadAt(buf, start); err != nil {
		return bpb{}, fmt.Errorf("imaging: read FAT32 boot sector: %w", err)
	}
	le := binary.LittleEndian
	p := bpb{
		bytesPerSector:    uint32(le.Uint16(buf[0x0B:])),
		sectorsPerCluster: uint32(buf[0x0D]),
		reserved:          uint32(le.Uint16(buf[0x0E:])),
		fats:              uint32(buf[0x10]),
		totalSectors:      le.Uint32(buf[0x20:]),
		fatSectors:        le.Uint32(buf[0x24:]),
		rootCluster:       le.Uint32(buf[0x2C:]),
	}
	if p.bytesPerSector == 0 || p.sectorsPerCluster == 0 {
		return bpb{}, fmt.Errorf("imaging: FAT32 boot sector has no geometry")
	}
	return p, nil
}

func (p bpb) clusters() uint32 {
	return (p.totalSectors - p.reserved - p.fats*p.fatSectors) / p.sectorsPerCluster
}

// fatConsistent reports whether the FAT has an entry for every cluster
// (entries 0 and 1 are reserved).
func fatConsistent(b backend.Storage, start int64) (bool, error) {
	p, err := readBPB(b, start)
	if err != nil {
		return false, err
	}
	entries := p.fatSectors * p.bytesPerSector / 4
	return p.clusters()+2 <= entries, nil
}

func fatClusters(b backend.Storage, start int64) (uint32, error) {
	p, err := readBPB(b, start)
	if err != nil {
		return 0, err
	}
	return p.clusters(), nil
}

// clusterOffset is the byte offset of cluster c (from 2) from the start of
// the file system.
func (p bpb) clusterOffset(c uint32) int64 {
	first := int64(p.reserved) + int64(p.fats)*int64(p.fatSectors)
	return (first + int64(c-2)*int64(p.sectorsPerCluster)) * int64(p.bytesPerSector)
}

// fixDotDot points the ".." entry of every directory in the root
// directory at cluster 0. go-diskfs v1.9.4 writes the root's cluster
// there, but the FAT specification ("FAT Directory Structure": the ".."
// entry of a directory whose parent is the root holds cluster 0) and
// fsck.vfat, which reports "Invalid '..' entry in the second slot", want
// 0. Deeper directories are right as written.
func fixDotDot(b backend.Storage, start int64) error {
	p, err := readBPB(b, start)
	if err != nil {
		return err
	}
	w, err := b.Writable()
	if err != nil {
		return fmt.Errorf("fix '..' entries: %w", err)
	}
	le := binary.LittleEndian
	clusterBytes := int64(p.sectorsPerCluster) * int64(p.bytesPerSector)
	var dirs []uint32
	// The root directory's clusters, along the FAT chain.
	for c, n := p.rootCluster, 0; c >= 2 && c < 0x0FFFFFF8; n++ {
		if n > 1<<16 {
			return errors.New("fix '..' entries: root directory chain does not end")
		}
		buf := make([]byte, clusterBytes)
		if _, err := b.ReadAt(buf, start+p.clusterOffset(c)); err != nil {
			return fmt.Errorf("fix '..' entries: read root directory: %w", err)
		}
		for e := buf; len(e) >= 32; e = e[32:] {
			if e[0] == 0 {
				break // no entries after this one
			}
			// Deleted, long-name part, volume label, or a file.
			if e[0] == 0xE5 || e[11]&0x0F == 0x0F || e[11]&0x08 != 0 || e[11]&0x10 == 0 {
				continue
			}
			dirs = append(dirs, uint32(le.Uint16(e[20:]))<<16|uint32(le.Uint16(e[26:])))
		}
		next := make([]byte, 4)
		if _, err := b.ReadAt(next, start+int64(p.reserved)*int64(p.bytesPerSector)+int64(c)*4); err != nil {
			return fmt.Errorf("fix '..' entries: read FAT: %w", err)
		}
		c = le.Uint32(next) & 0x0FFFFFFF
	}
	for _, d := range dirs {
		// ".." is the second entry of the directory's first sector.
		sector := make([]byte, p.bytesPerSector)
		off := start + p.clusterOffset(d)
		if _, err := b.ReadAt(sector, off); err != nil {
			return fmt.Errorf("fix '..' entries: read directory: %w", err)
		}
		e := sector[32:64]
		if string(e[:11]) != "..         " || e[11]&0x10 == 0 {
			return fmt.Errorf("fix '..' entries: directory at cluster %d has no '..' entry", d)
		}
		if uint32(le.Uint16(e[20:]))<<16|uint32(le.Uint16(e[26:])) != p.rootCluster {
			continue
		}
		le.PutUint16(e[20:], 0)
		le.PutUint16(e[26:], 0)
		if _, err := w.WriteAt(sector, off); err != nil {
			return fmt.Errorf("fix '..' entries: write directory: %w", err)
		}
	}
	return nil
}
