package agentapi

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Mount is a partition of the plan that the installed system mounts, or
// uses as swap.
//
// Why not cloud-init's `mounts`: cloud-init 22.4 (Debian 12) drops every
// mounts entry that names a partition, whatever the spelling (LABEL=,
// UUID=, /dev/disk/by-partlabel/…, even /dev/sda3), because it looks for
// the device under /sys/block/, where only whole disks are (cc_mounts
// sanitize_devname; upstream issues #4102, #4920). So the config drive
// adds the partition to /etc/fstab itself and mounts it in bootcmd, which
// runs early in cloud-init's init stage: before users, keys and
// write_files, so a /home or /srv mounted here is what they write to.
// Each command runs once per instance (cloud-init-per, which records a
// failure as done too); later boots mount from /etc/fstab. The entry names the partition by its GPT name
// (/dev/disk/by-partlabel/NAME), which the layout gives and which a
// preserved partition keeps across reinstalls; nofail, so a missing
// partition does not stop the boot.
type Mount struct {
	// PartLabel is the GPT partition name.
	PartLabel string
	// Path is the absolute mount point; empty for swap.
	Path string
	// Filesystem is FilesystemExt4, FilesystemXFS or FilesystemSwap.
	Filesystem string
}

var (
	// partLabelRE and mountPathRE are what a mount may name: characters
	// that need no escaping in /etc/fstab, a shell or a udev link name.
	partLabelRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,36}$`)
	mountPathRE = regexp.MustCompile(`^(/[A-Za-z0-9._-]+)+$`)
)

// Device is the path of the partition on the installed system.
func (m Mount) Device() string { return "/dev/disk/by-partlabel/" + m.PartLabel }

// FstabLine is m's /etc/fstab entry.
func (m Mount) FstabLine() string {
	switch m.Filesystem {
	case FilesystemSwap:
		return m.Device() + " none swap defaults,nofail 0 0"
	case FilesystemExt4:
		return m.Device() + " " + m.Path + " ext4 defaults,nofail 0 2"
	}
	// fsck.xfs does nothing: pass 0, as mkfs.xfs's documentation advises.
	return m.Device() + " " + m.Path + " " + m.Filesystem + " defaults,nofail 0 0"
}

func (m Mount) check() error {
	if !partLabelRE.MatchString(m.PartLabel) {
		return fmt.Errorf("agentapi: mount: partition name %q", m.PartLabel)
	}
	switch m.Filesystem {
	case FilesystemSwap:
		if m.Path != "" {
			return fmt.Errorf("agentapi: mount: swap partition %s has a mount point", m.PartLabel)
		}
		return nil
	case FilesystemExt4, FilesystemXFS:
	default:
		return fmt.Errorf("agentapi: mount: partition %s: file system %q: want ext4, xfs or swap", m.PartLabel, m.Filesystem)
	}
	if !mountPathRE.MatchString(m.Path) || slices.Contains(strings.Split(m.Path, "/"), "..") || slices.Contains(strings.Split(m.Path, "/"), ".") {
		return fmt.Errorf("agentapi: mount: partition %s: mount point %q: want a clean absolute path of letters, digits, '.', '_', '-'", m.PartLabel, m.Path)
	}
	return nil
}

// The shell of the boot commands. The values come as arguments ("$1"),
// never inside the script; they are checked (Mount.check) all the same.
const (
	// The leading newline keeps the entries off the last line of an
	// fstab that lacks a final newline.
	fstabScript = `printf '\n%s\n' "$1" >> /etc/fstab`
	mountScript = `mkdir -p "$1" && { mountpoint -q "$1" || mount "$1"; }`
	swapScript  = `grep -qs "^$(readlink -f "$1") " /proc/swaps || swapon "$1"`
)

// bootCommands is the bootcmd list: the mounts' commands, then the
// CloudConfig's bootcmd items. It is nil without mounts (a CloudConfig
// bootcmd is then written as it is).
func (c NoCloud) bootCommands() (*yaml.Node, error) {
	if len(c.Mounts) == 0 {
		return nil, nil
	}
	mounts := slices.Clone(c.Mounts)
	// A parent before what is mounted inside it: /srv before /srv/data.
	slices.SortStableFunc(mounts, func(a, b Mount) int { return strings.Compare(a.Path, b.Path) })
	lines := []string{"# rackboot: the layout's partitions"}
	seen := map[string]bool{}
	for _, m := range mounts {
		if err := m.check(); err != nil {
			return nil, err
		}
		if seen[m.PartLabel] || m.Path != "" && seen[m.Path] {
			return nil, fmt.Errorf("agentapi: mount: partition %s or mount point %s twice", m.PartLabel, m.Path)
		}
		seen[m.PartLabel], seen[m.Path] = true, m.Path != ""
		lines = append(lines, m.FstabLine())
	}
	cmds := [][]string{{"cloud-init-per", "instance", "rackboot-fstab", "sh", "-c", fstabScript, "rackboot-fstab", strings.Join(lines, "\n")}}
	for i, m := range mounts {
		// Numbered, not named after the partition: cloud-init-per turns
		// '-' into '_' in its names, so "a-b" and "a_b" would be one.
		name := fmt.Sprintf("rackboot-mount-%d", i+1)
		if m.Filesystem == FilesystemSwap {
			cmds = append(cmds, []string{"cloud-init-per", "instance", name, "sh", "-c", swapScript, "rackboot-swap", m.Device()})
		} else {
			cmds = append(cmds, []string{"cloud-init-per", "instance", name, "sh", "-c", mountScript, "rackboot-mount", m.Path})
		}
	}
	seq := &yaml.Node{}
	if err := seq.Encode(cmds); err != nil {
		return nil, fmt.Errorf("agentapi: nocloud bootcmd: %w", err)
	}
	if extra := c.CloudConfig["bootcmd"]; extra != nil {
		if extra.Kind != yaml.SequenceNode {
			return nil, fmt.Errorf("agentapi: nocloud: cloud-config bootcmd is not a list")
		}
		seq.Content = append(seq.Content, extra.Content...)
	}
	return seq, nil
}
