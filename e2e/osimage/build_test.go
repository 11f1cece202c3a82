package osimage

import (
	"bytes"
	"debug/pe"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/google/go-cmp/cmp"

	"github.com/rackboot/rackboot/e2e/lab"
)

// testKernel returns a Debian kernel to build with: $RACKBOOT_OSIMAGE_KERNEL,
// or the one e2e/lab fetched into its cache. The test skips, saying why,
// when there is none or the host lacks a tool.
func testKernel(t *testing.T) string {
	t.Helper()
	if err := CheckHost(Config{}); err != nil {
		t.Skip(err)
	}
	if k := os.Getenv("RACKBOOT_OSIMAGE_KERNEL"); k != "" {
		return k
	}
	m, _ := filepath.Glob(filepath.Join(lab.DefaultCacheDir(), "kernel", "*", "boot", "vmlinuz-*"))
	if len(m) == 0 {
		t.Skipf("no kernel in %s: run the e2e suite once (it fetches one) or set RACKBOOT_OSIMAGE_KERNEL", lab.DefaultCacheDir())
	}
	return m[len(m)-1]
}

func TestBuild(t *testing.T) {
	kernel := testKernel(t)
	kernelBytes, err := os.ReadFile(kernel)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	im, err := Build(t.Context(), Config{Version: "demo-1.0", Kernel: kernel, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if im.Path != filepath.Join(dir, "demo-1.0.img.zst") || im.UncompressedSize != DiskSize {
		t.Errorf("Build() = %+v", im)
	}
	if sum, err := fileSHA256(im.Path); err != nil || sum != im.SHA256 {
		t.Errorf("sha256 of %s = %s, %v; Build said %s", im.Path, sum, err, im.SHA256)
	}
	if fi, err := os.Stat(im.Path); err != nil || fi.Size() != im.Size {
		t.Errorf("size of %s: %v, %v; Build said %d", im.Path, fi, err, im.Size)
	}
	raw := filepath.Join(dir, "demo-1.0.img")
	if err := im.Unpack(raw); err != nil {
		t.Fatal(err)
	}
	d, err := diskfs.Open(raw, diskfs.WithOpenMode(diskfs.ReadOnly))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()

	t.Run("gpt", func(t *testing.T) {
		pt, err := d.GetPartitionTable()
		if err != nil {
			t.Fatal(err)
		}
		tbl, ok := pt.(*gpt.Table)
		if !ok {
			t.Fatalf("partition table is %T, want GPT", pt)
		}
		type part struct {
			Index      int
			Name       string
			Type       gpt.Type
			GUID       string
			Start, End uint64
			Attributes uint64
		}
		var got []part
		for _, p := range tbl.Partitions {
			got = append(got, part{p.Index, p.Name, p.Type, p.GUID, p.Start, p.End, p.Attributes})
		}
		want := []part{
			{1, "esp", gpt.EFISystemPartition, nameUUID("demo-1.0", "esp"), 2048, 133119, attrLegacyBIOSBootable},
			{2, "root-x86-64", gpt.LinuxRootX86_64, nameUUID("demo-1.0", "root-x86-64"), 133120, 165887, attrReadOnly},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("partitions (-want +got):\n%s", diff)
		}
		if tbl.GUID != nameUUID("demo-1.0", "disk") {
			t.Errorf("disk GUID %s, want %s", tbl.GUID, nameUUID("demo-1.0", "disk"))
		}
	})

	t.Run("mbr", func(t *testing.T) {
		mbr, err := readAt(raw, 0, 512)
		if err != nil {
			t.Fatal(err)
		}
		code, err := os.ReadFile(DefaultGPTMBR)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(mbr[:440], code[:440]) {
			t.Error("the MBR boot code is not SYSLINUX's gptmbr.bin")
		}
		if mbr[450] != 0xee || mbr[510] != 0x55 || mbr[511] != 0xaa {
			t.Errorf("no protective MBR: type %#x, signature %x", mbr[450], mbr[510:])
		}
	})

	t.Run("esp", func(t *testing.T) {
		esp, err := d.GetFilesystem(1)
		if err != nil {
			t.Fatal(err)
		}
		if l := strings.TrimSpace(esp.Label()); l != "ESP" {
			t.Errorf("ESP label %q", l)
		}
		sizes := map[string]int64{}
		err = fs.WalkDir(esp, ".", func(p string, e fs.DirEntry, err error) error {
			if err != nil || e.IsDir() {
				return err
			}
			info, err := e.Info()
			if err != nil {
				return err
			}
			sizes[strings.ToLower(p)] = info.Size()
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{"efi/boot/bootx64.efi", "syslinux/syslinux.cfg", "syslinux/vmlinuz", "syslinux/initrd.img", "ldlinux.sys", "ldlinux.c32"} {
			if sizes[p] == 0 {
				t.Errorf("ESP: %s missing or empty (files: %v)", p, sizes)
			}
		}
		if sizes["syslinux/vmlinuz"] != int64(len(kernelBytes)) {
			t.Errorf("ESP: syslinux/vmlinuz is %d bytes, the kernel %d", sizes["syslinux/vmlinuz"], len(kernelBytes))
		}
		cfg, err := fs.ReadFile(esp, "syslinux/syslinux.cfg")
		if err != nil || string(cfg) != syslinuxCfg() {
			t.Errorf("syslinux.cfg = %q, %v", cfg, err)
		}

		uki, err := fs.ReadFile(esp, "EFI/BOOT/BOOTX64.EFI")
		if err != nil {
			t.Fatal(err)
		}
		f, err := pe.NewFile(bytes.NewReader(uki))
		if err != nil {
			t.Fatalf("BOOTX64.EFI: %v", err)
		}
		section := func(name string) []byte {
			s := f.Section(name)
			if s == nil {
				t.Errorf("BOOTX64.EFI has no %s section", name)
				return nil
			}
			b, err := s.Data()
			if err != nil {
				t.Fatal(err)
			}
			return b[:s.VirtualSize]
		}
		if !bytes.Equal(section(".linux"), kernelBytes) {
			t.Error("BOOTX64.EFI: .linux is not the kernel")
		}
		if got := string(section(".cmdline")); got != cmdline() {
			t.Errorf("BOOTX64.EFI: .cmdline = %q", got)
		}
		if got := string(section(".osrel")); !strings.Contains(got, "VERSION_ID=demo-1.0\n") {
			t.Errorf("BOOTX64.EFI: .osrel = %q", got)
		}
		initrd, err := fs.ReadFile(esp, "syslinux/initrd.img")
		if err != nil || !bytes.Equal(section(".initrd"), initrd) {
			t.Errorf("BOOTX64.EFI: .initrd differs from syslinux/initrd.img (%v)", err)
		}
		if s := f.Section(".sdmagic"); s == nil {
			t.Error("BOOTX64.EFI is not systemd-stub")
		}
	})

	t.Run("root", func(t *testing.T) {
		sb, err := readAt(raw, rootStart, 4)
		if err != nil {
			t.Fatal(err)
		}
		if string(sb) != "hsqs" {
			t.Errorf("root partition starts with %q, want the squashfs magic", sb)
		}
	})

	t.Run("reproducible", func(t *testing.T) {
		again, err := Build(t.Context(), Config{Version: "demo-1.0", Kernel: kernel, Dir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		if again.SHA256 != im.SHA256 || again.UncompressedSHA256 != im.UncompressedSHA256 {
			t.Errorf("a second build differs: %s, first %s", again.SHA256, im.SHA256)
		}
		next, err := Build(t.Context(), Config{Version: "demo-1.1", Kernel: kernel, Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		if next.SHA256 == im.SHA256 || next.Key == im.Key {
			t.Error("demo-1.1 is the same image as demo-1.0")
		}
	})

	t.Run("cached", func(t *testing.T) {
		before, err := os.Stat(im.Path)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		again, err := Build(t.Context(), Config{Version: "demo-1.0", Kernel: kernel, Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(im, again); diff != "" {
			t.Errorf("cached image (-first +again):\n%s", diff)
		}
		after, err := os.Stat(im.Path)
		if err != nil {
			t.Fatal(err)
		}
		if !after.ModTime().Equal(before.ModTime()) {
			t.Errorf("the image was rewritten (%v)", time.Since(start))
		}
	})
}

func TestBuildRefuses(t *testing.T) {
	for _, v := range []string{"", "Demo-1.0", "-x", "demo 1", "../x", strings.Repeat("a", 33)} {
		t.Run(v, func(t *testing.T) {
			if _, err := Build(t.Context(), Config{Version: v, Dir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "version") {
				t.Errorf("Build(%q) = %v, want a version error", v, err)
			}
		})
	}
}

func readAt(name string, off int64, n int) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, n)
	_, err = f.ReadAt(b, off)
	return b, err
}
