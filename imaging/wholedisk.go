package imaging

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/diskfs/go-diskfs/partition/gpt"

	"github.com/rackboot/rackboot/agentapi"
)

// wholeDisk installs a plan whose image covers the disk from LBA 0, then
// moves the image's backup GPT to the real end of the disk and appends the
// plan's partitions behind the image's own.
func (j *job) wholeDisk(ctx context.Context) error {
	ss := int64(j.ss)
	// A kept partition that the image, as large as the plan says, would
	// reach is in the way.
	for _, name := range slices.Sorted(maps.Keys(j.keep)) {
		if k, n := j.keep[name], j.plan.Image.RawSize; n > int64(k.Start)*ss {
			change := fmt.Sprintf("would be overwritten by the image: it starts at %s, the image is %s",
				agentapi.HumanBytes(int64(k.Start)*ss), agentapi.HumanBytes(n))
			if err := j.giveUp(&gpt.Table{Partitions: []*gpt.Partition{k}}, name, change); err != nil {
				return err
			}
			delete(j.keep, name)
		}
	}
	// Check now, with what is known of the image, that the partitions
	// to append will fit; after the image they are checked exactly.
	from := (uint64(j.plan.Image.RawSize) + uint64(ss) - 1) / uint64(ss)
	if slots, err := j.place(func(keep map[string]*gpt.Partition) ([]slot, error) {
		slots, _, err := placeAppended(j.plan.Partitions, j.g, from, 1, keep)
		return slots, err
	}); err != nil {
		return err
	} else if err := j.checkSlots(slots); err != nil {
		return err
	}
	// The image may not reach a preserved partition, nor, when partitions
	// are to be appended, the backup GPT at the end.
	limit := j.d.Size
	if len(j.plan.Partitions) > 0 {
		limit = int64(j.g.last+1) * ss
	}
	for _, k := range j.keep {
		limit = min(limit, int64(k.Start)*ss)
	}
	if n := j.plan.Image.RawSize; n > limit {
		return fmt.Errorf("%w: %s, room for %s", ErrImageTooLarge, agentapi.HumanBytes(n), agentapi.HumanBytes(limit))
	}

	head := newHeldHead(j.df, j.d.Size, alignBytes)
	res, err := j.stream(ctx, head, 0, limit)
	if err != nil {
		return err
	}
	j.image = res

	j.in.progress(Progress{Phase: agentapi.PhasePartition})
	t, err := readImageGPT(head, j.ss)
	if err != nil {
		return err
	}
	if t == nil {
		if len(j.plan.Partitions) > 0 {
			return fmt.Errorf("imaging: the image has no GPT to append partitions to")
		}
		// A GPT backup header left from a previous install at the end of
		// the disk would let tools "recover" the old table.
		if last := int64(j.g.sectors-1) * ss; last >= res.Written {
			if err := zeroRange(head, last, ss); err != nil {
				return fmt.Errorf("imaging: clear the old backup GPT: %w", err)
			}
		}
		if err := head.flush(); err != nil {
			return fmt.Errorf("imaging: write image head: %w", err)
		}
		j.d.Table = nil // an MBR or no table: the kernel finds out
		return rereadKernel(j.d, j.log)
	}

	// The image's backup GPT sits at the image's last sector; the new one
	// goes to the disk's last sector, and the space between becomes free.
	oldBackup := int64(t.TotalSize()) - ss
	t.Resize(j.g.sectors * uint64(ss))
	g := j.g
	g.last = min(g.last, t.LastDataSector())
	from = uint64((res.Written + ss - 1) / ss)
	last := 0
	names := make(map[string]bool)
	for _, p := range j.plan.Partitions {
		names[p.Name] = true
	}
	for _, p := range t.Partitions {
		if names[p.Name] {
			// Two partitions of one name would make the next install
			// unable to tell which one to preserve.
			return fmt.Errorf("%w: the image already has a partition named %q", ErrInvalidPlan, p.Name)
		}
		if p.End > g.last {
			return fmt.Errorf("%w: the image's partition %d (%q) ends at sector %d, past this disk's last usable sector %d",
				ErrDiskTooSmall, p.Index, p.Name, p.End, g.last)
		}
		from = max(from, p.End+1)
		last = max(last, p.Index)
	}
	var grow bool
	slots, err := j.place(func(keep map[string]*gpt.Partition) ([]slot, error) {
		var slots []slot
		var err error
		slots, grow, err = placeAppended(j.plan.Partitions, g, from, last+1, keep)
		return slots, err
	})
	if err != nil {
		return err
	}
	if err := j.checkSlots(slots); err != nil {
		return err
	}
	if grow {
		end := g.last
		if len(slots) > 0 {
			end = slots[0].start - 1
		}
		j.growLast(t, end)
	}
	t.Partitions = append(t.Partitions, gptPartitions(slots)...)
	t.ProtectiveMBR = false // see writeProtectiveMBR
	if err := writeProtectiveMBR(head, j.g.sectors); err != nil {
		return err
	}
	if err := t.Write(head, j.d.Size); err != nil {
		return fmt.Errorf("imaging: write GPT: %w", err)
	}
	if oldBackup > 0 && oldBackup+ss <= res.Written && oldBackup != int64(j.g.sectors-1)*ss {
		// A stale header mid-disk confuses nothing that follows the
		// spec, but it would mislead a human with a hex editor.
		if err := zeroRange(head, oldBackup, ss); err != nil {
			return fmt.Errorf("imaging: clear the image's backup GPT: %w", err)
		}
	}
	if err := head.flush(); err != nil {
		return fmt.Errorf("imaging: write image head: %w", err)
	}
	if err := rereadGPT(j.d, j.log); err != nil {
		return err
	}
	j.log.Info("partition table extended", "image_partitions", len(t.Partitions)-len(slots), "appended", len(slots))
	return j.fill(ctx, slots)
}

// growLast extends the image's last partition to end at sector end when
// it holds a Linux file system (its root, in the images rackboot knows):
// the installed system's cloud-init (resizefs) then grows the file system
// to the partition on first boot. Other partition types stay as they are.
func (j *job) growLast(t *gpt.Table, end uint64) {
	var last *gpt.Partition
	for _, p := range t.Partitions {
		if p.Type != gpt.Unused && (last == nil || p.End > last.End) {
			last = p
		}
	}
	if last == nil || last.End >= end {
		return
	}
	switch last.Type {
	case gpt.LinuxFilesystem, gpt.LinuxRootX86_64, gpt.LinuxRootArm64:
	default:
		j.log.Info("the image's last partition is not a Linux file system: not grown", "partition", last.Name, "type", string(last.Type))
		return
	}
	ss := uint64(j.ss)
	from := (last.End - last.Start + 1) * ss
	last.End = end
	last.Size = (last.End - last.Start + 1) * ss
	j.log.Info("the image's last partition grown to the space the layout leaves", "partition", last.Name,
		"from", agentapi.HumanBytes(int64(from)), "to", agentapi.HumanBytes(int64(last.Size)))
}

// readImageGPT reads the GPT of a whole-disk image from the held head. It
// returns nil for an image without one, and an error for one made for the
// other sector size, which no firmware or kernel would read on this disk.
func readImageGPT(head *heldHead, ss int) (*gpt.Table, error) {
	at := func(off int) bool {
		return off+len(gptSignature) <= len(head.buf) && bytes.Equal(head.buf[off:off+len(gptSignature)], gptSignature)
	}
	if !at(ss) {
		for _, other := range []int{512, 4096} {
			if other != ss && at(other) {
				return nil, fmt.Errorf("imaging: the image's GPT is for %d-byte sectors, the disk has %d-byte sectors", other, ss)
			}
		}
		return nil, nil
	}
	t, err := gpt.Read(head, ss, ss)
	if err != nil {
		return nil, fmt.Errorf("imaging: the image's GPT: %w", err)
	}
	if t.RecoveredFromBackup {
		// The backup read was the old disk's, not the image's.
		return nil, fmt.Errorf("imaging: the image's primary GPT is damaged")
	}
	return t, nil
}
