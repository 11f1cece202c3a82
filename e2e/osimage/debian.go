package osimage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"time"

	"github.com/rackboot/rackboot/e2e/lab"
)

// debianRevision changes whenever BuildDebian makes different bytes from
// the same inputs in a way the key does not see (the layout, the tools'
// flags; the files it writes are in the key), so cached images are
// rebuilt.
const debianRevision = "osimage-debian-1"

// DebianSuite is the Debian release BuildDebian installs: Debian 12.
const DebianSuite = "bookworm"

// Defaults of DebianConfig.
const (
	// DefaultDebianDiskSize is the size of the disk image: the root
	// file system holds about 850 MiB of packages and has half a GiB
	// free. The installer grows the root partition to the disk and
	// cloud-init the file system.
	DefaultDebianDiskSize = 1536 * mib
	DefaultMirror         = "http://deb.debian.org/debian"
	DefaultSecurityMirror = "http://deb.debian.org/debian-security"
)

// DefaultEpoch is the SOURCE_DATE_EPOCH of a build when DebianConfig.Epoch
// is zero: 2025-05-20, a date in Debian 12's life and in the past of any
// machine that runs the image (a time stamp in the future makes e2fsck and
// make complain).
var DefaultEpoch = time.Date(2025, 5, 20, 0, 0, 0, 0, time.UTC)

// minDebianDiskSize holds the packages with little room to spare.
const minDebianDiskSize = 1024 * mib

// DebianConfig configures BuildDebian. Only Version is required.
type DebianConfig struct {
	// Version names the image, such as "debian-12.1": its file name,
	// IMAGE_VERSION in its os-release, and the seed of its GUIDs and
	// file system UUIDs. Lower-case letters, digits, ".", "_" and "-".
	Version string
	// Packages are installed besides DebianPackages(), with their
	// dependencies: two versions can differ by a package.
	Packages []string
	// Files are written into the root file system after the packages
	// are installed, replacing what is there: two versions can differ
	// by a file.
	Files []RootFile
	// DiskSize is the size of the disk image in bytes, a multiple of
	// 1 MiB; DefaultDebianDiskSize when zero.
	DiskSize int64
	// Mirror and SecurityMirror are the Debian archives to install
	// from, which the installed system's apt uses too;
	// DefaultMirror and DefaultSecurityMirror when empty.
	Mirror, SecurityMirror string
	// Epoch is SOURCE_DATE_EPOCH: mmdebstrap's and the initramfs's
	// time stamps, and every time in the root file system newer than it
	// is set to it. DefaultEpoch when zero.
	Epoch time.Time
	// CacheDir is lab's cache and holds the images when Dir is empty;
	// lab.DefaultCacheDir() when empty.
	CacheDir string
	// Dir receives VERSION.img.zst and its manifest VERSION.json;
	// CacheDir/osimage when empty. An image there built from the same
	// inputs is reused.
	Dir string
	// Log receives progress messages; nil discards them.
	Log *slog.Logger
}

// RootFile is a file BuildDebian writes into the root file system.
type RootFile struct {
	Path    string      // absolute, such as "/etc/motd"
	Mode    fs.FileMode // permission bits; 0644 when zero
	Content string
}

func (c DebianConfig) diskSize() int64 {
	if c.DiskSize == 0 {
		return DefaultDebianDiskSize
	}
	return c.DiskSize
}

func (c DebianConfig) epoch() time.Time {
	if c.Epoch.IsZero() {
		return DefaultEpoch
	}
	return c.Epoch.UTC().Truncate(time.Second)
}

func (c DebianConfig) mirror() string         { return or(c.Mirror, DefaultMirror) }
func (c DebianConfig) securityMirror() string { return or(c.SecurityMirror, DefaultSecurityMirror) }

// DebianPackages returns the packages of every Debian image, besides
// Debian's required set (mmdebstrap's minbase variant):
//
//   - systemd as init, udev, D-Bus and logind sessions;
//   - the distribution kernel (linux-image-amd64, whose image is the one
//     signed for Secure Boot) and an initramfs-tools initramfs, zstd
//     compressed;
//   - cloud-init with growpart (cloud-guest-utils, sfdisk from fdisk),
//     resize2fs (e2fsprogs), and netplan rendering its network
//     configuration for systemd-networkd, with systemd-resolved for the
//     name servers it gives: the network stack of Debian 12's cloud
//     images;
//   - openssh-server and sudo, for logging in;
//   - GRUB for BIOS and UEFI (the -bin packages: the modules and boot
//     images, not the packages that run grub-install on upgrades);
//   - a few tools every administrator expects (ip, ping, less, ps).
func DebianPackages() []string {
	return []string{
		"systemd-sysv", "udev", "dbus", "libpam-systemd",
		"linux-image-amd64", "initramfs-tools", "zstd", "kmod",
		"cloud-init", "cloud-guest-utils", "fdisk", "e2fsprogs", "netplan.io", "systemd-resolved",
		"openssh-server", "openssh-sftp-server", "sudo",
		"grub-pc-bin", "grub-efi-amd64-bin",
		"iproute2", "iputils-ping", "less", "procps", "ca-certificates", "netbase",
	}
}

// packageRE is a Debian package name (Debian Policy 5.6.1). mmdebstrap
// splits --include at commas and spaces, so nothing else may pass.
var packageRE = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+$`)

func (c DebianConfig) validate() error {
	if !versionRE.MatchString(c.Version) {
		return fmt.Errorf("osimage: version %q: want 1 to 32 of a-z 0-9 . _ - starting with a letter or digit", c.Version)
	}
	for _, p := range c.Packages {
		if !packageRE.MatchString(p) {
			return fmt.Errorf("osimage: package %q is not a Debian package name", p)
		}
	}
	seen := map[string]bool{}
	for _, f := range c.Files {
		if !path.IsAbs(f.Path) || path.Clean(f.Path) != f.Path || f.Path == "/" {
			return fmt.Errorf("osimage: file %q: want a clean absolute path", f.Path)
		}
		if seen[f.Path] {
			return fmt.Errorf("osimage: file %q given twice", f.Path)
		}
		seen[f.Path] = true
		if f.Mode&^fs.ModePerm != 0 {
			return fmt.Errorf("osimage: file %q: mode %v: want permission bits only", f.Path, f.Mode)
		}
	}
	if s := c.diskSize(); s < minDebianDiskSize || s%mib != 0 {
		return fmt.Errorf("osimage: disk size %d: want a multiple of 1 MiB, at least %d", s, int64(minDebianDiskSize))
	}
	return nil
}

// includes is mmdebstrap's --include list: the image's packages, then the
// version's, without repeats.
func (c DebianConfig) includes() []string {
	out := DebianPackages()
	for _, p := range c.Packages {
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

// BuildDebian builds a Debian 12 whole-disk image with mmdebstrap, or
// returns the one in the cache built from the same inputs: the same
// configuration and the same versions of every package, which it asks the
// mirror for first (mmdebstrap --simulate, some seconds). It needs root:
// mmdebstrap installs the packages in a chroot. Builds of one version take
// turns; different versions build at once.
//
// The image is a GPT disk of DiskSize bytes:
//
//	LBA 0         GRUB's boot.img, loading core.img from the BIOS boot partition
//	1 bios-boot   1 MiB: GRUB's core.img for BIOS (biosdisk, GPT, ext4)
//	2 esp         126 MiB FAT32: EFI/BOOT/BOOTX64.EFI, GRUB for x86-64 UEFI
//	3 root-x86-64 the rest: ext4, the Debian system, and GRUB's modules and
//	              grub.cfg in /boot/grub
//
// Both GRUBs find the root file system by its UUID and boot /vmlinuz with
// /initrd.img and root=PARTUUID=. The root partition is the last, so an
// installer and cloud-init can grow it. configureRoot says how the system
// is set up to configure itself on first boot.
func BuildDebian(ctx context.Context, cfg DebianConfig) (*Image, error) {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if err := CheckDebianHost(); err != nil {
		return nil, err
	}
	dir := or(cfg.Dir, filepath.Join(or(cfg.CacheDir, lab.DefaultCacheDir()), "osimage"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("osimage: %w", err)
	}
	unlock, err := lab.LockFile(filepath.Join(dir, "."+cfg.Version+".lock"))
	if err != nil {
		return nil, err
	}
	defer unlock()

	start := time.Now()
	resolved, err := resolvePackages(ctx, cfg)
	if err != nil {
		return nil, err
	}
	key, err := debianKey(cfg, resolved)
	if err != nil {
		return nil, err
	}
	final := filepath.Join(dir, cfg.Version+".img.zst")
	manifest := filepath.Join(dir, cfg.Version+".json")
	if im, ok := cached(manifest, final, key); ok {
		log.Info("image up to date", "version", cfg.Version, "path", final, "seconds", time.Since(start).Seconds())
		return im, nil
	}
	log.Info("building image", "version", cfg.Version, "packages", len(resolved), "path", final)

	work, err := os.MkdirTemp(dir, ".build-"+cfg.Version+"-")
	if err != nil {
		return nil, fmt.Errorf("osimage: %w", err)
	}
	defer os.RemoveAll(work)
	root := filepath.Join(work, "root")
	if err := mmdebstrap(ctx, cfg, root, filepath.Join(work, "mmdebstrap.log")); err != nil {
		return nil, err
	}
	log.Info("packages installed", "version", cfg.Version, "seconds", time.Since(start).Seconds())
	installed, err := installedPackages(ctx, root)
	if err != nil {
		return nil, err
	}
	if diff := versionDiff(resolved, installed); len(diff) > 0 {
		// The mirror changed between the two runs: the next build sees
		// the new versions and rebuilds.
		log.Warn("the mirror changed during the build", "version", cfg.Version, "packages", diff)
	}
	release, err := kernelRelease(root)
	if err != nil {
		return nil, err
	}
	ids := debianIDsOf(cfg.Version)
	if err := configureRoot(cfg, root, ids); err != nil {
		return nil, err
	}
	boot, err := makeGRUB(ctx, root, ids)
	if err != nil {
		return nil, err
	}
	raw := filepath.Join(work, cfg.Version+".img")
	if err := writeDebianDisk(ctx, raw, cfg.diskSize(), cfg.epoch(), ids, root, boot); err != nil {
		return nil, err
	}
	log.Info("disk written", "version", cfg.Version, "seconds", time.Since(start).Seconds())
	im := &Image{Version: cfg.Version, Path: final, Kernel: release, Packages: installed, Key: key}
	if err := compress(raw, final, im); err != nil {
		return nil, err
	}
	err = lab.WriteAtomic(manifest, func(w io.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(im)
	})
	if err != nil {
		return nil, err
	}
	log.Info("image built", "version", cfg.Version, "path", final, "size", im.Size, "raw_size", im.UncompressedSize,
		"sha256", im.SHA256, "seconds", time.Since(start).Seconds())
	return im, nil
}

// CheckDebianHost reports what this machine lacks to run BuildDebian,
// naming the Debian package of each missing command.
func CheckDebianHost() error {
	var errs []error
	if os.Geteuid() != 0 {
		errs = append(errs, errors.New("not root (mmdebstrap installs the packages in a chroot)"))
	}
	for _, r := range debianRequirements() {
		if _, err := lookPath(r.command); err != nil {
			errs = append(errs, fmt.Errorf("command %s missing (package %s)", r.command, r.pkg))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("osimage: this host cannot build the Debian image: %w", errors.Join(errs...))
	}
	return nil
}

func debianRequirements() []requirement {
	return []requirement{
		{command: "mmdebstrap", pkg: "mmdebstrap"},
		{command: "dpkg-query", pkg: "dpkg"},
		{command: "chroot", pkg: "coreutils"},
		{command: "mkfs.ext4", pkg: "e2fsprogs"},
		{command: "debugfs", pkg: "e2fsprogs"},
		{command: "e2fsck", pkg: "e2fsprogs"},
		{command: "mkfs.vfat", pkg: "dosfstools"},
		{command: "mmd", pkg: "mtools"},
		{command: "mcopy", pkg: "mtools"},
	}
}
