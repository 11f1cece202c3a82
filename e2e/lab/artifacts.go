package lab

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// Names under which Artifacts.Install places the kernel and initramfs.
const (
	KernelName = "vmlinuz"
	InitrdName = "initrd.img"
)

// DefaultCacheDir is where fetched kernels and built initramfs images are
// kept between runs: $RACKBOOT_E2E_CACHE, or /var/cache/rackboot-e2e.
func DefaultCacheDir() string {
	if d := os.Getenv("RACKBOOT_E2E_CACHE"); d != "" {
		return d
	}
	return "/var/cache/rackboot-e2e"
}

// ArtifactsConfig configures BuildArtifacts. The zero value is ready to
// use.
type ArtifactsConfig struct {
	// CacheDir keeps the kernel package, its unpacked tree and the
	// initramfs images; DefaultCacheDir() when empty.
	CacheDir string
	// KernelPackage is the Debian package to boot, such as
	// "linux-image-6.1.0-56-amd64". When empty it is the one the
	// linux-image-amd64 metapackage depends on.
	KernelPackage string
	// Busybox is a statically linked busybox (package busybox-static);
	// /bin/busybox when empty.
	Busybox string
	// Log receives progress messages; nil discards them.
	Log *slog.Logger
}

// Artifacts are the files a lab VM boots: a distribution kernel and the
// test initramfs (see Marker). The paths point into the cache; use Install
// to place them where a server serves them.
type Artifacts struct {
	KernelVersion string // uname -r of the kernel, such as "6.1.0-56-amd64"
	Kernel        string // path of the kernel image (bzImage with EFI stub)
	Initrd        string // path of the gzip-compressed newc initramfs
	// ModulesDir is the kernel's modules directory (lib/modules/VERSION
	// of the unpacked package, indexed by depmod), for building another
	// initramfs, such as rackboot's installer, for the same kernel.
	ModulesDir string
}

// BuildArtifacts fetches the kernel with apt-get download (the machine's
// configured Debian mirrors, nothing else), unpacks it with dpkg -x, indexes
// its modules with depmod, and builds the initramfs. Everything is cached:
// a second run does no network access and no work. Concurrent runs
// serialise on a lock file in the cache.
func BuildArtifacts(ctx context.Context, cfg ArtifactsConfig) (*Artifacts, error) {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cache := cfg.CacheDir
	if cache == "" {
		cache = DefaultCacheDir()
	}
	busybox := cfg.Busybox
	if busybox == "" {
		busybox = "/bin/busybox"
	}
	if err := os.MkdirAll(filepath.Join(cache, "debs"), 0o755); err != nil {
		return nil, fmt.Errorf("lab: artifacts cache: %w", err)
	}
	unlock, err := LockFile(filepath.Join(cache, ".lock"))
	if err != nil {
		return nil, err
	}
	defer unlock()

	pkg := cfg.KernelPackage
	if pkg == "" {
		if pkg, err = kernelPackage(ctx); err != nil {
			return nil, err
		}
	}
	version, ok := strings.CutPrefix(pkg, "linux-image-")
	if !ok || version == "" {
		return nil, fmt.Errorf("lab: %q is not a linux-image-VERSION package", pkg)
	}
	tree := filepath.Join(cache, "kernel", version)
	if _, err := os.Stat(tree); errors.Is(err, os.ErrNotExist) {
		log.Info("unpacking kernel", "package", pkg, "cache", cache)
		if err := unpackKernel(ctx, cache, pkg, version, tree); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, fmt.Errorf("lab: artifacts cache: %w", err)
	}
	a := &Artifacts{KernelVersion: version, Kernel: filepath.Join(tree, "boot", "vmlinuz-"+version)}
	if _, err := os.Stat(a.Kernel); err != nil {
		return nil, fmt.Errorf("lab: kernel image: %w", err)
	}
	modDir, err := moduleDir(tree, version)
	if err != nil {
		return nil, err
	}
	a.ModulesDir = modDir
	key, err := initramfsKey(version, busybox)
	if err != nil {
		return nil, err
	}
	a.Initrd = filepath.Join(cache, "initrd-"+version+"-"+key+".img")
	if _, err := os.Stat(a.Initrd); err == nil {
		return a, nil
	}
	log.Info("building initramfs", "path", a.Initrd)
	err = WriteAtomic(a.Initrd, func(w io.Writer) error { return buildInitramfs(w, busybox, modDir) })
	if err != nil {
		return nil, err
	}
	return a, nil
}

// Install places the kernel and initramfs in dir as KernelName and
// InitrdName: hard links when the cache is on the same file system,
// copies otherwise. Servers that refuse symlinks out of their root still
// serve them.
func (a *Artifacts) Install(dir string) error {
	for src, name := range map[string]string{a.Kernel: KernelName, a.Initrd: InitrdName} {
		dst := filepath.Join(dir, name)
		if err := os.Remove(dst); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("lab: install artifacts: %w", err)
		}
		if os.Link(src, dst) == nil {
			continue
		}
		err := WriteAtomic(dst, func(w io.Writer) error {
			f, err := os.Open(src)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = io.Copy(w, f)
			return err
		})
		if err != nil {
			return fmt.Errorf("lab: install artifacts: %w", err)
		}
	}
	return nil
}

// kernelPackage asks apt which versioned kernel package linux-image-amd64
// depends on: "  Depends: linux-image-6.1.0-56-amd64".
func kernelPackage(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "apt-cache", "depends", "linux-image-amd64").Output()
	if err != nil {
		return "", fmt.Errorf("lab: apt-cache depends linux-image-amd64: %w", err)
	}
	s := bufio.NewScanner(bytes.NewReader(out))
	for s.Scan() {
		f := strings.Fields(s.Text())
		if len(f) == 2 && f[0] == "Depends:" && strings.HasPrefix(f[1], "linux-image-") &&
			len(f[1]) > len("linux-image-") && isDigit(f[1][len("linux-image-")]) {
			return f[1], nil
		}
	}
	return "", errors.New("lab: apt-cache names no versioned kernel for linux-image-amd64")
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// unpackKernel downloads pkg's .deb into cache/debs unless it is there,
// unpacks it next to tree and runs depmod, then renames it to tree: a tree
// that exists is complete.
func unpackKernel(ctx context.Context, cache, pkg, version, tree string) error {
	debs := filepath.Join(cache, "debs")
	deb, err := findDeb(debs, pkg)
	if err != nil {
		return err
	}
	if deb == "" {
		cmd := exec.CommandContext(ctx, "apt-get", "download", pkg)
		cmd.Dir = debs
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("lab: apt-get download %s: %w: %s", pkg, err, bytesTrim(out))
		}
		if deb, err = findDeb(debs, pkg); err != nil || deb == "" {
			return fmt.Errorf("lab: apt-get download %s left no .deb in %s", pkg, debs)
		}
	}
	tmp := tree + ".tmp"
	if err := os.MkdirAll(filepath.Dir(tree), 0o755); err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	if out, err := exec.CommandContext(ctx, "dpkg", "-x", deb, tmp).CombinedOutput(); err != nil {
		return fmt.Errorf("lab: dpkg -x %s: %w: %s", deb, err, bytesTrim(out))
	}
	modDir, err := moduleDir(tmp, version)
	if err != nil {
		return err
	}
	// depmod -b BASE reads BASE/lib/modules/VERSION; usrmerged packages
	// keep them under usr/.
	base := strings.TrimSuffix(modDir, filepath.Join("lib", "modules", version))
	if out, err := exec.CommandContext(ctx, "depmod", "-b", base, version).CombinedOutput(); err != nil {
		return fmt.Errorf("lab: depmod: %w: %s", err, bytesTrim(out))
	}
	if err := os.Rename(tmp, tree); err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	return nil
}

func findDeb(dir, pkg string) (string, error) {
	m, err := filepath.Glob(filepath.Join(dir, pkg+"_*.deb"))
	if err != nil || len(m) == 0 {
		return "", err
	}
	return m[len(m)-1], nil
}

func moduleDir(tree, version string) (string, error) {
	for _, d := range []string{"lib", "usr/lib"} {
		p := filepath.Join(tree, d, "modules", version)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("lab: no modules for %s under %s", version, tree)
}

// initramfsKey names an initramfs by what goes into it, so a change to the
// init script, the module list or busybox builds a new one.
func initramfsKey(version, busybox string) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n%q\n", version, initScript, initramfsModules())
	f, err := os.Open(busybox)
	if err != nil {
		return "", fmt.Errorf("lab: busybox: %w", err)
	}
	defer f.Close()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("lab: busybox: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil))[:12], nil
}

// WriteAtomic writes a file through fill into a temporary name and renames
// it into place, so readers never see a half-written file.
func WriteAtomic(name string, fill func(io.Writer) error) error {
	f, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".*")
	if err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	defer os.Remove(f.Name()) // after a successful rename there is nothing to remove
	if err := fill(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return fmt.Errorf("lab: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	if err := os.Rename(f.Name(), name); err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	return nil
}

// LockFile takes an exclusive flock on name, waiting for other holders.
func LockFile(name string) (unlock func(), err error) {
	f, err := os.OpenFile(name, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lab: lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lab: lock %s: %w", name, err)
	}
	return func() { f.Close() }, nil // closing releases the lock
}
