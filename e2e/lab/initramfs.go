package lab

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// Marker starts the line the test initramfs prints on its serial console
// once it runs:
//
//	RACKBOOT_E2E_MARKER mac=52:54:00:77:00:01 cmdline_mac=52:54:00:77:00:01 fw=efi uptime=1.83
//
// mac is the address of the first network interface as the booted kernel
// sees it, cmdline_mac the value of rackboot.mac= on the kernel command line
// (what the server rendered for this machine), fw "efi" or "bios".
const Marker = "RACKBOOT_E2E_MARKER"

// InitStart is printed by the initramfs's /init before anything else: the
// moment the kernel handed over to user space.
const InitStart = "RACKBOOT_E2E_INIT"

// initramfsModules are the drivers a lab VM needs, loaded from the
// distribution kernel with their dependencies: virtio disk and NIC, and
// e1000 for the Intel NIC model.
func initramfsModules() []string {
	return []string{"virtio_pci", "virtio_net", "virtio_blk", "e1000"}
}

// initScript is the initramfs's /init. It loads the drivers, waits briefly
// for a NIC, prints the marker on the console and powers off, so QEMU
// (started with -no-reboot) exits.
const initScript = `#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
# The empty echo ends the firmware's last line ("initrd.img... ok" has no
# newline): the marker lines must be lines of their own, dated on their own.
echo
echo "` + InitStart + ` uptime=$(cut -d' ' -f1 /proc/uptime)"
while read -r m; do insmod "/lib/modules/$m" 2>/dev/null; done < /etc/modules
arg() { tr ' ' '\n' < /proc/cmdline | sed -n "s/^$1=//p" | head -n 1; }
nic() { for d in /sys/class/net/*; do [ "${d##*/}" = lo ] || { cat "$d/address"; return; }; done; }
i=0; mac=$(nic)
while [ -z "$mac" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); mac=$(nic); done
fw=bios; [ -d /sys/firmware/efi ] && fw=efi
echo "` + Marker + ` mac=${mac:-none} cmdline_mac=$(arg rackboot.mac) fw=$fw uptime=$(cut -d' ' -f1 /proc/uptime)"
sync
poweroff -f
`

// buildInitramfs writes a gzip-compressed newc archive holding static
// busybox, the modules (with their dependencies, in load order, listed in
// /etc/modules) found under modDir, and initScript as /init.
func buildInitramfs(w io.Writer, busybox, modDir string) error {
	mods, err := ResolveModules(modDir, initramfsModules())
	if err != nil {
		return err
	}
	bb, err := os.ReadFile(busybox)
	if err != nil {
		return fmt.Errorf("lab: initramfs: %w", err)
	}
	zw, err := gzip.NewWriterLevel(w, gzip.BestCompression)
	if err != nil {
		return err
	}
	c := NewNewcWriter(zw)
	for _, d := range []string{"bin", "dev", "etc", "lib", "lib/modules", "proc", "sys", "tmp"} {
		c.Add(NewcEntry{Name: d, Mode: ModeDir | 0o755})
	}
	// The kernel opens /dev/console for init's stdio before /init mounts
	// devtmpfs; without the node init would run with no output at all.
	c.Add(NewcEntry{Name: "dev/console", Mode: ModeChar | 0o600, RdevMajor: 5, RdevMinor: 1})
	c.Add(NewcEntry{Name: "bin/busybox", Mode: ModeReg | 0o755, Data: bb})
	c.Add(NewcEntry{Name: "init", Mode: ModeReg | 0o755, Data: []byte(initScript)})
	var list bytes.Buffer
	for _, m := range mods {
		data, err := os.ReadFile(filepath.Join(modDir, m))
		if err != nil {
			return fmt.Errorf("lab: initramfs: %w", err)
		}
		c.Add(NewcEntry{Name: "lib/modules/" + path.Base(m), Mode: ModeReg | 0o644, Data: data})
		fmt.Fprintln(&list, path.Base(m))
	}
	c.Add(NewcEntry{Name: "etc/modules", Mode: ModeReg | 0o644, Data: list.Bytes()})
	if err := c.Close(); err != nil {
		return fmt.Errorf("lab: initramfs: %w", err)
	}
	return zw.Close()
}

// ResolveModules returns the module files (relative to modDir) for names
// and everything they depend on, each dependency before its users, read
// from modDir/modules.dep. Modules built into the kernel
// (modules.builtin) need no file and are left out.
func ResolveModules(modDir string, names []string) ([]string, error) {
	deps, err := readModulesDep(filepath.Join(modDir, "modules.dep"))
	if err != nil {
		return nil, err
	}
	builtin := map[string]bool{}
	if f, err := os.Open(filepath.Join(modDir, "modules.builtin")); err == nil {
		s := bufio.NewScanner(f)
		for s.Scan() {
			builtin[moduleName(s.Text())] = true
		}
		f.Close()
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
		// modules.dep lists the full closure, users before what they use
		// (modprobe loads it from the end); visiting each one's own deps
		// first gives a valid load order whatever the listing order.
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
			return nil, fmt.Errorf("lab: module %s not found in %s", n, modDir)
		}
		visit(file)
	}
	for _, file := range order {
		// busybox insmod loads plain ELF objects only; Debian 12 ships its
		// modules uncompressed, later releases may not.
		if !strings.HasSuffix(file, ".ko") {
			return nil, fmt.Errorf("lab: module %s is compressed; the initramfs needs plain .ko files", file)
		}
	}
	return order, nil
}

// readModulesDep parses modules.dep: "path.ko: dep.ko dep.ko" per line.
func readModulesDep(file string) (map[string][]string, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("lab: %w", err)
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
	return deps, s.Err()
}

// moduleName turns "kernel/drivers/net/virtio_net.ko[.xz]" into
// "virtio_net". The kernel treats - and _ in module names alike.
func moduleName(file string) string {
	b := path.Base(file)
	if i := strings.Index(b, ".ko"); i >= 0 {
		b = b[:i]
	}
	return strings.ReplaceAll(b, "-", "_")
}
