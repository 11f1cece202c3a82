package profiles

import (
	"net"
	"net/netip"

	"go.yaml.in/yaml/v3"
)

// Installer is what a machine boots to be installed: a kernel, an initramfs
// and extra kernel command-line arguments. Kernel and Initrd are either paths
// relative to the appliance's artifacts directory or absolute http(s) URLs.
type Installer struct {
	Kernel  string `yaml:"kernel" json:"kernel" schema:"required" desc:"installer kernel: a path under the artifacts directory or an http(s) URL"`
	Initrd  string `yaml:"initrd" json:"initrd,omitempty" desc:"installer initramfs: a path under the artifacts directory or an http(s) URL"`
	Cmdline string `yaml:"cmdline,omitempty" json:"cmdline,omitempty" desc:"extra kernel arguments; rackboot adds its own rackboot.* arguments"`
}

// Version is one entry of the catalog of operating-system versions a
// machine can be given.
type Version struct {
	Name string `yaml:"name" json:"name" schema:"required,pattern=name" desc:"what a machine runs, e.g. demo-1.1"`
	// Number orders versions: within a channel, the highest number is the
	// channel's current version.
	Number  int    `yaml:"number" json:"number" schema:"required,min=0" desc:"sortable release number; the highest of a channel is its current version"`
	Channel string `yaml:"channel,omitempty" json:"channel,omitempty" schema:"pattern=name" desc:"release channel, e.g. stable or canary"`
	Image   Image  `yaml:"image" json:"image" schema:"required"`
	// Installer boots the machine to install this version. A host's
	// `installer:` (or its group's) overrides it.
	Installer *Installer `yaml:"installer,omitempty" json:"installer,omitempty"`
	// ConfigDrive is the config drive layout the version's OS reads: a
	// property of the image (Clear Linux's micro-config-drive reads only
	// OpenStack's), so the version says it, not the layout, which many
	// versions share.
	ConfigDrive string `yaml:"config_drive,omitempty" json:"config_drive,omitempty" schema:"enum=nocloud|openstack" desc:"the config drive the image reads: nocloud (default; cloud-init's NoCloud, label CIDATA) or openstack (label config-2, openstack/latest/…: cloud-init and Clear Linux's micro-config-drive)"`

	Source string `yaml:"-" json:"-"` // "file:line" of the entry
}

// Image is the operating system a version writes to disk.
type Image struct {
	URL string `yaml:"url" json:"url" schema:"required" desc:"a path under the artifacts directory or an http(s) URL"`
	// SHA256 is the digest of the file at URL, except for a chunked
	// image: the digest of the whole image as it ends on the disk
	// (uncompressed), which its index states too.
	SHA256 string `yaml:"sha256" json:"sha256" schema:"required,pattern=sha256" desc:"hex digest of the image as stored (compressed); for chunked, of the whole uncompressed image (rackboot image add prints it)"`
	// Format is how the stored image is compressed. When omitted it is
	// inferred from the URL's extension (.gz, .zst, .xz; .rbidx is
	// chunked; otherwise raw). A chunked image is a chunk index in the
	// artifacts directory, written by `rackboot image add` with its
	// chunks (docs/DESIGN.md, "Chunked images").
	Format string `yaml:"format,omitempty" json:"format" schema:"enum=raw|gzip|zstd|xz|chunked" desc:"compression, or chunked: an index of the artifacts directory's chunk store (rackboot image add); inferred from the extension (.gz, .zst, .xz, .rbidx) when omitted"`
	// Kind says what the image holds: a whole disk (its own partition
	// table; the layout's partitions are added after it) or the contents of
	// the layout's one `content: image` partition. Defaults to whole-disk.
	Kind string `yaml:"kind,omitempty" json:"kind" schema:"enum=whole-disk|partitions" desc:"whole-disk (default) or partitions: the contents of the layout's content: image partition"`
}

// Image kinds.
const (
	KindWholeDisk  = "whole-disk"
	KindPartitions = "partitions"
)

// Layout is how a machine's disk is chosen and partitioned.
type Layout struct {
	Name       string      `yaml:"name" json:"name" schema:"required,pattern=name"`
	Disk       Disk        `yaml:"disk" json:"disk" schema:"required"`
	Partitions []Partition `yaml:"partitions,omitempty" json:"partitions,omitempty"`

	Source string `yaml:"-" json:"-"`
}

// Disk selects the disk to install on: by path, or by a rule over the
// machine's disks.
type Disk struct {
	Path    string `yaml:"path,omitempty" json:"path,omitempty" desc:"a device path such as /dev/sda or /dev/disk/by-id/…; excludes select"`
	Select  string `yaml:"select,omitempty" json:"select,omitempty" schema:"enum=smallest|largest" desc:"pick the smallest or largest disk that passes min_size and type"`
	MinSize string `yaml:"min_size,omitempty" json:"min_size,omitempty" schema:"pattern=size" desc:"refuse disks smaller than this, e.g. 8GiB"`
	Type    string `yaml:"type,omitempty" json:"type,omitempty" schema:"enum=ssd|hdd|nvme" desc:"only consider disks of this kind"`
}

// Partition is one GPT partition of a layout.
type Partition struct {
	Name string `yaml:"name" json:"name" schema:"required,pattern=partname" desc:"GPT partition name, unique in the layout"`
	// Size is a size with a unit (B, KiB, MiB, GiB, TiB; K, M, G, T mean
	// the same; KB, MB, GB, TB are decimal) or "rest" for the remaining
	// space, allowed on the last partition only.
	Size       string `yaml:"size" json:"size" schema:"required,pattern=sizeorrest" desc:"e.g. 512MiB, 20GiB, or rest (last partition only)"`
	Type       string `yaml:"type" json:"type" schema:"required,enum=esp|linux-root|linux|swap|bios-boot"`
	Content    string `yaml:"content,omitempty" json:"content" schema:"enum=image|empty|config" desc:"image: written from the version's image; config: the CIDATA config drive; empty (default): created empty"`
	Filesystem string `yaml:"filesystem,omitempty" json:"filesystem,omitempty" schema:"enum=vfat|ext4|xfs|swap" desc:"file system the installer creates on an empty partition, labelled with the partition's name (xfs: its first 12 bytes, at least 300MiB, with the mkfs.xfs that rackboot initrd carries); a preserved partition keeps the one it has"`
	// Preserve keeps the partition's bytes across reinstalls: user data.
	Preserve bool `yaml:"preserve,omitempty" json:"preserve,omitempty" desc:"keep this partition's data across reinstalls"`
	// Mount is where the installed system mounts the partition (an
	// absolute path), or "swap" to use a swap partition: the config
	// drive adds it to /etc/fstab by its GPT name and mounts it on the
	// first boot (agentapi.Mount).
	Mount string `yaml:"mount,omitempty" json:"mount,omitempty" schema:"pattern=mount" desc:"mount point on the installed system (ext4 and xfs), or swap to use a swap partition; applied by the config drive, by partition name"`

	bytes uint64 // parsed Size; 0 for "rest"
}

// Bytes is the partition's size in bytes, or 0 and true for "rest".
func (p Partition) Bytes() (n uint64, rest bool) { return p.bytes, p.Size == SizeRest }

// SizeRest is the size of a partition that takes the rest of the disk.
const SizeRest = "rest"

// Partition contents.
const (
	ContentEmpty  = "empty"
	ContentImage  = "image"
	ContentConfig = "config"
)

// MountSwap is the mount of a swap partition that the installed system
// uses.
const MountSwap = "swap"

// Config drive formats of a version.
const (
	DriveNoCloud   = "nocloud"
	DriveOpenStack = "openstack"
)

// Network is a machine's network configuration, written to its config
// drive. With neither DHCP nor Address, the machine uses DHCP.
type Network struct {
	DHCP    bool     `yaml:"dhcp,omitempty" json:"dhcp,omitempty" desc:"configure the boot interface by DHCP; excludes address and gateway"`
	Address string   `yaml:"address,omitempty" json:"address,omitempty" desc:"static address with prefix length, e.g. 10.0.1.11/24"`
	Gateway string   `yaml:"gateway,omitempty" json:"gateway,omitempty" desc:"default gateway, inside the address's subnet"`
	DNS     []string `yaml:"dns,omitempty" json:"dns,omitempty" desc:"name server addresses"`
	Search  []string `yaml:"search,omitempty" json:"search,omitempty" desc:"DNS search domains"`
}

// Static reports whether n configures a static address.
func (n Network) Static() bool { return n.Address != "" }

// Prefix is the parsed static address; the zero Prefix when DHCP.
func (n Network) Prefix() netip.Prefix {
	p, _ := netip.ParsePrefix(n.Address)
	return p
}

// User is an account created on the installed machine.
type User struct {
	Name   string   `yaml:"name" json:"name" schema:"required,pattern=username"`
	Groups []string `yaml:"groups,omitempty" json:"groups,omitempty" desc:"supplementary groups"`
	// Password is a crypt(3) hash ($6$…, $y$…); plaintext is refused.
	// Without one the account's password is locked.
	Password string   `yaml:"password,omitempty" json:"password,omitempty" schema:"pattern=crypt" desc:"crypt(3) hash, e.g. from mkpasswd -m sha-512; never plaintext"`
	SSHKeys  []string `yaml:"ssh_keys,omitempty" json:"ssh_keys,omitempty" desc:"authorized_keys lines"`
	Sudo     bool     `yaml:"sudo,omitempty" json:"sudo,omitempty" desc:"grant passwordless sudo"`
	Shell    string   `yaml:"shell,omitempty" json:"shell,omitempty" desc:"login shell, an absolute path"`
}

// CloudConfig is raw cloud-config (packages, runcmd, ntp, …) that a
// profile adds to the host's user-data, by top-level key, each value
// written as it stands in the profile (style and tags kept: `yes` means to
// cloud-init what it means in a user-data file). Keys rackboot writes
// itself are refused (agentapi.ReservedCloudConfigKeys); a bootcmd list
// runs after the mounts' commands. Its values are never modified: a Set
// shares them between hosts.
type CloudConfig map[string]*yaml.Node

// File is an extra file written by cloud-init on first boot.
type File struct {
	Path    string `yaml:"path" json:"path" schema:"required" desc:"absolute path on the installed machine"`
	Content string `yaml:"content" json:"content"`
	Mode    string `yaml:"mode,omitempty" json:"mode,omitempty" schema:"pattern=mode" desc:"octal permissions, e.g. \"0644\""`
	Owner   string `yaml:"owner,omitempty" json:"owner,omitempty" desc:"user:group"`
}

// Host is one machine of the fleet, after defaults and groups were applied.
// It is immutable: never modify a Host returned by a Set.
type Host struct {
	MAC      net.HardwareAddr
	Hostname string
	// Installer is what the host boots to be installed: its own or its
	// group's `installer:`, else its version's installer, else the
	// defaults' installer, with the resolved kernel_args appended. It is
	// nil when none is configured.
	Installer *Installer
	// Source is "file:line" of the host's entry, for messages.
	Source string

	// Group is the group the host names with `group:`, or "".
	Group string
	// Groups are every group that applies to the host, most specific first.
	Groups []string
	Labels map[string]string
	// Version and Layout are nil when the host has none: it can then boot
	// its installer but has no install plan.
	Version    *Version
	Layout     *Layout
	Network    Network
	Users      []User
	SSHKeys    []string
	Files      []File
	KernelArgs string
	// CloudConfig is the extra cloud-config merged into the host's
	// user-data, by top-level key.
	CloudConfig CloudConfig
	// BMC is how the appliance powers the host and asks for a one-time
	// network boot, each key resolved like a setting; nil when no level
	// sets one. A host's BMC is complete (validation refuses a partial
	// one).
	BMC *BMC

	origins []origin
}

// origin records which level set one resolved field.
type origin struct {
	field string
	from  string // "host", "group NAME", "defaults", "version NAME"
}

// Setting is one resolved value of a host and where it came from.
type Setting struct {
	Field string `json:"field"`
	Value string `json:"value"`
	// From is "host", "group NAME", "defaults" or "version NAME" (for an
	// installer that comes with the version).
	From string `json:"from"`
}

// Group is a set of hosts sharing settings, chosen by selectors or named by
// the hosts themselves.
type Group struct {
	Name  string `json:"name"`
	Match Match  `json:"match"`

	Source string `json:"-"`
}

// Match selects the hosts a group applies to. Every selector given must
// match; a group without selectors applies only to hosts that name it.
type Match struct {
	MAC       []string          `yaml:"mac,omitempty" json:"mac,omitempty" schema:"pattern=mac" desc:"MAC addresses of the group's hosts"`
	MACPrefix string            `yaml:"mac_prefix,omitempty" json:"mac_prefix,omitempty" schema:"pattern=macprefix" desc:"1 to 5 leading octets, e.g. 52:54:00"`
	Labels    map[string]string `yaml:"labels,omitempty" json:"labels,omitempty" desc:"labels every host of the group carries"`
}

// BMC is a machine's baseboard management controller (docs/DESIGN.md,
// "Power"). Defaults, groups and hosts may set it, each key resolved like
// a setting, so that a rack's group names the protocol, user and
// credential and each host its own address. The password is never in
// the profiles: credential names a file of the appliance's credentials
// directory (`rackboot serve --bmc-credentials`, or systemd's
// LoadCredential=) that holds it.
type BMC struct {
	Protocol string `yaml:"protocol,omitempty" json:"protocol,omitempty" schema:"enum=ipmi|redfish" desc:"ipmi (IPMI 2.0 over LAN, RMCP+ cipher suite 3) or redfish"`
	Address  string `yaml:"address,omitempty" json:"address,omitempty" desc:"ipmi: host or host:port (UDP, default 623); redfish: https://host[:port] (or http://…)"`
	Username string `yaml:"username,omitempty" json:"username,omitempty" desc:"the BMC user rackboot logs in as"`
	// Credential names the file holding the password, never the password.
	Credential string `yaml:"credential,omitempty" json:"credential,omitempty" schema:"pattern=name" desc:"name of a file in the appliance's credentials directory that holds the password (never the password itself)"`
	// System is the Redfish ComputerSystem's Id; "" means the only one.
	System string `yaml:"system,omitempty" json:"system,omitempty" desc:"redfish only: the ComputerSystem Id when the BMC has several"`
	// InsecureTLS accepts a Redfish certificate that does not verify.
	InsecureTLS bool `yaml:"insecure_tls,omitempty" json:"insecure_tls,omitempty" desc:"redfish over https only: accept a certificate that does not verify (a BMC's self-signed one)"`
}
