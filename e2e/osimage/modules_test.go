package osimage

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/rackboot/rackboot/e2e/lab"
)

// fakeModules writes a modules directory with modules.dep and
// modules.builtin and returns its path.
func fakeModules(t *testing.T, dep, builtin string) string {
	t.Helper()
	dir := t.TempDir()
	for name, s := range map[string]string{"modules.dep": dep, "modules.builtin": builtin} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestResolveModules(t *testing.T) {
	// An excerpt of Debian 12's modules.dep: each line lists the whole
	// closure, users first.
	dep := `kernel/fs/fat/fat.ko:
kernel/fs/fat/vfat.ko: kernel/fs/fat/fat.ko
kernel/fs/nls/nls_iso8859-1.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_legacy_dev.ko kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/virtio/virtio_pci_legacy_dev.ko:
kernel/drivers/virtio/virtio.ko:
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/scsi/sd_mod.ko: kernel/drivers/scsi/scsi_mod.ko kernel/drivers/scsi/scsi_common.ko
kernel/drivers/scsi/scsi_mod.ko: kernel/drivers/scsi/scsi_common.ko
kernel/drivers/scsi/scsi_common.ko:
kernel/lib/zstd.ko.xz:
`
	builtin := "kernel/fs/squashfs/squashfs.ko\n"
	tests := []struct {
		name    string
		modules []string
		want    []string
		err     string
	}{
		{
			name:    "dependencies first, each once",
			modules: []string{"virtio_pci", "virtio_blk", "vfat", "nls_iso8859_1"},
			want: []string{
				"kernel/drivers/virtio/virtio_pci_legacy_dev.ko", "kernel/drivers/virtio/virtio_pci_modern_dev.ko",
				"kernel/drivers/virtio/virtio.ko", "kernel/drivers/virtio/virtio_ring.ko", "kernel/drivers/virtio/virtio_pci.ko",
				"kernel/drivers/block/virtio_blk.ko", "kernel/fs/fat/fat.ko", "kernel/fs/fat/vfat.ko", "kernel/fs/nls/nls_iso8859-1.ko",
			},
		},
		{
			name:    "chain",
			modules: []string{"sd_mod"},
			want:    []string{"kernel/drivers/scsi/scsi_common.ko", "kernel/drivers/scsi/scsi_mod.ko", "kernel/drivers/scsi/sd_mod.ko"},
		},
		{name: "built in", modules: []string{"squashfs"}},
		{name: "missing", modules: []string{"nvme"}, err: "module nvme not found"},
		{name: "compressed", modules: []string{"zstd"}, err: "compressed"},
	}
	dir := fakeModules(t, dep, builtin)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := lab.ResolveModules(dir, tt.modules)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("lab.ResolveModules() error = %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("lab.ResolveModules() (-want +got):\n%s", diff)
			}
		})
	}
}

func TestModulesDirOf(t *testing.T) {
	root := t.TempDir()
	mods := filepath.Join(root, "usr/lib/modules/6.1.0-56-amd64")
	if err := os.MkdirAll(mods, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mods, "modules.dep"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := modulesDirOf(filepath.Join(root, "boot/vmlinuz-6.1.0-56-amd64"))
	if err != nil || got != mods {
		t.Errorf("modulesDirOf() = %q, %v; want %q", got, err, mods)
	}
	if _, err := modulesDirOf(filepath.Join(root, "boot/vmlinuz-6.2.0")); err == nil {
		t.Error("modulesDirOf() found modules of another version")
	}
	if _, err := modulesDirOf(filepath.Join(root, "bzImage")); err == nil {
		t.Error("modulesDirOf() accepted a kernel without a version in its name")
	}
}
