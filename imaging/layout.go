package imaging

import (
	"errors"
	"github.com/rackboot/rackboot/agentapi"

	"fmt"

	"github.com/diskfs/go-diskfs/partition/gpt"
)

// alignBytes is where every partition starts: a 1 MiB boundary is a
// multiple of every sector size, SSD erase block and RAID stripe in use,
// and what parted, sgdisk and every OS installer default to.
const alignBytes = 1 << 20

// gptEntriesBytes is the size of a GPT partition entry array: 128 entries of
// 128 bytes (UEFI spec 2.10, 5.3.2: at least 16 KiB must be reserved).
const gptEntriesBytes = 128 * 128

// geometry is the usable area of a GPT disk.
type geometry struct {
	sectorSize  int64  // logical sector size in bytes
	sectors     uint64 // whole sectors on the disk
	first, last uint64 // first and last LBA a partition may use
}

// newGeometry returns the geometry of a disk of size bytes with primary and
// backup GPT of 128 entries: LBA 0 protective MBR, LBA 1 header, then the
// entries; the backup entries and header at the end.
func newGeometry(size int64, sectorSize int) (geometry, error) {
	ss := int64(sectorSize)
	if size <= 0 || (sectorSize != 512 && sectorSize != 4096) {
		return geometry{}, fmt.Errorf("%w: %s with %d-byte sectors", ErrDiskTooSmall, agentapi.HumanBytes(size), sectorSize)
	}
	g := geometry{sectorSize: ss, sectors: uint64(size / ss)}
	entries := uint64(gptEntriesBytes / ss)
	g.first = 2 + entries
	if g.sectors < 2*g.first+1 {
		return geometry{}, fmt.Errorf("%w: %s cannot hold a GPT", ErrDiskTooSmall, agentapi.HumanBytes(size))
	}
	g.last = g.sectors - 2 - entries
	return g, nil
}

func (g geometry) align() uint64 { return uint64(alignBytes / g.sectorSize) }

func (g geometry) sectorsFor(s agentapi.Size) uint64 {
	return (uint64(s) + uint64(g.sectorSize) - 1) / uint64(g.sectorSize)
}

func alignUp(v, a uint64) uint64   { return (v + a - 1) / a * a }
func alignDown(v, a uint64) uint64 { return v / a * a }

// slot is a plan partition placed on the disk.
type slot struct {
	agentapi.Partition
	index      int
	start, end uint64 // LBAs, inclusive
	typ        gpt.Type
	guid       string // set for kept partitions: their PARTUUID survives
	attributes uint64
	kept       bool // an existing partition left untouched
}

func (s slot) offset(g geometry) int64 { return int64(s.start) * g.sectorSize }
func (s slot) bytes(g geometry) int64  { return int64(s.end-s.start+1) * g.sectorSize }

// place lays the plan's partitions out in order from LBA from (rounded up
// to 1 MiB), numbering them from firstIndex. Partitions in keep (preserved
// partitions found on the disk, by name) stay exactly where they are, and
// the others flow around them: a partition before a kept one must end
// before it, and a rest partition fills the space up to it. A kept
// partition in the way is a *keptConflict, which wraps ErrLayoutChanged;
// errors wrap ErrDiskTooSmall when the disk is too small. Partitions the
// plan preserves get PreservedAttribute.
func place(parts []agentapi.Partition, g geometry, from uint64, firstIndex int, keep map[string]*gpt.Partition) ([]slot, error) {
	a := g.align()
	next := max(from, g.first) // first free sector
	prev := "the start of the disk"
	if firstIndex > 1 {
		prev = "the image's partitions"
	}
	slots := make([]slot, 0, len(parts))
	for i, p := range parts {
		typ, err := gptType(p.Type)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalidPlan, err)
		}
		s := slot{Partition: p, index: firstIndex + i, typ: typ}
		if s.index > 128 {
			return nil, fmt.Errorf("%w: partition %q would be number %d, a GPT holds 128", ErrInvalidPlan, p.Name, s.index)
		}
		if k := keep[p.Name]; k != nil {
			if k.Start < next {
				return nil, &keptConflict{p.Name, fmt.Sprintf("would be overwritten: it starts at sector %d, and %s would now reach sector %d", k.Start, prev, next-1)}
			}
			if k.End > g.last {
				return nil, &keptConflict{p.Name, fmt.Sprintf("ends at sector %d, past the last usable sector %d", k.End, g.last)}
			}
			s.start, s.end, s.guid, s.attributes, s.kept = k.Start, k.End, k.GUID, k.Attributes|PreservedAttribute, true
			slots = append(slots, s)
			next, prev = k.End+1, fmt.Sprintf("%q", p.Name)
			continue
		}

		// The space this partition may use ends at the next kept
		// partition or at the end of the disk, minus what the partitions
		// between need.
		bound, boundName := g.last, ""
		var need uint64
		for _, q := range parts[i+1:] {
			if k := keep[q.Name]; k != nil {
				bound, boundName = k.Start-1, q.Name
				break
			}
			need += alignUp(g.sectorsFor(q.Size), a)
		}
		cur := alignUp(next, a)
		s.start = cur
		if p.Size == agentapi.Rest {
			switch {
			case need == 0:
				s.end = bound
			case bound+1 >= cur+need:
				s.end = alignDown(bound+1-need, a) - 1
			}
			if s.end < s.start {
				return nil, tooSmall(g, p, boundName)
			}
		} else {
			s.end = s.start + g.sectorsFor(p.Size) - 1
		}
		if p.Preserve {
			s.attributes = PreservedAttribute
		}
		if s.end > bound {
			return nil, tooSmall(g, p, boundName)
		}
		slots = append(slots, s)
		next, prev = s.end+1, fmt.Sprintf("%q", p.Name)
	}
	return slots, nil
}

// placeAppended lays out the partitions a whole-disk image gets behind
// its own, from LBA from. Unless one of them takes the rest of the disk,
// they go to the end of the disk instead, so that the image's last
// partition (by convention its root) can grow into the space between
// (grow is true); cloud-init's growpart and resizefs grow only the last
// partition before free space, and only into free space right behind it.
// The end-of-disk placement is the same at every install on the same
// disk, so preserved partitions stay where they are; a disk laid out the
// older way (right behind the image) keeps that layout.
func placeAppended(parts []agentapi.Partition, g geometry, from uint64, firstIndex int, keep map[string]*gpt.Partition) (slots []slot, grow bool, err error) {
	a := g.align()
	var need uint64
	for _, p := range parts {
		if p.Size == agentapi.Rest {
			slots, err := place(parts, g, from, firstIndex, keep)
			return slots, false, err
		}
		need += alignUp(g.sectorsFor(p.Size), a)
	}
	if need <= g.last+1 {
		if end := alignDown(g.last+1-need, a); end >= alignUp(max(from, g.first), a) {
			slots, err := place(parts, g, end, firstIndex, keep)
			if !errors.Is(err, ErrLayoutChanged) {
				return slots, err == nil, err
			}
		}
	}
	slots, err = place(parts, g, from, firstIndex, keep)
	return slots, false, err
}

func tooSmall(g geometry, p agentapi.Partition, keptName string) error {
	if keptName != "" {
		return &keptConflict{keptName, fmt.Sprintf("would have to move: %q (%v) and the partitions after it no longer fit before it", p.Name, p.Size)}
	}
	return fmt.Errorf("%w: %q (%v) and the partitions after it do not fit on %s",
		ErrDiskTooSmall, p.Name, p.Size, agentapi.HumanBytes(int64(g.sectors)*g.sectorSize))
}

// gptPartitions converts slots to go-diskfs partitions. Size is left zero
// so go-diskfs derives it from Start and End.
func gptPartitions(slots []slot) []*gpt.Partition {
	out := make([]*gpt.Partition, len(slots))
	for i, s := range slots {
		out[i] = &gpt.Partition{
			Index:      s.index,
			Start:      s.start,
			End:        s.end,
			Type:       s.typ,
			Name:       s.Name,
			GUID:       s.guid,
			Attributes: s.attributes,
		}
	}
	return out
}

// keptPartitions finds, for every preserved plan partition, the existing
// partition of the same name on the disk. A preserved partition that does
// not exist yet is simply created. One that exists with another size or
// type, or under a name used twice, cannot be kept safely: the error is
// a *keptConflict, which wraps ErrLayoutChanged.
func keptPartitions(parts []agentapi.Partition, existing *gpt.Table, g geometry) (map[string]*gpt.Partition, error) {
	keep := make(map[string]*gpt.Partition)
	if existing == nil {
		return keep, nil
	}
	for _, p := range parts {
		if !p.Preserve {
			continue
		}
		var found []*gpt.Partition
		for _, e := range existing.Partitions {
			if e.Name == p.Name && e.Type != gpt.Unused {
				found = append(found, e)
			}
		}
		switch {
		case len(found) == 0:
			continue
		case len(found) > 1:
			return nil, &keptConflict{p.Name, fmt.Sprintf("is ambiguous: %d partitions on the disk have that name", len(found))}
		}
		e := found[0]
		typ, err := gptType(p.Type)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalidPlan, err)
		}
		if e.Type != typ {
			return nil, &keptConflict{p.Name, fmt.Sprintf("has type %s on the disk, the layout now says %s (%s)", e.Type, p.Type, typ)}
		}
		have := (e.End - e.Start + 1) * uint64(g.sectorSize)
		if p.Size != agentapi.Rest && g.sectorsFor(p.Size) != e.End-e.Start+1 {
			return nil, &keptConflict{p.Name, fmt.Sprintf("would be resized from %s to %v", agentapi.HumanBytes(int64(have)), p.Size)}
		}
		keep[p.Name] = e
	}
	return keep, nil
}
