package imaging

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/rackboot/rackboot/agentapi"
)

// Disk is one candidate disk as the kernel describes it in /sys/block.
type Disk struct {
	Name               string   // kernel name: "sda", "nvme0n1", "vda"
	Path               string   // device node: "/dev/sda"
	Dev                string   // "major:minor", to match /proc/self/mountinfo
	Size               int64    // bytes
	LogicalSectorSize  int      // bytes; what GPT LBAs count
	PhysicalSectorSize int      // bytes
	Rotational         bool     // queue/rotational: spinning disk (also most virtio disks)
	Removable          bool     // USB sticks, card readers
	ReadOnly           bool     // ro: write-protected
	Model              string   // for logs
	Serial             string   // for logs
	IDs                []string // /dev/disk/by-id names (without the directory)
	Partitions         []string // kernel names of its partitions: "sda1"
}

// Type returns "nvme", "hdd" or "ssd" for the DiskRule Type match.
func (d Disk) Type() string {
	switch {
	case strings.HasPrefix(d.Name, "nvme"):
		return agentapi.TypeNVMe
	case d.Rotational:
		return agentapi.TypeHDD
	}
	return agentapi.TypeSSD
}

// Host reads the machine's disks from sysfs and procfs. The zero value reads
// the running system; tests point Root at a fake tree.
type Host struct {
	// Root is prepended to /sys, /proc and /dev. Empty means "/".
	Root string
}

func (h Host) path(p string) string {
	if h.Root == "" {
		return p
	}
	return filepath.Join(h.Root, p)
}

// skipPrefixes are kernel names of block devices that are never install
// targets: loop and RAM disks, device-mapper and md arrays (their members
// are the disks), optical and floppy drives, network block devices.
var skipPrefixes = []string{"loop", "ram", "zram", "dm-", "md", "sr", "fd", "nbd", "mtdblock", "drbd", "rbd"}

// Disks lists the candidate disks, sorted by name. Devices that can never be
// targets (see skipPrefixes), empty ones (a card reader without a card) and
// read-only ones are left out; removable disks are listed, and SelectDisk
// takes them only when the rule names them.
func (h Host) Disks() ([]Disk, error) {
	dir := h.path("/sys/block")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("imaging: list disks: %w", err)
	}
	byID := h.byIDLinks()
	var disks []Disk
	for _, e := range entries {
		name := e.Name()
		if hasAnyPrefix(name, skipPrefixes) {
			continue
		}
		d, err := h.readDisk(name)
		if err != nil {
			return nil, err
		}
		if d.Size == 0 || d.ReadOnly {
			continue
		}
		d.IDs = mergeIDs(byID[name], synthesizedIDs(d, h.path("/sys/block/"+name)))
		disks = append(disks, d)
	}
	sort.Slice(disks, func(i, j int) bool { return disks[i].Name < disks[j].Name })
	return disks, nil
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// readDisk reads one /sys/block entry.
func (h Host) readDisk(name string) (Disk, error) {
	dir := h.path("/sys/block/" + name)
	d := Disk{Name: name, Path: "/dev/" + name}
	var err error
	read := func(rel string) string {
		if err != nil {
			return ""
		}
		var b []byte
		b, err = os.ReadFile(filepath.Join(dir, rel))
		return strings.TrimSpace(string(b))
	}
	readInt := func(rel string) int64 {
		s := read(rel)
		if err != nil {
			return 0
		}
		var n int64
		n, err = strconv.ParseInt(s, 10, 64)
		return n
	}
	d.Dev = read("dev")
	// /sys/block/X/size counts 512-byte units whatever the sector size.
	units := readInt("size")
	d.Size = units * 512
	d.LogicalSectorSize = int(readInt("queue/logical_block_size"))
	d.PhysicalSectorSize = int(readInt("queue/physical_block_size"))
	d.Rotational = readInt("queue/rotational") == 1
	d.Removable = readInt("removable") == 1
	d.ReadOnly = readInt("ro") == 1
	if err != nil {
		return Disk{}, fmt.Errorf("imaging: read disk %s: %w", name, err)
	}
	// Values no kernel reports are refused like unreadable ones, before
	// a negative size or a zero sector size reaches the layout's
	// arithmetic (FuzzDisks).
	if units < 0 || units > math.MaxInt64/512 {
		return Disk{}, fmt.Errorf("imaging: read disk %s: size of %d sectors", name, units)
	}
	if units > 0 && (!sectorSize(d.LogicalSectorSize) || !sectorSize(d.PhysicalSectorSize)) {
		return Disk{}, fmt.Errorf("imaging: read disk %s: sector sizes %d/%d", name, d.LogicalSectorSize, d.PhysicalSectorSize)
	}
	d.Model = firstFile(dir, "device/model")
	d.Serial = firstFile(dir, "serial", "device/serial")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return Disk{}, fmt.Errorf("imaging: read disk %s: %w", name, err)
	}
	for _, e := range entries {
		if _, err := os.Stat(filepath.Join(dir, e.Name(), "partition")); err == nil {
			d.Partitions = append(d.Partitions, e.Name())
		}
	}
	return d, nil
}

// sectorSize reports whether n is a sector size a block device can have:
// a power of two from 512 bytes to 64 KiB (Linux's block layer bounds).
func sectorSize(n int) bool {
	return n >= 512 && n <= 64<<10 && n&(n-1) == 0
}

// firstFile returns the trimmed content of the first readable file of dir
// among rels, or "".
func firstFile(dir string, rels ...string) string {
	for _, rel := range rels {
		if b, err := os.ReadFile(filepath.Join(dir, rel)); err == nil {
			if s := strings.TrimSpace(string(b)); s != "" {
				return s
			}
		}
	}
	return ""
}

// byIDLinks maps kernel names to the /dev/disk/by-id links pointing at them.
// The directory exists only where udev runs; the agent's initramfs has none,
// which is why synthesizedIDs exists.
func (h Host) byIDLinks() map[string][]string {
	dir := h.path("/dev/disk/by-id")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	m := make(map[string][]string)
	for _, e := range entries {
		if e.Type()&fs.ModeSymlink == 0 {
			continue
		}
		target, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		base := filepath.Base(target)
		m[base] = append(m[base], e.Name())
	}
	return m
}

// synthesizedIDs builds the by-id names udev's 60-persistent-storage rules
// would create for the common cases, from sysfs alone: "virtio-<serial>",
// "nvme-<model>_<serial>", "nvme-eui.<eui>", and "wwn-0x<naa>" for disks
// reporting a NAA world-wide name. ATA names need the IDENTIFY data that
// only udev's ata_id reads, so a rule naming an ata- link works only where
// udev populated /dev/disk/by-id.
func synthesizedIDs(d Disk, dir string) []string {
	var ids []string
	mangle := func(s string) string {
		// udev replaces whitespace runs with one underscore.
		return strings.Join(strings.Fields(s), "_")
	}
	switch {
	case strings.HasPrefix(d.Name, "vd") && d.Serial != "":
		ids = append(ids, "virtio-"+mangle(d.Serial))
	case strings.HasPrefix(d.Name, "nvme"):
		if d.Model != "" && d.Serial != "" {
			ids = append(ids, "nvme-"+mangle(d.Model)+"_"+mangle(d.Serial))
		}
		if eui := firstFile(dir, "eui"); eui != "" {
			ids = append(ids, "nvme-eui."+strings.ReplaceAll(eui, " ", ""))
		}
	}
	if wwid := firstFile(dir, "wwid", "device/wwid"); strings.HasPrefix(wwid, "naa.") {
		ids = append(ids, "wwn-0x"+strings.ToLower(strings.TrimPrefix(wwid, "naa.")))
	}
	return ids
}

func mergeIDs(a, b []string) []string {
	seen := make(map[string]bool)
	var out []string
	for _, id := range append(append([]string(nil), a...), b...) {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

// errNotDisk is returned by Host.disk for names /sys/block does not list.
var errNotDisk = errors.New("not a whole disk in /sys/block")

// disk reads one whole disk by kernel name.
func (h Host) disk(name string) (Disk, error) {
	if _, err := os.Stat(h.path("/sys/block/" + name)); err != nil {
		return Disk{}, fmt.Errorf("imaging: %s: %w", name, errNotDisk)
	}
	return h.readDisk(name)
}
