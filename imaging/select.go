package imaging

import (
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/rackboot/rackboot/agentapi"
)

// SelectDisk applies rule to the candidate disks (from Host.Disks) and
// returns the chosen one. A rule naming a disk by Path gets that disk or an
// error, never another one; otherwise removable disks are never chosen. The
// error wraps ErrDiskTooSmall when disks of the right kind exist but all are
// smaller than MinSize, and ErrNoDisk otherwise.
func SelectDisk(rule agentapi.DiskRule, disks []Disk) (Disk, error) {
	if rule.Path != "" {
		d, ok := findDisk(rule.Path, disks)
		if !ok {
			return Disk{}, fmt.Errorf("%w: %s is not among the disks (%s)", ErrNoDisk, rule.Path, diskNames(disks))
		}
		if rule.Type != "" && d.Type() != rule.Type {
			return Disk{}, fmt.Errorf("%w: %s is %s, the rule wants %s", ErrNoDisk, rule.Path, d.Type(), rule.Type)
		}
		if d.Size < int64(rule.MinSize) {
			return Disk{}, fmt.Errorf("%w: %s is %v, the rule wants at least %v", ErrDiskTooSmall, rule.Path, agentapi.HumanBytes(d.Size), rule.MinSize)
		}
		return d, nil
	}

	var eligible []Disk
	var largestSmall *Disk
	for i, d := range disks {
		if d.Removable || (rule.Type != "" && d.Type() != rule.Type) {
			continue
		}
		if d.Size < int64(rule.MinSize) {
			if largestSmall == nil || d.Size > largestSmall.Size {
				largestSmall = &disks[i]
			}
			continue
		}
		eligible = append(eligible, d)
	}
	if len(eligible) == 0 {
		if largestSmall != nil {
			return Disk{}, fmt.Errorf("%w: the largest %sdisk, %s, is %v; the rule wants at least %v",
				ErrDiskTooSmall, typeWord(rule.Type), largestSmall.Path, agentapi.HumanBytes(largestSmall.Size), rule.MinSize)
		}
		return Disk{}, fmt.Errorf("%w: no non-removable %sdisk among (%s)", ErrNoDisk, typeWord(rule.Type), diskNames(disks))
	}
	sort.SliceStable(eligible, func(i, j int) bool {
		a, b := eligible[i], eligible[j]
		if a.Size != b.Size {
			if rule.Select == agentapi.SelectLargest {
				return a.Size > b.Size
			}
			return a.Size < b.Size
		}
		return a.Name < b.Name
	})
	return eligible[0], nil
}

func typeWord(t string) string {
	if t == "" {
		return ""
	}
	return t + " "
}

// findDisk finds the disk named by p: "/dev/sda", "sda", or a by-id name
// with or without "/dev/disk/by-id/".
func findDisk(p string, disks []Disk) (Disk, bool) {
	p = path.Clean(p)
	id := strings.TrimPrefix(p, "/dev/disk/by-id/")
	name := strings.TrimPrefix(p, "/dev/")
	for _, d := range disks {
		if d.Path == p || d.Name == name || slices.Contains(d.IDs, id) {
			return d, true
		}
	}
	return Disk{}, false
}

func diskNames(disks []Disk) string {
	if len(disks) == 0 {
		return "none"
	}
	names := make([]string, len(disks))
	for i, d := range disks {
		names[i] = fmt.Sprintf("%s %v %s", d.Name, agentapi.HumanBytes(d.Size), d.Type())
	}
	return strings.Join(names, ", ")
}
