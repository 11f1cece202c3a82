package profiles

import (
	"fmt"
	"path"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/rackboot/rackboot/agentapi"
)

// The checks of one file's entries, value by value, each error at the
// position of the offending value. They also normalise values (defaults
// filled in, digests lower-cased) so that later stages see one spelling.

func (c *checker) checkInstaller(n *yaml.Node, in *Installer) {
	if in.Kernel == "" {
		c.errorf(n, "installer: kernel is required")
	} else if err := checkLocation(in.Kernel); err != nil {
		c.errorf(valueOr(n, "kernel"), "installer kernel: %v", err)
	}
	if in.Initrd != "" {
		if err := checkLocation(in.Initrd); err != nil {
			c.errorf(valueOr(n, "initrd"), "installer initrd: %v", err)
		}
	}
	if err := checkCmdline(in.Cmdline); err != nil {
		c.errorf(valueOr(n, "cmdline"), "installer cmdline: %v", err)
	}
}

// checkSettings checks what defaults, groups and hosts share and records
// the positions of their references in lv.
func (c *checker) checkSettings(n *yaml.Node, lv *level) {
	s := lv.s
	lv.ver, lv.layout = at(valueOr(n, "version")), at(valueOr(n, "layout"))
	if s.Version != "" && s.Channel != "" {
		c.errorf(keyOr(n, "channel"), "version and channel exclude each other: name a version, or a channel to follow")
	}
	if s.Channel != "" {
		lv.ver = at(valueOr(n, "channel"))
	}
	for _, ref := range []struct{ key, val string }{{"version", s.Version}, {"channel", s.Channel}, {"layout", s.Layout}} {
		if ref.val != "" {
			if err := checkName(ref.val); err != nil {
				c.errorf(valueOr(n, ref.key), "%s: %v", ref.key, err)
			}
		}
	}
	if s.Installer != nil {
		c.checkInstaller(valueOr(n, "installer"), s.Installer)
	}
	if err := checkCmdline(s.KernelArgs); err != nil {
		c.errorf(valueOr(n, "kernel_args"), "kernel_args: %v", err)
	}
	if s.Network != nil {
		c.checkNetwork(valueOr(n, "network"), s.Network)
	}
	un := child(n, "users")
	seen := map[string]bool{}
	for i := range s.Users {
		u := &s.Users[i]
		c.checkUser(itemOr(un, i), u)
		if seen[u.Name] {
			c.errorf(valueOr(itemOr(un, i), "name"), "user %q listed twice", u.Name)
		}
		seen[u.Name] = true
	}
	kn := child(n, "ssh_keys")
	for i, k := range s.SSHKeys {
		if err := checkSSHKey(k); err != nil {
			c.errorf(itemOr(kn, i), "%v", err)
		}
	}
	fn := child(n, "files")
	paths := map[string]bool{}
	for i := range s.Files {
		f := &s.Files[i]
		c.checkFile(itemOr(fn, i), f)
		if paths[f.Path] {
			c.errorf(valueOr(itemOr(fn, i), "path"), "file %q listed twice", f.Path)
		}
		paths[f.Path] = true
	}
	if s.CloudConfig != nil {
		c.checkCloudConfig(valueOr(n, "cloud_config"), s.CloudConfig)
	}
	if s.BMC != nil {
		c.checkBMC(valueOr(n, "bmc"), s.BMC)
	}
}

// checkBMC checks one level's bmc keys by themselves; that a host's
// resolved BMC is complete and consistent is hostcheck's.
func (c *checker) checkBMC(n *yaml.Node, b *BMC) {
	switch b.Protocol {
	case "", BMCIPMI, BMCRedfish:
	default:
		c.errorf(valueOr(n, "protocol"), "bmc protocol: %q is not ipmi or redfish", b.Protocol)
	}
	if b.Address != "" {
		if err := checkBMCAddress(b.Protocol, b.Address); err != nil {
			c.errorf(valueOr(n, "address"), "bmc address: %v", err)
		}
	}
	if b.Credential != "" {
		if err := checkName(b.Credential); err != nil {
			c.errorf(valueOr(n, "credential"), "bmc credential: %v (it names a file of the credentials directory)", err)
		}
	}
	if strings.ContainsAny(b.Username, "\x00\n\r") {
		c.errorf(valueOr(n, "username"), "bmc username: control characters")
	}
}

func (c *checker) checkNetwork(n *yaml.Node, nw *Network) {
	if nw.DHCP && (nw.Address != "" || nw.Gateway != "") {
		c.errorf(keyOr(n, "dhcp"), "network: dhcp excludes address and gateway")
	}
	if nw.Address != "" {
		p, err := checkAddress(nw.Address)
		if err != nil {
			c.errorf(valueOr(n, "address"), "network: %v", err)
		} else if nw.Gateway != "" {
			if err := checkGateway(p, nw.Gateway); err != nil {
				c.errorf(valueOr(n, "gateway"), "network: %v", err)
			}
		}
	}
	if nw.Gateway != "" {
		if _, err := checkIP(nw.Gateway); err != nil {
			c.errorf(valueOr(n, "gateway"), "network gateway: %v", err)
		}
	}
	dn := child(n, "dns")
	for i, s := range nw.DNS {
		if _, err := checkIP(s); err != nil {
			c.errorf(itemOr(dn, i), "network dns: %v", err)
		}
	}
	sn := child(n, "search")
	for i, s := range nw.Search {
		if !validHostname(s) {
			c.errorf(itemOr(sn, i), "network search: invalid domain %q", s)
		}
	}
}

func (c *checker) checkUser(n *yaml.Node, u *User) {
	if !userNameRe.MatchString(u.Name) {
		c.errorf(valueOr(n, "name"), "invalid user name %q: want a POSIX name ([a-z_][a-z0-9_-]*, at most 32 characters)", u.Name)
	}
	gn := child(n, "groups")
	for i, g := range u.Groups {
		if !userNameRe.MatchString(g) {
			c.errorf(itemOr(gn, i), "user %s: invalid group name %q", u.Name, g)
		}
	}
	if u.Password != "" {
		if err := checkPassword(u.Password); err != nil {
			c.errorf(valueOr(n, "password"), "user %s: %v", u.Name, err)
		}
	}
	kn := child(n, "ssh_keys")
	for i, k := range u.SSHKeys {
		if err := checkSSHKey(k); err != nil {
			c.errorf(itemOr(kn, i), "user %s: %v", u.Name, err)
		}
	}
	if u.Shell != "" {
		if err := checkFilePath(u.Shell); err != nil {
			c.errorf(valueOr(n, "shell"), "user %s: shell: %v", u.Name, err)
		}
	}
}

func (c *checker) checkFile(n *yaml.Node, f *File) {
	if err := checkFilePath(f.Path); err != nil {
		c.errorf(valueOr(n, "path"), "%v", err)
	}
	if len(f.Content) > maxFileContent {
		c.errorf(valueOr(n, "content"), "file %s: content larger than %d bytes", f.Path, maxFileContent)
	}
	if f.Mode != "" {
		if err := checkMode(f.Mode); err != nil {
			c.errorf(valueOr(n, "mode"), "file %s: %v", f.Path, err)
		}
	}
	if f.Owner != "" {
		if err := checkOwner(f.Owner); err != nil {
			c.errorf(valueOr(n, "owner"), "file %s: %v", f.Path, err)
		}
	}
}

// checkVersion checks a catalog entry and reports whether it is bad.
func (c *checker) checkVersion(n *yaml.Node, v *Version) (bad bool) {
	before := len(c.errs)
	if err := checkName(v.Name); err != nil {
		c.errorf(valueOr(n, "name"), "version: %v", err)
	}
	if child(n, "number") == nil {
		c.errorf(n, "version %s: number is required: it orders the versions of a channel", v.Name)
	} else if v.Number < 0 {
		c.errorf(valueOr(n, "number"), "version %s: number must not be negative", v.Name)
	}
	if v.Channel != "" {
		if err := checkName(v.Channel); err != nil {
			c.errorf(valueOr(n, "channel"), "version %s: channel: %v", v.Name, err)
		}
	}
	in := valueOr(n, "image")
	img := &v.Image
	if img.URL == "" {
		c.errorf(in, "version %s: image url is required", v.Name)
	} else if err := checkLocation(img.URL); err != nil {
		c.errorf(valueOr(in, "url"), "version %s: image url: %v", v.Name, err)
	}
	if !sha256Re.MatchString(img.SHA256) {
		c.errorf(valueOr(in, "sha256"), "version %s: image sha256 must be 64 hex digits", v.Name)
	}
	img.SHA256 = strings.ToLower(img.SHA256)
	switch img.Format {
	case "":
		img.Format = formatOf(img.URL)
	case "raw", "gzip", "zstd", "xz", "chunked":
	default:
		c.errorf(valueOr(in, "format"), "version %s: image format %q: want raw, gzip, zstd, xz or chunked", v.Name, img.Format)
	}
	if img.Format == "chunked" && strings.Contains(img.URL, "://") {
		// The agent fetches the chunks from the appliance's own store,
		// next to the index (`rackboot image add`): an index elsewhere
		// would name chunks the appliance does not have.
		c.errorf(valueOr(in, "url"), "version %s: a chunked image must be an index in the artifacts directory (images/NAME.rbidx, written by rackboot image add), not %s", v.Name, img.URL)
	}
	switch img.Kind {
	case "":
		img.Kind = KindWholeDisk
	case KindWholeDisk, KindPartitions:
	default:
		c.errorf(valueOr(in, "kind"), "version %s: image kind %q: want whole-disk or partitions", v.Name, img.Kind)
	}
	if v.Installer != nil {
		c.checkInstaller(valueOr(n, "installer"), v.Installer)
	}
	switch v.ConfigDrive {
	case "", DriveNoCloud, DriveOpenStack:
	default:
		c.errorf(valueOr(n, "config_drive"), "version %s: config_drive %q: want nocloud or openstack", v.Name, v.ConfigDrive)
	}
	return len(c.errs) > before
}

// formatOf infers an image's format from its name: its compression, or
// chunked for a chunk index.
func formatOf(url string) string {
	switch path.Ext(url) {
	case ".rbidx":
		return "chunked"
	case ".gz":
		return "gzip"
	case ".zst", ".zstd":
		return "zstd"
	case ".xz":
		return "xz"
	}
	return "raw"
}

// mib is the alignment of partitions: every partitioning tool since 2010
// starts and sizes partitions on 1 MiB boundaries, which suits 512-byte and
// 4096-byte sectors and every SSD erase block.
const mib = 1 << 20

// checkLayout checks a layout and reports whether it is bad.
func (c *checker) checkLayout(n *yaml.Node, ly *Layout) (bad bool) {
	before := len(c.errs)
	if err := checkName(ly.Name); err != nil {
		c.errorf(valueOr(n, "name"), "layout: %v", err)
	}
	dn := valueOr(n, "disk")
	d := ly.Disk
	switch {
	case d.Path != "" && d.Select != "":
		c.errorf(keyOr(dn, "select"), "layout %s: disk path and select exclude each other", ly.Name)
	case d.Path == "" && d.Select == "":
		c.errorf(dn, "layout %s: disk needs a path or a select rule (smallest or largest)", ly.Name)
	case d.Path != "":
		if err := checkDevicePath(d.Path); err != nil {
			c.errorf(valueOr(dn, "path"), "layout %s: %v", ly.Name, err)
		}
	}
	if d.Select != "" && d.Select != "smallest" && d.Select != "largest" {
		c.errorf(valueOr(dn, "select"), "layout %s: disk select %q: want smallest or largest", ly.Name, d.Select)
	}
	if d.Type != "" && d.Type != "ssd" && d.Type != "hdd" && d.Type != "nvme" {
		c.errorf(valueOr(dn, "type"), "layout %s: disk type %q: want ssd, hdd or nvme", ly.Name, d.Type)
	}
	var minSize uint64
	if d.MinSize != "" {
		var err error
		if minSize, err = parseSize(d.MinSize); err != nil {
			c.errorf(valueOr(dn, "min_size"), "layout %s: disk min_size: %v", ly.Name, err)
		}
	}

	pn := child(n, "partitions")
	names := map[string]bool{}
	count := map[string]int{}
	mounts := map[string]string{} // mount point → partition
	var total uint64
	for i := range ly.Partitions {
		p := &ly.Partitions[i]
		c.checkPartition(itemOr(pn, i), ly.Name, p, i == len(ly.Partitions)-1)
		if names[p.Name] {
			c.errorf(valueOr(itemOr(pn, i), "name"), "layout %s: partition %q defined twice", ly.Name, p.Name)
		}
		names[p.Name] = true
		if m := p.Mount; m != "" && m != MountSwap {
			if other, ok := mounts[m]; ok {
				c.errorf(valueOr(itemOr(pn, i), "mount"), "layout %s partition %s: mount %s is partition %s's already", ly.Name, p.Name, m, other)
			}
			mounts[m] = p.Name
		}
		for _, one := range []string{p.Type, "content " + p.Content} {
			count[one]++
			if count[one] == 2 && (one == "esp" || one == "bios-boot" || one == "content config") {
				c.errorf(itemOr(pn, i), "layout %s: only one %s partition allowed", ly.Name, strings.TrimPrefix(one, "content "))
			}
		}
		total += p.bytes
	}
	if minSize > 0 && total > minSize {
		c.errorf(valueOr(dn, "min_size"), "layout %s: the partitions need %s, more than min_size %s", ly.Name, formatSize(total), d.MinSize)
	}
	if count["content "+ContentConfig] == 0 {
		for i, p := range ly.Partitions {
			if p.Mount != "" {
				c.errorf(valueOr(itemOr(pn, i), "mount"), "layout %s partition %s: mount would not reach the machine: the config drive applies it, and the layout has no partition with content: config", ly.Name, p.Name)
			}
		}
	}
	return len(c.errs) > before
}

func (c *checker) checkPartition(n *yaml.Node, layout string, p *Partition, last bool) {
	if !partNameRe.MatchString(p.Name) {
		c.errorf(valueOr(n, "name"), "layout %s: invalid partition name %q: want letters, digits, '.', '_', '-', at most 36 characters", layout, p.Name)
	}
	where := fmt.Sprintf("layout %s partition %s", layout, p.Name)
	switch {
	case p.Size == SizeRest:
		if !last {
			c.errorf(valueOr(n, "size"), "%s: size rest is allowed on the last partition only", where)
		}
	default:
		b, err := parseSize(p.Size)
		switch {
		case err != nil:
			c.errorf(valueOr(n, "size"), "%s: %v", where, err)
		case b%mib != 0:
			c.errorf(valueOr(n, "size"), "%s: size %s is not a multiple of 1MiB (partitions are 1 MiB aligned)", where, p.Size)
		}
		p.bytes = b
	}
	switch p.Type {
	case "esp", "linux-root", "linux", "swap", "bios-boot":
	default:
		c.errorf(valueOr(n, "type"), "%s: type %q: want esp, linux-root, linux, swap or bios-boot", where, p.Type)
	}
	if p.Content == "" {
		p.Content = ContentEmpty
	}
	fsn := valueOr(n, "filesystem")
	switch p.Filesystem {
	case "", "vfat", "ext4", "swap":
	case "xfs":
		if p.Size != SizeRest && p.bytes > 0 && p.bytes < agentapi.MinXFSSize {
			c.errorf(valueOr(n, "size"), "%s: size %s: filesystem xfs needs at least %s (mkfs.xfs makes no smaller one)", where, p.Size, agentapi.Size(agentapi.MinXFSSize))
		}
	default:
		c.errorf(fsn, "%s: filesystem %q: want vfat, ext4, xfs or swap", where, p.Filesystem)
	}
	switch p.Content {
	case ContentImage:
		if p.Filesystem != "" {
			c.errorf(fsn, "%s: a partition with content image gets its filesystem from the image", where)
		}
		if p.Type == "swap" || p.Type == "bios-boot" {
			c.errorf(valueOr(n, "type"), "%s: a %s partition cannot hold the image", where, p.Type)
		}
	case ContentConfig:
		// cloud-init's NoCloud looks for a FAT or ISO 9660 filesystem
		// labelled CIDATA on a plain data partition.
		if p.Filesystem != "" && p.Filesystem != "vfat" {
			c.errorf(fsn, "%s: the config drive is vfat", where)
		}
		if p.Type != "linux" {
			c.errorf(valueOr(n, "type"), "%s: the config drive partition has type linux", where)
		}
		p.Filesystem = "vfat"
	case ContentEmpty:
		switch {
		case p.Type == "esp" && p.Filesystem == "":
			p.Filesystem = "vfat"
		case p.Type == "esp" && p.Filesystem != "vfat":
			c.errorf(fsn, "%s: an EFI system partition is vfat (UEFI 2.x section 13.3)", where)
		case p.Type == "swap" && p.Filesystem == "":
			p.Filesystem = "swap"
		case p.Type == "swap" && p.Filesystem != "swap":
			c.errorf(fsn, "%s: a swap partition has filesystem swap", where)
		case p.Type == "bios-boot" && p.Filesystem != "":
			c.errorf(fsn, "%s: a BIOS boot partition holds GRUB's core image, no filesystem", where)
		case p.Filesystem == "swap" && p.Type != "swap":
			c.errorf(fsn, "%s: filesystem swap needs type swap", where)
		}
	default:
		c.errorf(valueOr(n, "content"), "%s: content %q: want image, empty or config", where, p.Content)
	}
	if p.Preserve {
		switch {
		case p.Content != ContentEmpty:
			c.errorf(valueOr(n, "preserve"), "%s: only a partition with content empty holds data to preserve", where)
		case p.Type == "esp" || p.Type == "bios-boot":
			c.errorf(valueOr(n, "preserve"), "%s: a %s partition belongs to the system and is rewritten on reinstall", where, p.Type)
		}
	}
	if p.Mount != "" {
		c.checkMount(valueOr(n, "mount"), where, p)
	}
}

// checkMount checks where a partition is mounted: a path for ext4 and
// xfs, swap for swap, nothing else. The image's own partitions (content
// image) are the image's to mount, the ESP and the config drive the
// firmware's and cloud-init's.
func (c *checker) checkMount(n *yaml.Node, where string, p *Partition) {
	switch {
	case p.Content != ContentEmpty:
		c.errorf(n, "%s: mount: only an empty partition is mounted by rackboot (content %s is not)", where, p.Content)
	case p.Filesystem == "swap":
		if p.Mount != MountSwap {
			c.errorf(n, "%s: mount %q: a swap partition has no mount point: write mount: swap to use it as swap", where, p.Mount)
		}
	case p.Filesystem == "ext4" || p.Filesystem == "xfs":
		if p.Mount == MountSwap {
			c.errorf(n, "%s: mount: swap needs filesystem swap, not %s", where, p.Filesystem)
		} else if err := checkMountPath(p.Mount); err != nil {
			c.errorf(n, "%s: %v", where, err)
		}
	default:
		c.errorf(n, "%s: mount needs filesystem ext4, xfs or swap (the file system the installed system mounts)", where)
	}
}

func (c *checker) checkGroup(n *yaml.Node, gd *groupDoc) *groupAt {
	g := &Group{Name: gd.Name, Match: gd.Match, Source: fmt.Sprintf("%s:%d", c.file, line(n))}
	ga := &groupAt{g: g, name: at(valueOr(n, "name"))}
	ga.lv = level{s: &gd.settings, file: c.file, entry: at(n), from: "group " + gd.Name}
	if err := checkName(gd.Name); err != nil {
		c.errorf(valueOr(n, "name"), "group: %v", err)
	}
	mn := child(n, "match")
	macn := child(mn, "mac")
	seen := map[[6]byte]bool{}
	for i, s := range gd.Match.MAC {
		hw, err := ParseMAC(s)
		if err != nil {
			c.errorf(itemOr(macn, i), "group %s: %v", gd.Name, err)
			continue
		}
		k, _ := macArray(hw)
		if seen[k] {
			c.errorf(itemOr(macn, i), "group %s: MAC %s listed twice", gd.Name, hw)
			continue
		}
		seen[k] = true
		ga.macs = append(ga.macs, k)
		ga.macPos = append(ga.macPos, at(itemOr(macn, i)))
	}
	if gd.Match.MACPrefix != "" {
		p, err := parseMACPrefix(gd.Match.MACPrefix)
		if err != nil {
			c.errorf(valueOr(mn, "mac_prefix"), "group %s: %v", gd.Name, err)
		}
		ga.prefix = p
	}
	ln := valueOr(mn, "labels")
	for k, v := range gd.Match.Labels {
		if err := checkLabel(k, v); err != nil {
			c.errorf(valueOr(ln, k), "group %s: %v", gd.Name, err)
		}
	}
	ga.hasMatch = len(gd.Match.MAC) > 0 || gd.Match.MACPrefix != "" || len(gd.Match.Labels) > 0
	c.checkSettings(n, &ga.lv)
	return ga
}

// checkHost checks a host entry; it returns nil when the MAC is unusable.
func (c *checker) checkHost(n *yaml.Node, hd *hostDoc) *hostAt {
	h := &hostAt{doc: *hd, macPos: at(valueOr(n, "mac")), hostname: at(valueOr(n, "hostname")), group: at(valueOr(n, "group"))}
	h.lv = level{s: &h.doc.settings, file: c.file, entry: at(n), from: "host"}
	hw, err := ParseMAC(hd.MAC)
	if err != nil {
		c.errAt(h.macPos, "%v", err)
		return nil
	}
	h.hw = hw
	h.mac, _ = macArray(hw)
	if hd.Hostname != "" && !validHostname(hd.Hostname) {
		c.errAt(h.hostname, "invalid hostname %q: want RFC 1123 labels (letters, digits, '-'), at most 253 characters", hd.Hostname)
	}
	if hd.Group != "" {
		if err := checkName(hd.Group); err != nil {
			c.errAt(h.group, "group: %v", err)
		}
	}
	ln := valueOr(n, "labels")
	for k, v := range hd.Labels {
		if err := checkLabel(k, v); err != nil {
			c.errorf(valueOr(ln, k), "%v", err)
		}
	}
	c.checkSettings(n, &h.lv)
	return h
}
