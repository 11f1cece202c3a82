package osimage

import (
	"bufio"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// initramfsModules are the drivers the OS loads from its initramfs: every disk
// controller a lab machine may have (virtio-blk, virtio-scsi, AHCI and
// PIIX IDE through sd_mod, NVMe), squashfs for the root, and FAT with the
// character sets the kernel's vfat defaults name for the config drive
// and the data partition: code page 437 and, in Debian's configuration,
// the "ascii" I/O charset (without it mounting fails with "IO charset
// ascii not found"); iso8859-1 for mounts that ask for it.
func initramfsModules() []string {
	return []string{
		"virtio_pci", "virtio_blk", "virtio_scsi", "ahci", "ata_piix", "nvme", "sd_mod",
		"squashfs", "vfat", "nls_cp437", "nls_ascii", "nls_iso8859_1",
	}
}

// resolveModules returns the module files (relative to modDir) for names
// and everything they depend on, each dependency before its users, read
// from modDir/modules.dep. Modules built into the kernel (modules.builtin)
// need no file and are left out. Adapted from e2e/lab, which does not
// export it.
func resolveModules(modDir string, names []string) ([]string, error) {
	deps, err := readModulesDep(filepath.Join(modDir, "modules.dep"))
	if err != nil {
		return nil, err
	}
	builtin := map[string]bool{}
	if b, err := os.ReadFile(filepath.Join(modDir, "modules.builtin")); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			builtin[moduleName(l)] = true
		}
	}
	byName := map[string]string{}
	for file := range deps {
		byName[moduleName(file)] = file
	}
	var order []string
	seen := map[string]bool{}
	var visit func(file string)
	visit = func(file string) {
		if seen[file] {
			return
		}
		seen[file] = true
		// modules.dep lists the whole closure, users before what they
		// use; visiting each one's own deps first gives a valid load
		// order whatever the listing order.
		for _, d := range deps[file] {
			visit(d)
		}
		order = append(order, file)
	}
	for _, n := range names {
		file, ok := byName[n]
		if !ok {
			if builtin[n] {
				continue
			}
			return nil, fmt.Errorf("osimage: module %s not found in %s", n, modDir)
		}
		visit(file)
	}
	for _, file := range order {
		// busybox insmod loads plain ELF objects only; Debian 12 ships
		// its modules uncompressed, later releases may not.
		if !strings.HasSuffix(file, ".ko") {
			return nil, fmt.Errorf("osimage: module %s is compressed; the initramfs needs plain .ko files", file)
		}
	}
	return order, nil
}

// readModulesDep parses modules.dep: "path.ko: dep.ko dep.ko" per line.
func readModulesDep(file string) (map[string][]string, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("osimage: %w", err)
	}
	defer f.Close()
	deps := map[string][]string{}
	s := bufio.NewScanner(f)
	for s.Scan() {
		mod, rest, ok := strings.Cut(s.Text(), ":")
		if !ok {
			continue
		}
		deps[mod] = strings.Fields(rest)
	}
	if err := s.Err(); err != nil {
		return nil, fmt.Errorf("osimage: %s: %w", file, err)
	}
	return deps, nil
}

// moduleName turns "kernel/fs/nls/nls_iso8859-1.ko[.xz]" into
// "nls_iso8859_1": the kernel treats - and _ in module names alike.
func moduleName(file string) string {
	b := path.Base(file)
	if i := strings.Index(b, ".ko"); i >= 0 {
		b = b[:i]
	}
	return strings.ReplaceAll(b, "-", "_")
}
