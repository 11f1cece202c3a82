package osimage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// FAT32 boot sector fields (Microsoft FAT specification, "BPB").
const (
	bpbBytsPerSec = 0x0b
	bpbSecPerClus = 0x0d
	bpbRsvdSecCnt = 0x0e
	bpbNumFATs    = 0x10
	bpbHiddSec    = 0x1c
	bpbTotSec32   = 0x20
	bpbFATSz32    = 0x24
	bpbRootClus   = 0x2c
	bpbBkBootSec  = 0x32
	bsVolID       = 0x43
)

// fatDate is 1980-01-01, the FAT epoch, in the FAT date format: every
// timestamp on the ESP, whoever wrote it, gets this date and time 00:00.
const fatDate = 1<<5 | 1

// fatVolume is a FAT32 file system at an offset of an image.
type fatVolume struct {
	r   io.ReaderAt
	w   io.WriterAt // nil when read-only
	off int64       // byte offset of the file system
	bs  []byte
	// From the boot sector.
	sectorSize, clusterSize int64
	fatOff, dataOff         int64
	rootCluster             uint32
	totalSectors, fatSize   int64 // in sectors
	reserved, fats          int64
}

// openFAT reads the boot sector of the FAT32 file system at off. The
// methods that write need r to be an io.WriterAt too.
func openFAT(r io.ReaderAt, off int64) (*fatVolume, error) {
	bs := make([]byte, 512)
	if _, err := r.ReadAt(bs, off); err != nil {
		return nil, fmt.Errorf("osimage: FAT boot sector: %w", err)
	}
	le := binary.LittleEndian
	w, _ := r.(io.WriterAt)
	v := &fatVolume{r: r, w: w, off: off, bs: bs}
	v.sectorSize = int64(le.Uint16(bs[bpbBytsPerSec:]))
	v.clusterSize = v.sectorSize * int64(bs[bpbSecPerClus])
	if bs[510] != 0x55 || bs[511] != 0xaa || v.sectorSize < 512 || v.clusterSize == 0 || le.Uint32(bs[bpbFATSz32:]) == 0 {
		return nil, errors.New("osimage: not a FAT32 boot sector")
	}
	v.reserved, v.fats = int64(le.Uint16(bs[bpbRsvdSecCnt:])), int64(bs[bpbNumFATs])
	v.totalSectors, v.fatSize = int64(le.Uint32(bs[bpbTotSec32:])), int64(le.Uint32(bs[bpbFATSz32:]))
	v.fatOff = off + v.reserved*v.sectorSize
	v.dataOff = v.fatOff + v.fats*v.fatSize*v.sectorSize
	v.rootCluster = le.Uint32(bs[bpbRootClus:])
	return v, nil
}

// clusters is the number of data clusters.
func (v *fatVolume) clusters() int64 {
	return (v.totalSectors - v.reserved - v.fats*v.fatSize) * v.sectorSize / v.clusterSize
}

// fatEntries is the number of entries a FAT has room for, the first two
// of which are reserved.
func (v *fatVolume) fatEntries() int64 { return v.fatSize * v.sectorSize / 4 }

// setBPB writes the hidden sectors (the partition's first LBA, which
// boot code such as SYSLINUX's adds to its sector numbers and which
// go-diskfs leaves 0) and the volume ID (go-diskfs makes it 0 in
// reproducible mode) into the boot sector and its backup.
func (v *fatVolume) setBPB(hidden, volID uint32) error {
	le := binary.LittleEndian
	le.PutUint32(v.bs[bpbHiddSec:], hidden)
	le.PutUint32(v.bs[bsVolID:], volID)
	return v.writeBootSectors()
}

// syncBackup rereads the boot sector and copies it to the backup boot
// sector, after SYSLINUX wrote its boot code into the primary only:
// fsck.vfat reports boot sectors that differ.
func (v *fatVolume) syncBackup() error {
	if _, err := v.r.ReadAt(v.bs, v.off); err != nil {
		return fmt.Errorf("osimage: FAT boot sector: %w", err)
	}
	return v.writeBootSectors()
}

func (v *fatVolume) writeBootSectors() error {
	if v.w == nil {
		return errors.New("osimage: FAT volume opened read-only")
	}
	if _, err := v.w.WriteAt(v.bs, v.off); err != nil {
		return fmt.Errorf("osimage: FAT boot sector: %w", err)
	}
	if bk := int64(binary.LittleEndian.Uint16(v.bs[bpbBkBootSec:])); bk != 0 {
		if _, err := v.w.WriteAt(v.bs, v.off+bk*v.sectorSize); err != nil {
			return fmt.Errorf("osimage: FAT backup boot sector: %w", err)
		}
	}
	return nil
}

// next returns the FAT entry of cluster c.
func (v *fatVolume) next(c uint32) (uint32, error) {
	var b [4]byte
	if _, err := v.r.ReadAt(b[:], v.fatOff+int64(c)*4); err != nil {
		return 0, fmt.Errorf("osimage: FAT: %w", err)
	}
	return binary.LittleEndian.Uint32(b[:]) & 0x0fffffff, nil
}

func (v *fatVolume) clusterOff(c uint32) int64 {
	return v.dataOff + int64(c-2)*v.clusterSize
}

// fixTimes sets the creation, access and modification times of every
// directory entry (files, directories, "." and "..", the volume label) to
// the FAT epoch: go-diskfs and mtools date what they write with the time
// of the build, and this makes the file system depend on its content only.
// It also points the ".." entries of the root's subdirectories to cluster
// 0, as the FAT specification wants and fsck.vfat checks; go-diskfs points
// them to the root's cluster.
func (v *fatVolume) fixTimes() error {
	if v.w == nil {
		return errors.New("osimage: FAT volume opened read-only")
	}
	return v.fixDir(v.rootCluster, 0, map[uint32]bool{})
}

// fixDir fixes the directory starting at cluster first, whose parent
// starts at cluster parent (0 for the root).
func (v *fatVolume) fixDir(first, parent uint32, seen map[uint32]bool) error {
	le := binary.LittleEndian
	buf := make([]byte, v.clusterSize)
	var subdirs []uint32
	for c := first; c >= 2 && c < 0x0ffffff8; {
		if seen[c] {
			return fmt.Errorf("osimage: FAT: cluster %d is in two chains", c)
		}
		seen[c] = true
		off := v.clusterOff(c)
		if _, err := v.r.ReadAt(buf, off); err != nil {
			return fmt.Errorf("osimage: FAT directory: %w", err)
		}
		end := false
		for i := 0; i+32 <= len(buf); i += 32 {
			e := buf[i : i+32]
			if e[0] == 0 {
				end = true
				break
			}
			if e[0] == 0xe5 || e[11]&0x3f == 0x0f { // deleted, part of a long name
				continue
			}
			e[13] = 0                     // creation time, tenths of a second
			le.PutUint16(e[14:], 0)       // creation time
			le.PutUint16(e[16:], fatDate) // creation date
			le.PutUint16(e[18:], fatDate) // last access date
			le.PutUint16(e[22:], 0)       // write time
			le.PutUint16(e[24:], fatDate) // write date
			switch {
			case string(e[:11]) == "..         " && parent == v.rootCluster:
				le.PutUint16(e[20:], 0)
				le.PutUint16(e[26:], 0)
			case e[11]&0x10 != 0 && e[0] != '.':
				subdirs = append(subdirs, uint32(le.Uint16(e[20:]))<<16|uint32(le.Uint16(e[26:])))
			}
		}
		if _, err := v.w.WriteAt(buf, off); err != nil {
			return fmt.Errorf("osimage: FAT directory: %w", err)
		}
		if end {
			break
		}
		var err error
		if c, err = v.next(c); err != nil {
			return err
		}
	}
	for _, d := range subdirs {
		if err := v.fixDir(d, first, seen); err != nil {
			return err
		}
	}
	return nil
}
