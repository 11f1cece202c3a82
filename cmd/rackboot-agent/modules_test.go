package main

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// fakeLoader records what would have been inserted and fails as told, by
// the module's content.
type fakeLoader struct {
	loaded []string // "file:CONTENT" or "image:CONTENT"
	errs   map[string]error
}

func (l *fakeLoader) loadFile(f *os.File) error {
	b, err := io.ReadAll(f)
	if err != nil {
		return err
	}
	return l.load("file:" + string(b))
}

func (l *fakeLoader) loadImage(image []byte) error { return l.load("image:" + string(image)) }

func (l *fakeLoader) load(s string) error {
	l.loaded = append(l.loaded, s)
	return l.errs[s]
}

func compressWith(t *testing.T, kind string, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w io.WriteCloser
	var err error
	switch kind {
	case "xz":
		// As the kernel's build does: xz --check=crc32.
		w, err = xz.WriterConfig{CheckSum: xz.CRC32}.NewWriter(&buf)
	case "zst":
		w, err = zstd.NewWriter(&buf)
	case "gz":
		w = gzip.NewWriter(&buf)
	}
	if err != nil {
		t.Fatal(err)
	}
	w.Write(b)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestLoadModules(t *testing.T) {
	dir := t.TempDir()
	files := map[string][]byte{
		"kernel/drivers/virtio/virtio.ko":          []byte("virtio"),
		"kernel/drivers/net/virtio_net.ko.xz":      compressWith(t, "xz", []byte("virtio_net")),
		"kernel/drivers/block/virtio_blk.ko.zst":   compressWith(t, "zst", []byte("virtio_blk")),
		"kernel/drivers/nvme/host/nvme.ko.gz":      compressWith(t, "gz", []byte("nvme")),
		"kernel/fs/efivarfs/efivarfs.ko":           []byte("efivarfs"),
		"kernel/drivers/net/ethernet/e1000.ko":     []byte("e1000"),
		"kernel/drivers/net/ethernet/broken.ko.xz": []byte("not xz at all"),
		"kernel/drivers/net/ethernet/odd.txt":      []byte("odd"),
	}
	for name, b := range files {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	list := filepath.Join(t.TempDir(), "modules")
	os.WriteFile(list, []byte(`# dependencies first
kernel/drivers/virtio/virtio.ko
kernel/drivers/net/virtio_net.ko.xz

kernel/drivers/block/virtio_blk.ko.zst
kernel/drivers/nvme/host/nvme.ko.gz
kernel/fs/efivarfs/efivarfs.ko
kernel/drivers/net/ethernet/e1000.ko
kernel/drivers/net/ethernet/missing.ko
kernel/drivers/net/ethernet/broken.ko.xz
kernel/drivers/net/ethernet/odd.txt
`), 0o644)

	var logged bytes.Buffer
	ld := &fakeLoader{errs: map[string]error{
		"file:virtio":   syscall.EEXIST, // built in
		"file:efivarfs": syscall.ENODEV, // BIOS machine
		"file:e1000":    syscall.ENOEXEC,
	}}
	st, err := loadModules(slog.New(slog.NewTextHandler(&logged, nil)), ld, list, dir)
	if err != nil {
		t.Fatal(err)
	}
	wantLoaded := []string{"file:virtio", "image:virtio_net", "image:virtio_blk", "image:nvme", "file:efivarfs", "file:e1000"}
	if diff := cmp.Diff(wantLoaded, ld.loaded); diff != "" {
		t.Errorf("inserted (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(moduleStats{Loaded: 3, Present: 1, Unused: 1, Failed: 4}, st); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
	for _, m := range []string{"e1000.ko", "missing.ko", "broken.ko.xz", "odd.txt"} {
		if !strings.Contains(logged.String(), "path=kernel/drivers/net/ethernet/"+m) {
			t.Errorf("no warning for %s in:\n%s", m, logged.String())
		}
	}
}

func TestReadModuleList(t *testing.T) {
	dir := t.TempDir()
	if names, err := readModuleList(filepath.Join(dir, "none")); err != nil || names != nil {
		t.Errorf("missing list: %q, %v; want none and no error (no modules in this initramfs)", names, err)
	}
	for _, bad := range []string{"/lib/modules/x.ko", "../x.ko", "kernel/../../x.ko"} {
		p := filepath.Join(dir, "list")
		os.WriteFile(p, []byte(bad+"\n"), 0o644)
		if _, err := readModuleList(p); err == nil {
			t.Errorf("list naming %q accepted", bad)
		}
	}
}

func TestModuleTooLarge(t *testing.T) {
	if _, err := readModuleImage(bytes.NewReader(make([]byte, 1025)), 1024); err == nil {
		t.Error("a module larger than the bound was read")
	}
	if b, err := readModuleImage(bytes.NewReader(make([]byte, 1024)), 1024); err != nil || len(b) != 1024 {
		t.Errorf("a module of exactly the bound: %d bytes, %v", len(b), err)
	}
	ld := &fakeLoader{}
	if err := loadModule(ld, filepath.Join(t.TempDir(), "gone.ko")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing module: %v", err)
	}
}
