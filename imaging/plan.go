package imaging

import (
	"encoding/hex"
	"fmt"
	"io/fs"
	"regexp"
	"runtime"
	"strings"
	"unicode/utf16"

	"github.com/diskfs/go-diskfs/partition/gpt"
)

// Plan is everything the agent does to one machine's disk. The appliance
// sends it as JSON; the field names below are the wire format.
type Plan struct {
	// Disk chooses the target disk among the machine's disks.
	Disk DiskRule `json:"disk"`

	// Partitions is the GPT layout, in disk order. With an Image and no
	// partition whose Content is "image", the image is written to the whole
	// disk and these partitions are appended after the image's own, in the
	// free space behind it.
	Partitions []Partition `json:"partitions,omitempty"`

	// Image is the OS image to stream, or nil for none.
	Image *Image `json:"image,omitempty"`

	// ConfigDrive holds the files of the config drive, by name in its root
	// directory ("meta-data", "user-data", "network-config"; see
	// NoCloud.Render). They are written to the partition whose Content is
	// "config-drive". In JSON each value is base64, as encoding/json does
	// for []byte.
	ConfigDrive map[string][]byte `json:"config_drive,omitempty"`
}

// DiskRule selects the target disk. Every non-zero field must hold for a
// disk to be chosen.
type DiskRule struct {
	// Path names one disk: "/dev/sda", "/dev/nvme0n1" or a
	// "/dev/disk/by-id/..." name. Empty means any disk that passes the
	// other rules.
	Path string `json:"path,omitempty"`
	// Select breaks ties among several eligible disks: "smallest" (the
	// default, usually the boot SSD rather than a data array) or
	// "largest". Equal sizes are ordered by kernel name.
	Select string `json:"select,omitempty"`
	// MinSize is the smallest acceptable disk.
	MinSize Size `json:"min_size,omitempty"`
	// Type restricts the kind of disk: "ssd", "hdd" or "nvme".
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
	// Type is "esp", "bios-boot", "linux-root" (the root type of the
	// agent's architecture, per the Discoverable Partitions Specification),
	// "linux-root-x86-64", "linux-root-arm64", "linux", "swap", or a type
	// GUID.
	Type string `json:"type"`
	// Size is the partition size; Rest takes the space left. Sizes are
	// rounded up to whole sectors and each partition starts on a 1 MiB
	// boundary.
	Size Size `json:"size"`
	// Content is what the installer writes into the partition: "" for
	// nothing (a swap or data partition the OS formats; its first MiB is
	// zeroed so no stale file system signature survives), "fat32" for an
	// empty FAT32 file system, "image" for the plan's Image, or
	// "config-drive" for a FAT32 file system labelled CIDATA holding
	// ConfigDrive. An "esp" partition with no Content gets "fat32", since
	// firmware cannot use an unformatted ESP.
	Content string `json:"content,omitempty"`
	// Label is the FAT volume label; the default is "ESP" for an ESP and
	// "CIDATA" (what cloud-init's NoCloud looks for) for the config drive.
	Label string `json:"label,omitempty"`
	// Preserve keeps an existing partition of the same name and size
	// byte-for-byte: it stays where it is, with its GUID, and nothing is
	// written to it. When the new layout would move, resize or overlap it,
	// the install stops with ErrLayoutChanged before writing anything. A
	// preserved partition has no Content.
	Preserve bool `json:"preserve,omitempty"`
}

// Partition contents.
const (
	ContentNone        = ""
	ContentFAT32       = "fat32"
	ContentImage       = "image"
	ContentConfigDrive = "config-drive"
)

// Image is the OS image to stream.
type Image struct {
	// URL is where the agent downloads the image (from the appliance).
	URL string `json:"url"`
	// SHA256 is the hex digest of the image file as published, that is of
	// the compressed bytes, as printed by sha256sum on the catalog's file.
	SHA256 string `json:"sha256"`
	// Format is "zstd", "gzip", "xz" or "raw". Empty means detected from
	// the stream's magic bytes, raw if none matches.
	Format string `json:"format,omitempty"`
	// Size is the decompressed size in bytes when known: it lets the
	// installer refuse a too-small target before writing and report
	// progress as a fraction.
	Size int64 `json:"size,omitempty"`
}

// Image formats.
const (
	FormatAuto = ""
	FormatRaw  = "raw"
	FormatGzip = "gzip"
	FormatZstd = "zstd"
	FormatXz   = "xz"
)

// partTypes maps plan type names to GPT type GUIDs.
var partTypes = map[string]gpt.Type{
	"esp":               gpt.EFISystemPartition,
	"bios-boot":         gpt.BIOSBoot,
	"linux":             gpt.LinuxFilesystem,
	"swap":              gpt.LinuxSwap,
	"linux-root-x86-64": gpt.LinuxRootX86_64,
	"linux-root-arm64":  gpt.LinuxRootArm64,
}

var guidRE = regexp.MustCompile(`^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$`)

// gptType returns the type GUID of a plan partition type.
func gptType(t string) (gpt.Type, error) {
	if t == "linux-root" {
		switch runtime.GOARCH {
		case "amd64":
			return gpt.LinuxRootX86_64, nil
		case "arm64":
			return gpt.LinuxRootArm64, nil
		}
		return "", fmt.Errorf("no linux-root partition type for %s; name it explicitly", runtime.GOARCH)
	}
	if g, ok := partTypes[t]; ok {
		return g, nil
	}
	if guidRE.MatchString(t) {
		return gpt.Type(strings.ToUpper(t)), nil
	}
	return "", fmt.Errorf("unknown partition type %q", t)
}

// content returns the effective content of p, applying the ESP default.
func (p Partition) content() string {
	if p.Content == ContentNone && p.Type == "esp" && !p.Preserve {
		return ContentFAT32
	}
	return p.Content
}

// label returns the effective FAT volume label of p.
func (p Partition) label() string {
	switch {
	case p.Label != "":
		return p.Label
	case p.content() == ContentConfigDrive:
		return "CIDATA"
	case p.Type == "esp":
		return "ESP"
	}
	return ""
}

// wholeDisk reports whether the plan's image goes to the whole disk.
func (p *Plan) wholeDisk() bool {
	if p.Image == nil {
		return false
	}
	for _, part := range p.Partitions {
		if part.Content == ContentImage {
			return false
		}
	}
	return true
}

// fatLabelRE is what FAT accepts in a volume label that every OS shows alike.
var fatLabelRE = regexp.MustCompile(`^[A-Z0-9_-]{1,11}$`)

// Validate reports the first inconsistency of the plan, wrapped in
// ErrInvalidPlan. Install validates the plan before touching the disk.
func (p *Plan) Validate() error {
	if err := p.validate(); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidPlan, err)
	}
	return nil
}

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
		if _, err := gptType(part.Type); err != nil {
			return fmt.Errorf("%s: %v", where, err)
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
		if l := part.label(); l != "" && !fatLabelRE.MatchString(l) {
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
		return fmt.Errorf("a partition has content image but the plan has no image")
	}
	if len(p.ConfigDrive) > 0 && drives == 0 {
		return fmt.Errorf("config drive files but no config-drive partition")
	}
	for name := range p.ConfigDrive {
		// Flat names only: NoCloud needs no directories, and go-diskfs
		// writes a ".." entry in top-level directories that fsck.vfat
		// reports as invalid.
		if !fs.ValidPath(name) || name == "." || strings.Contains(name, "/") {
			return fmt.Errorf("config drive file name %q: want a plain file name", name)
		}
	}
	if img := p.Image; img != nil {
		if img.URL == "" {
			return fmt.Errorf("image: missing url")
		}
		if b, err := hex.DecodeString(img.SHA256); err != nil || len(b) != 32 {
			return fmt.Errorf("image: sha256 %q is not 64 hex digits", img.SHA256)
		}
		switch img.Format {
		case FormatAuto, FormatRaw, FormatGzip, FormatZstd, FormatXz:
		default:
			return fmt.Errorf("image: unknown format %q", img.Format)
		}
		if img.Size < 0 {
			return fmt.Errorf("image: size %d", img.Size)
		}
	}
	return nil
}
