package imaging

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/diskfs/go-diskfs/partition/gpt"

	"github.com/rackboot/rackboot/agentapi"
)

// PreservedAttribute is the GPT partition attribute bit (bit 58) the agent
// sets on every partition it creates or keeps for a plan partition with
// preserve: true. The next install reads it back from the disk, so a
// preserved partition stays protected when the layout that preserved it is
// edited away, and wherever the disk goes: the knowledge is on the disk,
// not in the appliance's database.
//
// Why an attribute bit: the partition's name (PARTLABEL) is the admin's
// and the installed system's (cloud-init mounts by it), and its type and
// PARTUUID identify it to the OS; an attribute bit changes none of them.
// go-diskfs reads and writes the 64-bit attribute field of each entry
// (gpt.Partition.Attributes), and sgdisk and parted keep bits they do not
// know. Bits 48-63 are type-specific (UEFI 2.10, table 5-9); bit 58 is
// claimed by none of the schemes in use on the types rackboot writes: the
// Discoverable Partitions Specification uses 59, 60 and 63, Microsoft's
// basic data type 60-63, Chrome OS kernels 48-57.
const PreservedAttribute = 1 << 58

// PreservedError is the error of an install that would destroy a
// preserved partition of the disk: one the previous install created with
// preserve: true (PreservedAttribute), or one the plan preserves but
// cannot keep as it is. It wraps ErrLayoutChanged; nothing has been
// written when it is returned. Plan.WipeData lets one install go on.
type PreservedError struct {
	// Name is the partition's GPT name, Size its size in bytes.
	Name string
	Size int64
	// Filesystem is what the agent found in it: agentapi.FilesystemExt4
	// (ext2, ext3 or ext4), FilesystemXFS, FilesystemSwap,
	// FilesystemVFAT, or "" for none of these.
	Filesystem string
	// Change says what the plan would do to it.
	Change string
	// imageWritten: found only after a whole-disk image of unknown size
	// was streamed (up to the partition, never into it); the disk keeps
	// its old partition table.
	imageWritten bool
}

func (e *PreservedError) Error() string {
	fs := e.Filesystem
	if fs == "" {
		fs = "no file system the installer recognises"
	}
	written := "nothing was written"
	if e.imageWritten {
		written = "the partition is intact: the image was written before it, the partition table was not"
	}
	return fmt.Sprintf("%v %q (%s, %s): it %s; %s; "+
		"put it back in the host's layout as it was, or let one install destroy it: rackboot reinstall --wipe-data --reason WHY HOST",
		ErrLayoutChanged, e.Name, agentapi.HumanBytes(e.Size), fs, e.Change, written)
}

func (e *PreservedError) Unwrap() error { return ErrLayoutChanged }

// keptConflict is a place error: the layout cannot leave the kept
// partition name where it is.
type keptConflict struct {
	name   string
	change string
}

func (c *keptConflict) Error() string {
	return fmt.Sprintf("%v: %q %s", ErrLayoutChanged, c.name, c.change)
}

func (c *keptConflict) Unwrap() error { return ErrLayoutChanged }

// protect decides, before anything is written, which partitions of the
// disk the install keeps (j.keep) and refuses one that would destroy a
// preserved partition: a partition marked PreservedAttribute that the
// plan drops, renames or no longer preserves, or a partition the plan
// preserves with another type, size or (recognised) file system. With the plan's
// WipeData it gives such partitions up instead, with a warning each.
// Partitions kept where the layout no longer leaves room for them are
// found by place (j.place).
func (j *job) protect(existing *gpt.Table) error {
	j.keep = map[string]*gpt.Partition{}
	if existing == nil {
		return nil
	}
	parts := j.plan.Partitions
	for {
		keep, err := keptPartitions(parts, existing, j.g)
		var c *keptConflict
		if errors.As(err, &c) {
			if err := j.giveUp(existing, c.name, c.change); err != nil {
				return err
			}
			parts = unpreserve(parts, c.name)
			continue
		}
		if err != nil {
			return err
		}
		j.keep = keep
		break
	}
	for _, p := range parts {
		k := j.keep[p.Name]
		if k == nil || p.Filesystem == "" {
			continue
		}
		switch have := j.probe(k); have {
		case p.Filesystem:
		case "":
			// Encrypted, or never formatted (an attempt that failed
			// between the partition table and mkfs): nothing tells
			// which, so it is kept as it is, as always.
			j.log.Warn("preserved partition holds no file system the installer recognises: kept as it is, not formatted",
				"partition", p.Name, "filesystem", p.Filesystem)
		default:
			if err := j.giveUp(existing, p.Name, fmt.Sprintf("would have to become %s, which means formatting it", p.Filesystem)); err != nil {
				return err
			}
			delete(j.keep, p.Name)
		}
	}
	for _, e := range existing.Partitions {
		if e.Type == gpt.Unused || e.Attributes&PreservedAttribute == 0 || j.keep[e.Name] == e || j.givenUp[e.Name] {
			continue
		}
		if err := j.giveUp(existing, e.Name, j.fate(e.Name)); err != nil {
			return err
		}
	}
	return nil
}

// unpreserve returns parts with name no longer preserved, for keeping's
// sake only: the plan itself is unchanged, so its partition is created
// anew, preserved from then on.
func unpreserve(parts []agentapi.Partition, name string) []agentapi.Partition {
	out := make([]agentapi.Partition, len(parts))
	copy(out, parts)
	for i := range out {
		if out[i].Name == name {
			out[i].Preserve = false
		}
	}
	return out
}

// fate says what the plan does to a marked partition it does not keep.
func (j *job) fate(name string) string {
	for _, p := range j.plan.Partitions {
		if p.Name != name {
			continue
		}
		what := "emptied (its first and last MiB zeroed)"
		switch c := p.EffectiveContent(); {
		case c == agentapi.ContentImage:
			what = "overwritten by the image"
		case c == agentapi.ContentConfigDrive:
			what = "formatted as the config drive"
		case c == agentapi.ContentFAT32:
			what = "formatted FAT32"
		case p.Filesystem != "":
			what = "formatted " + p.Filesystem
		}
		return "is no longer preserve: true in the layout; it would be recreated and " + what
	}
	if j.plan.WholeDisk() {
		return "is no longer in the layout (dropped or renamed); the image and the layout would be written over it"
	}
	return "is no longer in the layout (dropped or renamed); the new partition table would remove it"
}

// giveUp refuses the install for the existing partition name, or, with
// the plan's WipeData, logs that it is given up.
func (j *job) giveUp(existing *gpt.Table, name, change string) error {
	e := &PreservedError{Name: name, Change: change, imageWritten: j.image != nil}
	for _, p := range existing.Partitions {
		if p.Name == name && p.Type != gpt.Unused {
			e.Size = int64(p.End-p.Start+1) * j.g.sectorSize
			e.Filesystem = j.probe(p)
			break
		}
	}
	if !j.plan.WipeData {
		return e
	}
	if j.givenUp == nil {
		j.givenUp = map[string]bool{}
	}
	j.givenUp[name] = true
	j.log.Warn("preserved partition given up: the reinstall allows wiping data", "partition", name,
		"size", e.Size, "filesystem", e.Filesystem, "change", change)
	return nil
}

// place runs a placement of the plan's partitions around j.keep. A kept
// partition in the way refuses the install, or with WipeData is given up
// and the placement runs again without it.
func (j *job) place(placement func(keep map[string]*gpt.Partition) ([]slot, error)) ([]slot, error) {
	for {
		slots, err := placement(j.keep)
		var c *keptConflict
		if !errors.As(err, &c) || j.keep[c.name] == nil {
			return slots, err
		}
		t := &gpt.Table{Partitions: []*gpt.Partition{j.keep[c.name]}}
		if err := j.giveUp(t, c.name, c.change); err != nil {
			return nil, err
		}
		delete(j.keep, c.name)
	}
}

// probe names the file system in an existing partition, for messages and
// for the file system a layout preserves.
func (j *job) probe(p *gpt.Partition) string {
	return probeFilesystem(j.f, int64(p.Start)*j.g.sectorSize, int64(p.End-p.Start+1)*j.g.sectorSize)
}

// probeFilesystem recognises the file systems the installer creates by
// their superblock magic: ext2/3/4 (0xEF53 at byte 1080), xfs ("XFSB" at
// 0), swap ("SWAPSPACE2" at the end of the first page, of any page size
// Linux uses) and FAT ("FAT12/16" at 54 or "FAT32" at 82 of a boot
// sector ending in 55 AA). It returns "" for anything else, and when the
// partition cannot be read.
func probeFilesystem(r io.ReaderAt, off, size int64) string {
	at := func(pos int64, n int) []byte {
		if pos+int64(n) > size {
			return nil
		}
		b := make([]byte, n)
		if _, err := r.ReadAt(b, off+pos); err != nil {
			return nil
		}
		return b
	}
	if b := at(1080, 2); b != nil && binary.LittleEndian.Uint16(b) == 0xEF53 {
		return agentapi.FilesystemExt4
	}
	if b := at(0, 4); bytes.Equal(b, []byte("XFSB")) {
		return agentapi.FilesystemXFS
	}
	for _, page := range []int64{4096, 8192, 16384, 65536} {
		if b := at(page-10, 10); bytes.Equal(b, []byte("SWAPSPACE2")) || bytes.Equal(b, []byte("SWAP-SPACE")) {
			return agentapi.FilesystemSwap
		}
	}
	if b := at(0, 512); b != nil && b[510] == 0x55 && b[511] == 0xAA &&
		(bytes.HasPrefix(b[54:], []byte("FAT1")) || bytes.HasPrefix(b[82:], []byte("FAT32"))) {
		return agentapi.FilesystemVFAT
	}
	return ""
}
