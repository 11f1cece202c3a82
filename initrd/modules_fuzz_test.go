package initrd

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// FuzzModulesDep reads a fuzzed modules.dep and resolves the default
// modules plus a few fuzzed names: the paths it returns, which Build
// copies from the modules directory into the initramfs, never leave that
// directory (no "..", not absolute), each comes once, and every name is
// either resolved or reported missing.
func FuzzModulesDep(f *testing.F) {
	f.Add([]byte("kernel/drivers/virtio/virtio_pci.ko.xz: kernel/drivers/virtio/virtio.ko.xz\nkernel/drivers/virtio/virtio.ko.xz:\n"), "virtio-pci")
	f.Add([]byte("../../etc/shadow:\n/etc/passwd: ../x.ko\nkernel/loop.ko: /abs.ko ../../up.ko\n"), "shadow passwd loop")
	f.Add([]byte("a.ko: b.ko\nb.ko: a.ko\nc.ko\n:\n"), "a c")
	f.Add([]byte("kernel/e1000.ko.zst: kernel/./x/../e1000.ko.zst\n"), "e1000")
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, dep []byte, names string) {
		if len(dep) > 4096 || len(names) > 256 {
			return
		}
		if err := os.WriteFile(filepath.Join(dir, "modules.dep"), dep, 0o644); err != nil {
			t.Fatal(err)
		}
		db, err := readModulesDep(dir)
		if err != nil {
			return
		}
		want := append(strings.Fields(names), DefaultModules...)
		order, missing := db.resolve(want)
		seen := map[string]bool{}
		for _, p := range order {
			if !filepath.IsLocal(p) {
				t.Fatalf("modules.dep %q: path %q leaves the modules directory", dep, p)
			}
			if seen[p] {
				t.Fatalf("modules.dep %q: %q listed twice", dep, p)
			}
			seen[p] = true
		}
		for _, m := range missing {
			if !slices.Contains(want, m) {
				t.Fatalf("missing %q was not asked for", m)
			}
		}
	})
}
