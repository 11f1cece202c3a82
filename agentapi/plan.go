package agentapi

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// PlanResponse is the body of GET /api/agent/plan.
type PlanResponse struct {
	// Host is the host name from the profiles, or "".
	Host string `json:"host"`
	MAC  string `json:"mac"`
	// Attempt counts attempts since the last reinstall request, from 1;
	// AttemptID identifies the attempt in the host's history.
	Attempt   int     `json:"attempt"`
	AttemptID int     `json:"attempt_id"`
	Version   Version `json:"version"`
	Plan      Plan    `json:"plan"`
}

// Version names the operating-system version a plan installs.
type Version struct {
	Name   string `json:"name"`
	Number int    `json:"number"`
}

// Plan is everything the agent does to one machine's disk. The appliance
// builds it from the host's profile (profiles.Host.Plan), fills in what
// only it knows (the image's absolute URL and sizes), and serves it as
// JSON; `rackboot render --mac` prints the same bytes.
type Plan struct {
	// Disk chooses the target disk among the machine's disks.
	Disk DiskRule `json:"disk"`

	// Partitions is the GPT layout, in table order. With a whole-disk
	// image these partitions are appended after the image's own, in the
	// free space behind it.
	Partitions []Partition `json:"partitions,omitempty"`

	// Image is the OS image to stream, or nil for none.
	Image *Image `json:"image,omitempty"`

	// ConfigDrive holds the files of the config drive, in the order
	// written (see NoCloud.Render). They go to the partition whose Content
	// is ContentConfigDrive, in FAT32 with that partition's label:
	// ConfigDriveLabel for NoCloud, OpenStackDriveLabel for the OpenStack
	// layout, whose files are in directories.
	ConfigDrive []File `json:"config_drive,omitempty"`

	// WipeData lets this one install destroy preserved partitions of the
	// disk that the plan does not keep as they are: those an earlier
	// install created with preserve: true (the agent marks them on the
	// disk) that the layout drops, renames or no longer preserves, and
	// those it preserves with another size, type, place or file system.
	// Without it the agent refuses such a plan before writing anything.
	// Partitions the plan still keeps as they are stay kept. The
	// appliance sets it only for the first attempt after `rackboot
	// reinstall --wipe-data`; profiles cannot.
	WipeData bool `json:"wipe_data,omitempty"`
}

// DiskRule selects the target disk. Every non-zero field must hold for a
// disk to be chosen.
type DiskRule struct {
	// Path names one disk: "/dev/sda", "/dev/nvme0n1" or a
	// "/dev/disk/by-id/..." name. Empty means any disk that passes the
	// other rules.
	Path string `json:"path,omitempty"`
	// Select breaks ties among several eligible disks: SelectSmallest (the
	// default, usually the boot SSD rather than a data array) or
	// SelectLargest. Equal sizes are ordered by kernel name.
	Select string `json:"select,omitempty"`
	// MinSize is the smallest acceptable disk.
	MinSize Size `json:"min_size,omitempty"`
	// Type restricts the kind of disk: TypeSSD, TypeHDD or TypeNVMe.
	Type string `json:"type,omitempty"`
}

// Disk selection strategies and kinds of disk.
const (
	SelectSmallest = "smallest"
	SelectLargest  = "largest"

	TypeSSD  = "ssd"
	TypeHDD  = "hdd"
	TypeNVMe = "nvme"
)

// Partition is one GPT partition of the plan.
type Partition struct {
	// Name is the GPT partition name (PARTLABEL), unique in the plan and at
	// most 36 UTF-16 code units. It identifies a preserved partition across
	// reinstalls.
	Name string `json:"name"`
	// Type is one of PartitionTypes or a type GUID. "linux-root" is the
	// root type of the agent's architecture (Discoverable Partitions
	// Specification).
	Type string `json:"type"`
	// Size is the partition size; Rest takes the space left. Sizes are
	// rounded up to whole sectors and each partition starts on a 1 MiB
	// boundary.
	Size Size `json:"size"`
	// Content is what the agent writes into the partition: ContentNone,
	// ContentFAT32, ContentImage or ContentConfigDrive.
	Content string `json:"content,omitempty"`
	// Filesystem is the file system the partition is to hold, from the
	// profile's layout: FilesystemVFAT (Content is then ContentFAT32),
	// FilesystemExt4, FilesystemXFS or FilesystemSwap, which the agent
	// creates on an empty partition, labelled with the partition's name;
	// a preserved partition keeps the one it has. xfs needs the mkfs.xfs
	// that `rackboot initrd` carries into the installer; an installer
	// without it refuses the plan before writing anything. Empty for
	// image and config-drive partitions.
	Filesystem string `json:"filesystem,omitempty"`
	// Label is the FAT volume label; the default is "ESP" for an ESP and
	// ConfigDriveLabel for the config drive. Labels are upper case, except
	// OpenStackDriveLabel on a config drive.
	Label string `json:"label,omitempty"`
	// Preserve keeps an existing partition of the same name and size
	// byte-for-byte: it stays where it is, with its GUID, and nothing is
	// written to it. When the new layout would move, resize, overlap or
	// reformat it, the install stops before writing anything. The agent
	// marks the partition on the disk (a GPT attribute bit), so a later
	// plan that drops, renames or unpreserves it is refused too, unless
	// it has WipeData. A preserved partition has no Content.
	Preserve bool `json:"preserve,omitempty"`
}

// PartitionTypes are the partition type names a plan may use besides a
// type GUID.
var PartitionTypes = []string{"esp", "bios-boot", "linux-root", "linux-root-x86-64", "linux-root-arm64", "linux", "swap"}

// Partition contents. An "esp" partition with ContentNone that is not
// preserved gets ContentFAT32, since firmware cannot use an unformatted
// ESP (EffectiveContent).
const (
	ContentNone        = ""
	ContentFAT32       = "fat32"
	ContentImage       = "image"
	ContentConfigDrive = "config-drive"
)

// File systems of a partition.
const (
	FilesystemVFAT = "vfat"
	FilesystemExt4 = "ext4"
	FilesystemXFS  = "xfs"
	FilesystemSwap = "swap"
)

// MinXFSSize is the smallest xfs file system the installer can create:
// mkfs.xfs (xfsprogs 5.19 and later) refuses anything below 300 MiB.
// Profiles validation and the agent both hold layouts to it.
const MinXFSSize = 300 << 20

// ConfigDriveLabel is the volume label cloud-init's NoCloud data source
// looks for ("cidata" is accepted too).
const ConfigDriveLabel = "CIDATA"

// EffectiveContent is p's content after the ESP default.
func (p Partition) EffectiveContent() string {
	if p.Content == ContentNone && p.Type == "esp" && !p.Preserve {
		return ContentFAT32
	}
	return p.Content
}

// EffectiveLabel is p's FAT volume label after the defaults, or "".
func (p Partition) EffectiveLabel() string {
	switch {
	case p.Label != "":
		return p.Label
	case p.EffectiveContent() == ContentConfigDrive:
		return ConfigDriveLabel
	case p.Type == "esp":
		return "ESP"
	}
	return ""
}

// Image is the OS image to stream.
type Image struct {
	// URL is where the agent downloads the image.
	URL string `json:"url"`
	// SHA256 is the hex digest of the image file as stored, that is of
	// the compressed bytes, as printed by sha256sum on the catalog's file.
	SHA256 string `json:"sha256"`
	// Format is FormatZstd, FormatGzip, FormatXz or FormatRaw. Empty means
	// detected from the stream's magic bytes, raw if none matches.
	Format string `json:"format,omitempty"`
	// Kind is KindWholeDisk (the image brings its own partition table) or
	// KindPartitions (the image is the contents of the one partition
	// whose Content is ContentImage). Empty means whole-disk unless such a
	// partition exists.
	Kind string `json:"kind,omitempty"`
	// Size is the size of the file as stored (compressed), in bytes; 0
	// when the appliance cannot tell (an image on another server).
	Size int64 `json:"size,omitempty"`
	// RawSize is the decompressed size in bytes; 0 when unknown. It lets
	// the agent refuse a too-small target before writing and report its
	// progress as a fraction of a known total.
	RawSize int64 `json:"raw_size,omitempty"`

	// With FormatChunked, URL is the image's chunk index (imaging.Index,
	// written by `rackboot image add`), SHA256 the digest of the whole
	// image as it ends on the disk (uncompressed), Size the bytes of its
	// stored chunks (compressed, all-zero chunks not counted) and
	// RawSize the image's size, which the index states too.
	//
	// Chunks is the URL of the chunk store: the chunk whose SHA-256 is
	// ID is ChunkURL(Chunks, ID). Required with FormatChunked, empty
	// otherwise.
	Chunks string `json:"chunks,omitempty"`
	// Seed is the index of the version the machine ran when the plan
	// was made, according to the appliance's registry, when that version
	// is chunked too: a chunk of the new image that is not already in
	// place may be elsewhere on the disk in the old image, and is
	// copied from there (verified) instead of fetched. Nil means no
	// such index; chunks already in place are still found by reading
	// the disk.
	Seed *Seed `json:"seed,omitempty"`
	// Peers, with FormatChunked, turns on peer distribution (docs/
	// DESIGN.md, "Peer distribution"): the agent serves the chunks it
	// has verified on its disk to its peers, reports what it holds
	// (PathHoldings), and fetches chunks where the appliance redirects
	// it. Nil: the agent fetches every chunk from the appliance and
	// serves nothing.
	Peers *PeerSettings `json:"peers,omitempty"`
}

// PeerSettings is how an agent takes part in peer distribution.
type PeerSettings struct {
	// Port is the TCP port the agent serves chunks on (PeerChunks), on
	// every address of the machine.
	Port int `json:"port"`
	// LingerMS is how long the agent keeps serving after its done was
	// accepted, at most, in milliseconds; it stops earlier when the
	// appliance says the wave has ended (HoldingsReply.Serve false) or
	// when no peer has asked for a while. 0: it stops at done.
	LingerMS int64 `json:"linger_ms,omitempty"`
}

// Seed names the chunk index of the image a machine's disk holds.
type Seed struct {
	// Version is the version's name, for the logs.
	Version string `json:"version"`
	// URL is the index.
	URL string `json:"url"`
}

// MaxChunkBatch is the most chunks one ChunksURL request names.
const MaxChunkBatch = 64

// ChunksURL is the URL of several chunks of the chunk store at base in
// one response: base with "ids=ID,ID,…" added to its query. The appliance
// answers the chunks' files one after the other, in that order, or 404
// when it lacks any of them.
func ChunksURL(base string, ids []string) string {
	path, query, _ := strings.Cut(base, "?")
	u := strings.TrimSuffix(path, "/") + "?ids=" + strings.Join(ids, ",")
	if query != "" {
		u += "&" + query
	}
	return u
}

// ChunkURL is the URL of chunk id (64 hex digits, its SHA-256) in the
// chunk store at base: base's path with "/XXXX/ID.zst" appended, XXXX the
// first four hex digits, and base's query kept.
func ChunkURL(base, id string) string {
	path, query, _ := strings.Cut(base, "?")
	u := strings.TrimSuffix(path, "/") + "/" + id[:4] + "/" + id + ".zst"
	if query != "" {
		u += "?" + query
	}
	return u
}

// Image formats.
const (
	FormatAuto = ""
	FormatRaw  = "raw"
	FormatGzip = "gzip"
	FormatZstd = "zstd"
	FormatXz   = "xz"
	// FormatChunked is an image cut into content-defined chunks, each
	// stored once, compressed, named by its SHA-256 (see Image).
	FormatChunked = "chunked"
)

// Image kinds.
const (
	KindWholeDisk  = "whole-disk"
	KindPartitions = "partitions"
)

// File is one file of the config drive.
type File struct {
	// Name is the file's path in the drive, relative to its root: a file
	// name, or directories and a file name separated by "/" (the OpenStack
	// layout's "openstack/latest/user_data"). FAT compares names without
	// case, so two names may not differ in case only.
	Name string `json:"name"`
	// Content is the file's text (UTF-8).
	Content string `json:"content"`
}

// WholeDisk reports whether the plan's image goes to the whole disk.
func (p *Plan) WholeDisk() bool {
	if p.Image == nil {
		return false
	}
	if p.Image.Kind != "" {
		return p.Image.Kind == KindWholeDisk
	}
	for _, part := range p.Partitions {
		if part.Content == ContentImage {
			return false
		}
	}
	return true
}

// ErrInvalidPlan wraps every error of Plan.Validate.
var ErrInvalidPlan = errors.New("agentapi: invalid plan")

// Validate reports the first inconsistency of the plan, wrapped in
// ErrInvalidPlan. The appliance validates a plan before serving it, the
// agent before touching the disk.
func (p *Plan) Validate() error {
	if err := p.validate(); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidPlan, err)
	}
	return nil
}

var (
	guidRE = regexp.MustCompile(`^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$`)
	// fatLabelRE is what FAT accepts in a volume label that every OS
	// shows alike.
	fatLabelRE = regexp.MustCompile(`^[A-Z0-9_-]{1,11}$`)
)

// IsTypeGUID reports whether t is a partition type GUID rather than a name.
func IsTypeGUID(t string) bool { return guidRE.MatchString(t) }

func (p *Plan) validate() error {
	switch p.Disk.Select {
	case "", SelectSmallest, SelectLargest:
	default:
		return fmt.Errorf("disk select %q: want %q or %q", p.Disk.Select, SelectSmallest, SelectLargest)
	}
	switch p.Disk.Type {
	case "", TypeSSD, TypeHDD, TypeNVMe:
	default:
		return fmt.Errorf("disk type %q: want %q, %q or %q", p.Disk.Type, TypeSSD, TypeHDD, TypeNVMe)
	}
	if p.Disk.MinSize < 0 {
		return fmt.Errorf("disk min_size %v", p.Disk.MinSize)
	}
	if len(p.Partitions) > 128 {
		return fmt.Errorf("%d partitions, a GPT holds 128", len(p.Partitions))
	}
	names := make(map[string]bool)
	var rest, images, drives int
	for i, part := range p.Partitions {
		where := fmt.Sprintf("partition %d (%q)", i+1, part.Name)
		if part.Name == "" {
			return fmt.Errorf("partition %d: missing name", i+1)
		}
		if n := len(utf16.Encode([]rune(part.Name))); n > 36 {
			return fmt.Errorf("%s: name is %d UTF-16 code units, GPT allows 36", where, n)
		}
		if names[part.Name] {
			return fmt.Errorf("%s: duplicate name", where)
		}
		names[part.Name] = true
		if !IsTypeGUID(part.Type) && !slices.Contains(PartitionTypes, part.Type) {
			return fmt.Errorf("%s: unknown partition type %q", where, part.Type)
		}
		switch {
		case part.Size == Rest:
			rest++
		case part.Size <= 0:
			return fmt.Errorf("%s: size %v", where, part.Size)
		}
		switch part.Content {
		case ContentNone, ContentFAT32:
		case ContentImage:
			images++
		case ContentConfigDrive:
			drives++
		default:
			return fmt.Errorf("%s: unknown content %q", where, part.Content)
		}
		if part.Preserve && part.Content != ContentNone {
			return fmt.Errorf("%s: a preserved partition cannot have content %q", where, part.Content)
		}
		switch part.Filesystem {
		case "":
		case FilesystemVFAT:
			if part.Content != ContentFAT32 && !part.Preserve {
				return fmt.Errorf("%s: file system vfat needs content %q", where, ContentFAT32)
			}
		case FilesystemExt4, FilesystemXFS, FilesystemSwap:
			if part.Content != ContentNone {
				return fmt.Errorf("%s: file system %s on a partition with content %q", where, part.Filesystem, part.Content)
			}
		default:
			return fmt.Errorf("%s: unknown file system %q", where, part.Filesystem)
		}
		if l := part.EffectiveLabel(); l != "" && !fatLabelRE.MatchString(l) &&
			(l != OpenStackDriveLabel || part.Content != ContentConfigDrive) {
			return fmt.Errorf("%s: FAT label %q: want 1-11 of A-Z 0-9 _ -", where, l)
		}
	}
	if rest > 1 {
		return fmt.Errorf("%d partitions of size rest, at most one", rest)
	}
	if images > 1 {
		return fmt.Errorf("%d partitions with content image, at most one", images)
	}
	if drives > 1 {
		return fmt.Errorf("%d config-drive partitions, at most one", drives)
	}
	if images == 1 && p.Image == nil {
		return errors.New("a partition has content image but the plan has no image")
	}
	if len(p.ConfigDrive) > 0 && drives == 0 {
		return errors.New("config drive files but no config-drive partition")
	}
	// The drive's files by lower-case name: FAT names are
	// case-insensitive.
	paths := make(map[string]bool, len(p.ConfigDrive))
	for _, f := range p.ConfigDrive {
		if err := checkDrivePath(f.Name); err != nil {
			return err
		}
		name := strings.ToLower(f.Name)
		if paths[name] {
			return fmt.Errorf("config drive file %q twice", f.Name)
		}
		paths[name] = true
		if !utf8.ValidString(f.Content) {
			return fmt.Errorf("config drive file %q: content is not UTF-8", f.Name)
		}
	}
	for _, f := range p.ConfigDrive {
		for dir := path.Dir(f.Name); dir != "."; dir = path.Dir(dir) {
			if paths[strings.ToLower(dir)] {
				return fmt.Errorf("config drive file %q is inside file %q", f.Name, dir)
			}
		}
	}
	if img := p.Image; img != nil {
		if err := img.validate(images); err != nil {
			return fmt.Errorf("image: %v", err)
		}
	}
	return nil
}

func (img *Image) validate(imageParts int) error {
	if img.URL == "" {
		return errors.New("missing url")
	}
	if b, err := hex.DecodeString(img.SHA256); err != nil || len(b) != 32 {
		return fmt.Errorf("sha256 %q is not 64 hex digits", img.SHA256)
	}
	switch img.Format {
	case FormatAuto, FormatRaw, FormatGzip, FormatZstd, FormatXz:
		if img.Chunks != "" || img.Seed != nil || img.Peers != nil {
			return fmt.Errorf("chunks, seed and peers are for format %q only", FormatChunked)
		}
	case FormatChunked:
		if img.Chunks == "" {
			return errors.New("a chunked image without chunks (the chunk store's URL)")
		}
		if s := img.Seed; s != nil && (s.URL == "" || s.Version == "") {
			return errors.New("seed without url or version")
		}
		if p := img.Peers; p != nil && (p.Port < 1 || p.Port > 65535 || p.LingerMS < 0) {
			return fmt.Errorf("peers: port %d (want 1-65535), linger_ms %d", p.Port, p.LingerMS)
		}
	default:
		return fmt.Errorf("unknown format %q", img.Format)
	}
	switch img.Kind {
	case "":
	case KindWholeDisk:
		if imageParts > 0 {
			return errors.New("a whole-disk image, but a partition has content image")
		}
	case KindPartitions:
		if imageParts == 0 {
			return errors.New("a partition image, but no partition has content image")
		}
	default:
		return fmt.Errorf("unknown kind %q", img.Kind)
	}
	if img.Size < 0 || img.RawSize < 0 {
		return fmt.Errorf("size %d, raw_size %d", img.Size, img.RawSize)
	}
	return nil
}

// maxDriveDepth bounds the directories of a config drive file: the
// OpenStack layout needs two.
const maxDriveDepth = 4

// checkDrivePath accepts a relative path of FAT long names: no empty, "."
// or ".." elements, none of the characters FAT refuses (control
// characters, " * / : < > ? \ |), no element ending in a dot or a space
// (Windows and fsck.vfat strip them), at most 255 UTF-16 units each.
func checkDrivePath(name string) error {
	elems := strings.Split(name, "/")
	if !fs.ValidPath(name) || name == "." || len(elems) > maxDriveDepth+1 {
		return fmt.Errorf("config drive file name %q: want a relative path of at most %d directories and a file name", name, maxDriveDepth)
	}
	for _, e := range elems {
		if strings.ContainsFunc(e, func(r rune) bool { return r < ' ' || r == 0x7f || strings.ContainsRune(`"*:<>?\|`, r) }) ||
			strings.HasSuffix(e, ".") || strings.HasSuffix(e, " ") || len(utf16.Encode([]rune(e))) > 255 {
			return fmt.Errorf("config drive file name %q: %q is no FAT long name", name, e)
		}
	}
	return nil
}
