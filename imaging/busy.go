package imaging

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// CheckIdle returns an error wrapping ErrDiskBusy when d or one of its
// partitions is mounted (/proc/self/mountinfo), active swap (/proc/swaps),
// or held by another block device such as an LVM volume, an md array or a
// dm-crypt mapping (/sys/block/X/holders and /sys/block/X/X*/holders).
//
// The kernel would refuse the exclusive open anyway (EBUSY); checking first
// names the culprit in the error, and catches mounts of the disk we must
// not touch even when the open would succeed, as with a plain read-write
// open of a disk whose partition is mounted.
func (h Host) CheckIdle(d Disk) error {
	devs := map[string]string{} // major:minor -> kernel name
	names := map[string]bool{d.Name: true}
	if d.Dev != "" {
		devs[d.Dev] = d.Name
	}
	var holders []string
	check := func(name, dir string) error {
		entries, err := os.ReadDir(filepath.Join(dir, "holders"))
		if err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("imaging: check %s: %w", name, err)
		}
		for _, e := range entries {
			holders = append(holders, name+" held by "+e.Name())
		}
		return nil
	}
	base := h.path("/sys/block/" + d.Name)
	if err := check(d.Name, base); err != nil {
		return err
	}
	for _, p := range d.Partitions {
		names[p] = true
		dir := filepath.Join(base, p)
		if b, err := os.ReadFile(filepath.Join(dir, "dev")); err == nil {
			devs[strings.TrimSpace(string(b))] = p
		}
		if err := check(p, dir); err != nil {
			return err
		}
	}
	if len(holders) > 0 {
		return fmt.Errorf("%w: %s", ErrDiskBusy, strings.Join(holders, ", "))
	}

	mounts, err := h.mounts()
	if err != nil {
		return err
	}
	for _, m := range mounts {
		// Match by device number, and by source name because btrfs and
		// some overlay setups show an anonymous 0:N device number.
		if n, ok := devs[m.dev]; ok {
			return fmt.Errorf("%w: /dev/%s is mounted on %s", ErrDiskBusy, n, m.point)
		}
		if src := strings.TrimPrefix(m.source, "/dev/"); src != m.source && names[src] {
			return fmt.Errorf("%w: %s is mounted on %s", ErrDiskBusy, m.source, m.point)
		}
	}

	swaps, err := os.ReadFile(h.path("/proc/swaps"))
	if err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("imaging: read swaps: %w", err)
	}
	for i, line := range strings.Split(string(swaps), "\n") {
		f := strings.Fields(line)
		if i == 0 || len(f) == 0 {
			continue // header
		}
		if src := strings.TrimPrefix(f[0], "/dev/"); names[src] {
			return fmt.Errorf("%w: %s is active swap", ErrDiskBusy, f[0])
		}
	}
	return nil
}

type mount struct {
	dev, point, source string
}

// mounts parses /proc/self/mountinfo (proc(5)): field 3 is major:minor,
// field 5 the mount point, and the first field after the "-" separator's
// file system type is the mount source.
func (h Host) mounts() ([]mount, error) {
	f, err := os.Open(h.path("/proc/self/mountinfo"))
	if err != nil {
		return nil, fmt.Errorf("imaging: read mounts: %w", err)
	}
	defer f.Close()
	var ms []mount
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		m := mount{dev: fields[2], point: unescapeMount(fields[4])}
		for i := 5; i < len(fields)-2; i++ {
			if fields[i] == "-" {
				m.source = unescapeMount(fields[i+2])
				break
			}
		}
		ms = append(ms, m)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("imaging: read mounts: %w", err)
	}
	return ms, nil
}

// unescapeMount undoes the octal escapes (\040 for space) of mountinfo.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }
