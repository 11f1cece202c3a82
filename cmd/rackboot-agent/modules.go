package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/rackboot/rackboot/agentapi"
)

// Where `rackboot initrd` puts the modules and their load order
// (initrd.ModuleList).
const (
	moduleList = "/etc/rackboot/modules"
	moduleDir  = "/lib/modules"
)

// maxModuleBytes bounds a decompressed module: the largest drivers
// (mlx5_core, amdgpu) are a few MiB; anything near this is not a module.
const maxModuleBytes = 256 << 20

// moduleLoader inserts modules into the kernel: finit_module(2) for a
// plain ELF object, which the kernel reads from the file itself, and
// init_module(2) for one the agent decompressed.
type moduleLoader interface {
	loadFile(f *os.File) error
	loadImage(image []byte) error
}

// moduleStats counts what loadModules did.
type moduleStats struct {
	Loaded  int // inserted
	Present int // already in the kernel (EEXIST)
	Unused  int // nothing to drive (ENODEV)
	Failed  int
}

// loadModules loads the modules listed in list (paths relative to dir,
// dependencies first) in order. A module the kernel already has (EEXIST:
// built in, or loaded twice) is fine; any other failure is logged and the
// rest are still loaded: a missing NIC driver for some other card must not
// stop the one that matters.
func loadModules(log *slog.Logger, ld moduleLoader, list, dir string) (moduleStats, error) {
	var st moduleStats
	names, err := readModuleList(list)
	if err != nil {
		return st, err
	}
	start := time.Now()
	for _, name := range names {
		err := loadModule(ld, filepath.Join(dir, filepath.FromSlash(name)))
		switch {
		case err == nil:
			st.Loaded++
		case errors.Is(err, syscall.EEXIST):
			st.Present++
		case errors.Is(err, syscall.ENODEV):
			// The module found nothing to drive and unloaded itself:
			// efivarfs on a BIOS machine, a NIC driver without its NIC.
			st.Unused++
			log.Debug("module unused", "path", name)
		default:
			st.Failed++
			log.Warn("module not loaded", "path", name, "err", err)
		}
	}
	log.Info("modules loaded", "phase", agentapi.PhaseModules, "loaded", st.Loaded, "present", st.Present,
		"unused", st.Unused, "failed", st.Failed, "took", time.Since(start).Round(time.Millisecond))
	return st, nil
}

// readModuleList reads one module path per line; blank lines and
// #-comments are skipped. A missing list means an initramfs built without
// modules, for a kernel with the drivers built in.
func readModuleList(list string) ([]string, error) {
	f, err := os.Open(list)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("module list: %w", err)
	}
	defer f.Close()
	var names []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		// The list comes from our own initrd builder, but a path leaving
		// the modules directory is still refused.
		if p := path.Clean(line); path.IsAbs(p) || p == ".." || strings.HasPrefix(p, "../") {
			return nil, fmt.Errorf("module list: %q is outside the modules directory", line)
		}
		names = append(names, line)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("module list: %w", err)
	}
	return names, nil
}

// loadModule loads one module file, decompressing it first when the
// distribution ships it compressed (Debian 13, Fedora, Ubuntu: .ko.xz or
// .ko.zst). The kernel can decompress in finit_module only from 6.4 and
// only when built with MODULE_DECOMPRESS, so the agent does it itself.
func loadModule(ld moduleLoader, name string) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	var dec io.Reader
	switch {
	case strings.HasSuffix(name, ".ko"):
		return ld.loadFile(f)
	case strings.HasSuffix(name, ".ko.xz"):
		// Kernel modules use xz's CRC32 check, which the reader supports.
		if dec, err = xz.NewReader(bufio.NewReader(f)); err != nil {
			return fmt.Errorf("xz: %w", err)
		}
	case strings.HasSuffix(name, ".ko.zst"):
		zr, err := zstd.NewReader(f, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
		if err != nil {
			return fmt.Errorf("zstd: %w", err)
		}
		defer zr.Close()
		dec = zr
	case strings.HasSuffix(name, ".ko.gz"):
		zr, err := gzip.NewReader(f)
		if err != nil {
			return fmt.Errorf("gzip: %w", err)
		}
		defer zr.Close()
		dec = zr
	default:
		return errors.New("not a kernel module (.ko, .ko.xz, .ko.zst or .ko.gz)")
	}
	image, err := readModuleImage(dec, maxModuleBytes)
	if err != nil {
		return err
	}
	return ld.loadImage(image)
}

// readModuleImage reads a decompressed module of at most limit bytes: a
// corrupt or hostile archive must not exhaust the installer's memory.
func readModuleImage(r io.Reader, limit int64) ([]byte, error) {
	var b bytes.Buffer
	n, err := b.ReadFrom(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("decompressing: %w", err)
	}
	if n > limit {
		return nil, fmt.Errorf("decompressed module larger than %d bytes", limit)
	}
	return b.Bytes(), nil
}
