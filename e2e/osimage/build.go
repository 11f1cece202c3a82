package osimage

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/rackboot/rackboot/e2e/lab"
)

// revision changes whenever the builder makes different bytes from the
// same inputs (layout, scripts, tools' flags), so cached images are
// rebuilt.
const revision = "osimage-1"

// Config configures Build. Only Version is required.
type Config struct {
	// Version names the OS version, such as "demo-1.0": VERSION_ID in
	// its os-release, the image's file name, and the seed of its GUIDs.
	// Lower-case letters, digits, ".", "_" and "-".
	Version string
	// Kernel is the distribution kernel to boot (a bzImage with the EFI
	// stub, such as lab.Artifacts.Kernel). When empty, lab.BuildArtifacts
	// fetches it into CacheDir, which needs root.
	Kernel string
	// ModulesDir is the kernel's modules directory (with modules.dep).
	// When empty it is found next to the kernel as Debian lays them out:
	// ROOT/boot/vmlinuz-VERSION and ROOT/lib/modules/VERSION (or
	// ROOT/usr/lib/...), which fits both lab's cache and an installed
	// system.
	ModulesDir string
	// CacheDir is lab's cache, for the kernel when Kernel is empty, and
	// holds the images when Dir is empty; lab.DefaultCacheDir() when
	// empty.
	CacheDir string
	// Dir receives VERSION.img.zst and its manifest VERSION.json;
	// CacheDir/osimage when empty. An image there built from the same
	// inputs is reused.
	Dir string
	// Files of Debian packages; the Default* constants when empty.
	Busybox string
	Stub    string
	GPTMBR  string
	// Log receives progress messages; nil discards them.
	Log *slog.Logger
}

func (c Config) busybox() string { return or(c.Busybox, DefaultBusybox) }
func (c Config) stub() string    { return or(c.Stub, DefaultStub) }
func (c Config) gptmbr() string  { return or(c.GPTMBR, DefaultGPTMBR) }

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Image is a built image: what a catalog lists.
type Image struct {
	Version string `json:"version"`
	// Path is the zstd-compressed image, the file to publish.
	Path string `json:"path"`
	// Size and SHA256 are those of the compressed file (what sha256sum
	// prints for it, and what an agentapi.Plan checks).
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// UncompressedSize is the size of the disk image, DiskSize
	// (agentapi.Image.RawSize).
	UncompressedSize   int64  `json:"uncompressed_size"`
	UncompressedSHA256 string `json:"uncompressed_sha256"`
	// Kernel is the release of the kernel inside (uname -r).
	Kernel string `json:"kernel"`
	// Packages are the Debian packages the build used, with their
	// versions, as far as dpkg knows them.
	Packages map[string]string `json:"packages,omitempty"`
	// Key is the digest of every input; it decides whether an image in
	// Config.Dir can be reused.
	Key string `json:"key"`
}

var versionRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,31}$`)

// Build builds the image of cfg.Version, or returns the one in cfg.Dir
// built from the same inputs. Concurrent builds in one Dir take turns.
func Build(ctx context.Context, cfg Config) (*Image, error) {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if !versionRE.MatchString(cfg.Version) {
		return nil, fmt.Errorf("osimage: version %q: want 1 to 32 of a-z 0-9 . _ - starting with a letter or digit", cfg.Version)
	}
	if err := CheckHost(cfg); err != nil {
		return nil, err
	}
	cache := or(cfg.CacheDir, lab.DefaultCacheDir())
	kernel, modDir := cfg.Kernel, cfg.ModulesDir
	if kernel == "" {
		a, err := lab.BuildArtifacts(ctx, lab.ArtifactsConfig{CacheDir: cache, Busybox: cfg.Busybox, Log: log})
		if err != nil {
			return nil, err
		}
		kernel = a.Kernel
	}
	if modDir == "" {
		var err error
		if modDir, err = modulesDirOf(kernel); err != nil {
			return nil, err
		}
	}
	dir := or(cfg.Dir, filepath.Join(cache, "osimage"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("osimage: %w", err)
	}
	unlock, err := lab.LockFile(filepath.Join(dir, ".lock"))
	if err != nil {
		return nil, err
	}
	defer unlock()

	start := time.Now()
	in, err := readInputs(cfg, kernel, modDir)
	if err != nil {
		return nil, err
	}
	final := filepath.Join(dir, cfg.Version+".img.zst")
	manifest := filepath.Join(dir, cfg.Version+".json")
	if im, ok := cached(manifest, final, in.key); ok {
		log.Info("image up to date", "version", cfg.Version, "path", final)
		return im, nil
	}
	log.Info("building image", "version", cfg.Version, "kernel", in.kernelRelease, "path", final)

	work, err := os.MkdirTemp(dir, ".build-"+cfg.Version+"-")
	if err != nil {
		return nil, fmt.Errorf("osimage: %w", err)
	}
	defer os.RemoveAll(work)
	sqfs, err := buildRootfs(ctx, work, cfg.Version, cfg.busybox())
	if err != nil {
		return nil, err
	}
	rootfs, err := os.ReadFile(sqfs)
	if err != nil {
		return nil, fmt.Errorf("osimage: %w", err)
	}
	initrd, err := buildInitramfs(cfg.busybox(), modDir, in.modules)
	if err != nil {
		return nil, err
	}
	uki, err := addSections(in.stub, ukiSections(osRelease(cfg.Version), cmdline(), in.kernel, initrd))
	if err != nil {
		return nil, err
	}
	raw := filepath.Join(work, cfg.Version+".img")
	err = writeDisk(ctx, raw, diskContent{
		version: cfg.Version, uki: uki, kernel: in.kernel, initrd: initrd,
		rootfs: rootfs, gptmbr: in.gptmbr, syslinux: in.syslinux,
	})
	if err != nil {
		return nil, err
	}
	im := &Image{Version: cfg.Version, Path: final, Kernel: in.kernelRelease, Packages: packages(ctx), Key: in.key}
	if err := compress(raw, final, im); err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(im, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("osimage: %w", err)
	}
	if err := lab.WriteAtomic(manifest, func(w io.Writer) error { _, err := w.Write(append(b, '\n')); return err }); err != nil {
		return nil, err
	}
	log.Info("image built", "version", cfg.Version, "path", final, "size", im.Size, "sha256", im.SHA256,
		"seconds", time.Since(start).Seconds())
	return im, nil
}
