package rack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/rackboot/rackboot/e2e/lab"
	"github.com/rackboot/rackboot/e2e/osimage"
)

// Versions are the busybox demo OS versions of the example catalog, which
// Build builds for the example rack.
var Versions = []string{"demo-1.0", "demo-1.1"}

// ServeArgs are the flags `rackboot serve` needs for the rack, besides
// the lab's own (lab.RackbootConfig).
//
// --efi-file snponly.efi: UEFI firmware's PXE client gets the iPXE that
// drives the NIC through the firmware's own network interface (SNP)
// instead of ipxe.efi. Both boot the installer alike, but the script of
// an installed machine ends with "exit", handing the boot back to the
// firmware, which then boots the disk: Debian's ipxe.efi, chained from
// OVMF's PXE, never returns from that exit (measured: no firmware output
// for 6 minutes), while snponly.efi returns at once.
var ServeArgs = []string{"--efi-file", "snponly.efi"}

// Names of the installer's files in the artifacts directory: those the
// example catalog's installer names.
const (
	KernelFile = "vmlinuz"
	InitrdFile = "initrd.img"
)

// ImageFile is the name of version's image in the artifacts directory:
// the image url of the example catalog and of the Debian fleet.
func ImageFile(version string) string { return version + ".img.zst" }

// BuildConfig configures Build. Dir is required.
type BuildConfig struct {
	// Dir receives everything: bin/ (rackboot, rackboot-agent),
	// images/ (the busybox demo OS images and their manifests) and
	// artifacts/ (what rackboot serves).
	Dir string
	// Debian makes Build build the OS of the Debian rack (DebianVersion,
	// osimage.BuildDebian, kept in lab's cache) instead of the example
	// rack's busybox demo images.
	Debian bool
	// Log receives the builders' progress messages; nil discards them.
	Log *slog.Logger
	// Step, if set, is told each step before it starts, for people
	// waiting.
	Step func(what string)
}

// Built is what Build made.
type Built struct {
	Rackboot  string // the rackboot binary of this checkout
	Agent     string // rackboot-agent, statically linked
	Artifacts string // the directory rackboot serves as --artifacts
	// Kernel is the lab's distribution kernel, the installer's and the
	// demo OS's.
	Kernel *lab.Artifacts
	// Images are the OS images by version: the busybox demo images,
	// built in Dir/images, or the Debian image in lab's cache.
	Images map[string]*osimage.Image
	// InitrdSize is the size of the agent's initramfs, gzip-compressed.
	InitrdSize int64
}

// Build builds what a rack needs from this checkout and the Debian
// packages: rackboot, the static rackboot-agent, the agent's initramfs
// (`rackboot initrd` with the lab kernel's modules), and the OS images,
// reproducibly; then lays the artifacts out under the names the profiles
// give them. The OS is the example rack's two busybox demo images, or,
// with cfg.Debian, the Debian rack's Debian 12. Only the lab kernel and
// the Debian image come from a cache outside Dir (lab.DefaultCacheDir),
// filled from the Debian mirror on the first run.
func Build(ctx context.Context, cfg BuildConfig) (*Built, error) {
	if cfg.Dir == "" {
		return nil, errors.New("rack: BuildConfig needs Dir")
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	step := cfg.Step
	if step == nil {
		step = func(string) {}
	}
	b := &Built{
		Rackboot:  filepath.Join(cfg.Dir, "bin", "rackboot"),
		Agent:     filepath.Join(cfg.Dir, "bin", "rackboot-agent"),
		Artifacts: filepath.Join(cfg.Dir, "artifacts"),
		Images:    map[string]*osimage.Image{},
	}
	for _, d := range []string{filepath.Dir(b.Rackboot), b.Artifacts} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("rack: %w", err)
		}
	}
	root, err := moduleRoot(ctx)
	if err != nil {
		return nil, err
	}
	step("go build ./cmd/rackboot")
	if err := goBuild(ctx, root, b.Rackboot, "./cmd/rackboot", false); err != nil {
		return nil, err
	}
	step("go build ./cmd/rackboot-agent (static: it is PID 1 of an initramfs without libc)")
	if err := goBuild(ctx, root, b.Agent, "./cmd/rackboot-agent", true); err != nil {
		return nil, err
	}
	step("the Debian kernel (apt-get download on the first run; cached in " + lab.DefaultCacheDir() + ")")
	if b.Kernel, err = lab.BuildArtifacts(ctx, lab.ArtifactsConfig{Log: log}); err != nil {
		return nil, err
	}
	if err := link(b.Kernel.Kernel, filepath.Join(b.Artifacts, KernelFile)); err != nil {
		return nil, err
	}
	initrd := filepath.Join(b.Artifacts, InitrdFile)
	step("rackboot initrd: the agent and the modules of Linux " + b.Kernel.KernelVersion)
	out, err := exec.CommandContext(ctx, b.Rackboot, "initrd", "-o", initrd, "--agent", b.Agent,
		"--modules", b.Kernel.ModulesDir).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("rack: rackboot initrd: %w\n%s", err, out)
	}
	fi, err := os.Stat(initrd)
	if err != nil {
		return nil, fmt.Errorf("rack: %w", err)
	}
	b.InitrdSize = fi.Size()
	if cfg.Debian {
		step("the " + DebianVersion + " image (osimage.BuildDebian: mmdebstrap from the Debian mirror, " +
			"5 to 8 minutes the first time; then cached in " + filepath.Join(lab.DefaultCacheDir(), "osimage") + ")")
		im, err := osimage.BuildDebian(ctx, osimage.DebianConfig{Version: DebianVersion, Log: log})
		if err != nil {
			return nil, err
		}
		return b, b.addImage(im)
	}
	for _, v := range Versions {
		step("the " + v + " image (package osimage)")
		im, err := osimage.Build(ctx, osimage.Config{Version: v, Kernel: b.Kernel.Kernel,
			Dir: filepath.Join(cfg.Dir, "images"), Log: log})
		if err != nil {
			return nil, err
		}
		if err := b.addImage(im); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// addImage serves im from the artifacts directory under its catalog
// name.
func (b *Built) addImage(im *osimage.Image) error {
	if err := link(im.Path, filepath.Join(b.Artifacts, ImageFile(im.Version))); err != nil {
		return err
	}
	b.Images[im.Version] = im
	return nil
}

// moduleRoot is the directory of the go.mod of the running code's
// checkout, so that Build works from any directory in it.
func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("rack: go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("rack: not inside the rackboot module: run from its checkout")
	}
	return filepath.Dir(gomod), nil
}

// goBuild compiles pkg of the module in root to out.
func goBuild(ctx context.Context, root, out, pkg string, static bool) error {
	// -buildvcs=false: the lab runs as root, often in a checkout another
	// user owns, where git refuses to report its status ("dubious
	// ownership") and go build would fail for want of a revision.
	cmd := exec.CommandContext(ctx, "go", "build", "-buildvcs=false", "-o", out, pkg)
	cmd.Dir = root
	if static {
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	}
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("rack: go build %s: %w\n%s", pkg, err, b)
	}
	return nil
}

// link places src at dst: a hard link when both are on one file system, a
// copy otherwise. rackboot serves neither symlinks out of its root nor
// anything it cannot open.
func link(src, dst string) error {
	if err := os.Remove(dst); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("rack: %w", err)
	}
	if os.Link(src, dst) == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("rack: %w", err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("rack: %w", err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("rack: %w", err)
	}
	return out.Close()
}
